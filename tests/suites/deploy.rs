//! The state machines in statemachine/ driven against the real handler: each Task's payload is
//! built from the previous state's output exactly as the definition says (a small interpreter of
//! the JSONPath features the definitions use), and handed to the same `App::handle` the Lambda
//! runs. A field renamed on either side fails here. (The definitions themselves are validated by
//! asl-validator and the template by cfn-lint, in scripts/validate-deploy.)

use std::path::Path;

use crypto_etl::lambda::App;
use crypto_etl_test_support::coingecko::{base_url, serve_snapshot};
use crypto_etl_test_support::workspace;
use serde_json::{Map, Value, json};
use wiremock::MockServer;

fn definition(name: &str) -> Value {
    let path = workspace().join("statemachine").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `$`, `$.field` or `$.a.b`.
fn select(input: &Value, path: &str) -> Value {
    let rest = path.strip_prefix('$').unwrap_or_else(|| panic!("not a JSONPath: {path}"));
    rest.split('.').filter(|s| !s.is_empty()).fold(input.clone(), |value, field| {
        value.get(field).cloned().unwrap_or_else(|| panic!("{path} selects nothing in {input}"))
    })
}

/// A Parameters or Payload template: `key.$` fields are paths or the intrinsic the definitions
/// use (`States.JsonMerge`), the rest are literals.
fn build(template: &Value, input: &Value) -> Value {
    let Value::Object(fields) = template else { return template.clone() };
    let mut out = Map::new();
    for (key, value) in fields {
        if let Some(key) = key.strip_suffix(".$") {
            let expression = value.as_str().unwrap();
            let resolved = if let Some(args) =
                expression.strip_prefix("States.JsonMerge(").and_then(|a| a.strip_suffix(")"))
            {
                let args: Vec<&str> = args.split(',').map(str::trim).collect();
                assert_eq!(args[2], "false", "only shallow merges are used");
                let mut merged = select(input, args[0]).as_object().unwrap().clone();
                merged.extend(select(input, args[1]).as_object().unwrap().clone());
                Value::Object(merged)
            } else {
                select(input, expression)
            };
            out.insert(key.to_owned(), resolved);
        } else {
            out.insert(key.clone(), build(value, input));
        }
    }
    Value::Object(out)
}

/// Runs the states of `machine` from its StartAt; returns the last output and the Task
/// payloads it sent, in order.
async fn execute(app: &App, machine: &Value, input: Value, store: &Path) -> (Value, Vec<Value>) {
    let states = &machine["States"];
    let mut name = machine["StartAt"].as_str().unwrap().to_owned();
    let mut data = input;
    let mut sent = Vec::new();
    loop {
        let state = &states[&name];
        let mut output = match state["Type"].as_str().unwrap() {
            "Pass" => build(&state["Parameters"], &data),
            "Task" => {
                let parameters = &state["Parameters"];
                assert_eq!(parameters["FunctionName"], "${CryptoEtlFunctionArn}");
                let payload = build(&parameters["Payload"], &data);
                sent.push(payload.clone());
                let result = app
                    .handle(payload.clone())
                    .await
                    .unwrap_or_else(|f| panic!("{name} failed on {payload}: {f:?}"));
                json!({ "Payload": result })
            }
            "Choice" => {
                let rule = &state["Choices"][0];
                let value = select(&data, rule["Variable"].as_str().unwrap());
                let threshold = &rule["NumericGreaterThan"];
                name = if value.as_f64() > threshold.as_f64() {
                    rule["Next"].clone()
                } else {
                    state["Default"].clone()
                }
                .as_str()
                .unwrap()
                .to_owned();
                continue;
            }
            "Map" => {
                let reader = build(&state["ItemReader"]["Parameters"], &data);
                let items: Vec<Value> = serde_json::from_slice(
                    &std::fs::read(store.join(reader["Key"].as_str().unwrap())).unwrap(),
                )
                .unwrap();
                let mut results = Vec::new();
                for item in items {
                    let (result, payloads) =
                        Box::pin(execute(app, &state["ItemProcessor"], item, store)).await;
                    sent.extend(payloads);
                    results.push(result);
                }
                let mut merged = data.clone();
                merged["results"] = Value::Array(results);
                merged
            }
            "Succeed" => return (data, sent),
            other => panic!("state {name} of type {other} reached"),
        };
        if let Some(path) = state["OutputPath"].as_str() {
            output = select(&output, path);
        }
        data = output;
        match state["Next"].as_str() {
            Some(next) => name = next.to_owned(),
            None => return (data, sent),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_machines_feed_each_stage_what_the_handler_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let coingecko = MockServer::start().await;
    serve_snapshot(&coingecko, "markets-2023-05-13-250.json", "global-2026-09-12.json").await;
    let settings = [
        ("CRYPTO_ETL_STORE", store.display().to_string()),
        ("CRYPTO_ETL_WAREHOUSE", format!("duckdb:{}", dir.path().join("crypto.duckdb").display())),
        ("CRYPTO_ETL_CACHE_DIR", dir.path().join("cache").display().to_string()),
        ("CRYPTO_ETL_TOP", "250".to_owned()),
        ("COINGECKO_BASE_URL", base_url(&coingecko)),
        ("COINGECKO_API_KEY", "test-demo-key".to_owned()),
    ];
    let get = |name: &str| settings.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
    let app = App::from_env(&get).await.unwrap();

    // The light machine, started as the schedule starts it (an empty object).
    let light = definition("crypto_etl_state_machine_light.asl.json");
    let (output, sent) = execute(&app, &light, json!({}), &store).await;
    let stages: Vec<&str> = sent.iter().map(|p| p["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["extract", "transform", "load"]);
    assert_eq!(output["status"], "success", "{output}");
    assert!(output["rows_loaded"].as_u64().unwrap() > 200, "{output}");
    // Transform got exactly the original Lambda's input, and load the original's.
    let fields = |p: &Value| {
        let mut keys = p.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        keys.sort();
        keys
    };
    assert_eq!(fields(&sent[1]), ["fetch_time", "file_path", "stage"]);
    assert_eq!(fields(&sent[2]), ["bucket_name", "file_name", "stage"]);

    // The backfill machine over what is stored: the plan, then transform and load per snapshot.
    let backfill = definition("crypto_etl_backfill.asl.json");
    let (output, sent) = execute(&app, &backfill, json!({"from": "2000-01-01"}), &store).await;
    let stages: Vec<&str> = sent.iter().map(|p| p["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["backfill_plan", "transform", "load"]);
    assert_eq!(output["count"], 1, "{output}");
    assert_eq!(output["results"][0]["status"], "success", "{output}");
}
