//! The `crypto-etl` binary as a Lambda function: started with `AWS_LAMBDA_RUNTIME_API` pointing
//! at a runtime API double, it takes the original pipeline's events and answers through the
//! runtime protocol, with typed errors for events it cannot act on.

use std::process::Stdio;

use crypto_etl_test_support::coingecko::{base_url, serve_snapshot};
use crypto_etl_test_support::lambda::{Outcome, RuntimeApi};
use crypto_etl_test_support::s3::S3Server;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::common::cache_dir;

const BUCKET: &str = "cm--raw-data";

struct Function {
    api: RuntimeApi,
    _process: tokio::process::Child,
}

impl Function {
    async fn start(env: Vec<(&'static str, String)>) -> Self {
        let api = RuntimeApi::start().await;
        let process = tokio::process::Command::new(env!("CARGO_BIN_EXE_crypto-etl"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "crypto-etl")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/crypto-etl")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start crypto-etl as a Lambda");
        Self { api, _process: process }
    }

    async fn invoke(&mut self, event: Value) -> Outcome {
        self.api.invoke(event).await
    }
}

fn response(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Response(value) => value,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn error(outcome: Outcome) -> (String, String) {
    match outcome {
        Outcome::Error { error_type, error_message } => (error_type, error_message),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_function_answers_the_original_events_through_the_runtime_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"), &[BUCKET]).await;
    let coingecko = MockServer::start().await;
    serve_snapshot(&coingecko, "markets-2024-12-19-250.json", "global-2026-09-12.json").await;
    let mut env = s3.env();
    env.extend([
        ("CRYPTO_ETL_STORE", format!("s3://{BUCKET}")),
        ("CRYPTO_ETL_WAREHOUSE", format!("duckdb:{}", dir.path().join("crypto.duckdb").display())),
        ("CRYPTO_ETL_CACHE_DIR", cache_dir().join("lambda").display().to_string()),
        ("CRYPTO_ETL_TOP", "250".into()),
        ("COINGECKO_BASE_URL", base_url(&coingecko)),
        ("COINGECKO_API_KEY", "test-demo-key".into()),
    ]);
    let mut function = Function::start(env).await;

    // Extract, as the schedule starts it: the original's output fields, and more.
    let extracted = response(function.invoke(json!({"stage": "extract"})).await);
    assert_eq!(extracted["status"], "success");
    let file_path = extracted["file_path"].as_str().unwrap().to_owned();
    let fetch_time = extracted["fetch_time"].as_str().unwrap().to_owned();
    assert!(file_path.starts_with(&format!("s3://{BUCKET}/raw/dt=")), "{file_path}");
    assert!(file_path.ends_with(&format!("raw_crypto_data_{fetch_time}.json")), "{file_path}");
    assert_eq!(extracted["coins"], 250);
    let raw_on_disk = dir
        .path()
        .join("s3")
        .join(BUCKET)
        .join(file_path.split_once(&format!("{BUCKET}/")).unwrap().1);
    assert!(raw_on_disk.exists(), "the raw snapshot is in the bucket");

    // Transform, with exactly the original transform Lambda's input.
    let transformed = response(
        function
            .invoke(json!({"stage": "transform", "file_path": file_path, "fetch_time": fetch_time}))
            .await,
    );
    assert_eq!(transformed["status"], "success");
    assert_eq!(transformed["bucket_name"], BUCKET);
    let file_name = transformed["file_name"].as_str().unwrap().to_owned();
    assert!(file_name.ends_with(&format!("processed_crypto_data_{fetch_time}.csv")), "{file_name}");
    let kept = transformed["rows_out"].as_u64().unwrap();
    assert!(kept > 200, "the default pipeline keeps the valid coins: {transformed}");
    let plugins: Vec<&str> = transformed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(plugins, ["clean", "market-share"]);
    assert_eq!(transformed["plugins"][0]["sha256"].as_str().unwrap().len(), 64);

    // Load, with exactly the original load Lambda's input; twice, as a Step Functions retry would.
    for attempt in 0..2 {
        let loaded = response(
            function
                .invoke(json!({"stage": "load", "bucket_name": BUCKET, "file_name": file_name}))
                .await,
        );
        assert_eq!(loaded["status"], "success");
        assert_eq!(loaded["rows_loaded"].as_u64(), Some(kept), "{loaded}");
        assert_eq!(loaded["rows_replaced"].as_u64(), Some(if attempt == 0 { 0 } else { kept }));
        assert!(loaded["message"].as_str().unwrap().contains("loaded"), "{loaded}");
    }

    // Malformed events: typed, non-retryable errors that say what is wrong, and the function
    // keeps serving.
    let (kind, message) =
        error(function.invoke(json!({"stage": "transform", "file_path": file_path})).await);
    assert_eq!(kind, "CryptoEtl.BadEvent");
    assert!(message.contains("fetch_time"), "{message}");
    let (kind, message) =
        error(function.invoke(json!({"file_path": file_path, "fetch_time": fetch_time})).await);
    assert_eq!(kind, "CryptoEtl.BadEvent");
    assert!(message.contains("stage"), "{message}");
    let (kind, message) = error(
        function
            .invoke(json!({"stage": "load", "bucket_name": "someone-elses-bucket", "file_name": file_name}))
            .await,
    );
    assert_eq!(kind, "CryptoEtl.BadEvent");
    assert!(message.contains("someone-elses-bucket"), "{message}");
    let (kind, _) = error(function.invoke(json!("transform")).await);
    assert_eq!(kind, "CryptoEtl.BadEvent");

    // Bad data is not retried either, and the raw object stays.
    let corrupt = "raw/dt=2026-01-01/raw_crypto_data_2026-01-01T00-00-00Z.json";
    std::fs::create_dir_all(dir.path().join("s3").join(BUCKET).join("raw/dt=2026-01-01")).unwrap();
    std::fs::write(
        dir.path().join("s3").join(BUCKET).join(corrupt),
        b"{\"status\": {\"error_code\": 429}}",
    )
    .unwrap();
    let (kind, _) = error(
        function
            .invoke(json!({"stage": "transform", "file_path": format!("s3://{BUCKET}/{corrupt}"), "fetch_time": "2026-01-01T00-00-00Z"}))
            .await,
    );
    assert_eq!(kind, "CryptoEtl.BadData");
    assert!(dir.path().join("s3").join(BUCKET).join(corrupt).exists());

    // The backfill plan lists the stored raw snapshots (not their .meta.json or /global files).
    let plan = response(function.invoke(json!({"stage": "backfill_plan"})).await);
    assert_eq!(plan["count"], 2, "{plan}");
    let items_key = plan["items_key"].as_str().unwrap();
    let items: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("s3").join(BUCKET).join(items_key)).unwrap(),
    )
    .unwrap();
    assert_eq!(items[0]["fetch_time"], "2026-01-01T00-00-00Z");
    assert_eq!(items[1]["file_path"], file_path.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_without_its_bucket_stops_at_init_and_says_why() {
    let api = RuntimeApi::start().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_crypto-etl"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "crypto-etl")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CryptoEtl.Config") && stderr.contains("CRYPTO_ETL_STORE"), "{stderr}");
}
