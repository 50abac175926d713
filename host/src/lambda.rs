//! The AWS Lambda entry point: one function serving every stage.
//!
//! The binary runs as a Lambda when the runtime starts it (`AWS_LAMBDA_RUNTIME_API` is set).
//! The stage is chosen explicitly, by the event's `stage` field or the function's
//! `CRYPTO_ETL_STAGE` setting; the rest of the event is the original pipeline's:
//!
//! | stage           | reads                         | returns (a superset of the original)       |
//! |-----------------|-------------------------------|--------------------------------------------|
//! | `extract`       | (`currency`, `fetch_time`)    | `status`, `file_path`, `fetch_time`, ...   |
//! | `transform`     | `file_path`, `fetch_time`     | `status`, `bucket_name`, `file_name`, ...  |
//! | `load`          | `bucket_name`, `file_name`    | `status`, `message`, `rows_loaded`, ...    |
//! | `backfill_plan` | (`from`, `to`)                | `bucket_name`, `items_key`, `count`        |
//!
//! Failures reach Step Functions as typed error names (`CryptoEtl.Transient` and so on, see
//! [`FailureKind`]) so its Retry rules retry only what may pass later. Clients, the plugin
//! runtime and compiled plugins are built once per container; compiled plugins are cached in
//! `/tmp` by content hash. Logs are JSON lines; metrics use CloudWatch's embedded metric format.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::extract::coingecko::{ApiKey, ApiPlan, ClientConfig, CoinGecko, RetryPolicy};
use crate::extract::{ExtractEvent, ExtractRequest, extract};
use crate::load::{DEFAULT_TABLE, SNOWFLAKE, SnowflakeSettings, TableName, Warehouse};
use crate::pipeline::Pipeline;
use crate::pipeline::published;
use crate::plugin::{Limits, Runtime};
use crate::snapshot::FetchTime;
use crate::stages::{self, BackfillEvent, FailureKind, LoadEvent, StageError, TransformEvent};
use crate::store::{Key, S3Options, Store, StoreUrl};

/// Whether this process was started by the Lambda runtime.
pub fn is_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Serves invocations until the runtime stops the process.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_target(false)
        .without_time() // CloudWatch stamps every line
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // A function that cannot start says why and exits: Lambda reports it as an init failure.
    let app = match App::from_env(&|name| std::env::var(name).ok()).await {
        Ok(app) => Arc::new(app),
        Err(failed) => {
            return Err(format!("{}: {}", failed.kind.error_name(), failed.message).into());
        }
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = Arc::clone(&app);
        async move { app.handle(event.payload).await }
    }))
    .await
}

/// A failed invocation, as the runtime reports it.
#[derive(Debug)]
pub struct Failed {
    pub kind: FailureKind,
    pub message: String,
}

impl From<Failed> for Diagnostic {
    fn from(failed: Failed) -> Self {
        Diagnostic {
            error_type: failed.kind.error_name().to_owned(),
            error_message: failed.message,
        }
    }
}

impl From<StageError> for Failed {
    fn from(error: StageError) -> Self {
        Failed { kind: error.kind(), message: error.to_string() }
    }
}

fn bad_event(message: impl Into<String>) -> Failed {
    Failed { kind: FailureKind::BadEvent, message: message.into() }
}

/// An event, once its stage is known.
#[derive(Debug, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum StageEvent {
    Extract(ExtractStageEvent),
    Transform(TransformEvent),
    Load(LoadEvent),
    BackfillPlan(BackfillEvent),
}

/// What extract takes: nothing (a schedule's event), or what to change for this snapshot;
/// absent or null fields keep the function's settings.
#[derive(Debug, Default, Deserialize)]
pub struct ExtractStageEvent {
    /// Pins the snapshot's fetch time (a re-run of the same snapshot).
    #[serde(default)]
    pub fetch_time: Option<String>,
    /// Quote currency, e.g. `eur`.
    #[serde(default)]
    pub currency: Option<String>,
    /// How many coins, by market cap.
    #[serde(default)]
    pub coins: Option<usize>,
}

/// The stage names, as events spell them.
pub const STAGES: [&str; 4] = ["extract", "transform", "load", "backfill_plan"];

/// Reads an invocation's event; `default_stage` is the function's `CRYPTO_ETL_STAGE`.
pub fn parse_event(payload: Value, default_stage: Option<&str>) -> Result<StageEvent, Failed> {
    let Value::Object(mut fields) = payload else {
        return Err(bad_event(format!(
            "the event must be a JSON object, not {}",
            match payload {
                Value::Null => "null",
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                _ => "a scalar",
            }
        )));
    };
    match (fields.get("stage"), default_stage) {
        (Some(Value::String(_)), _) => {}
        (Some(other), _) => {
            return Err(bad_event(format!("`stage` must be a string, not {other}")));
        }
        (None, Some(stage)) => {
            fields.insert("stage".into(), Value::String(stage.to_owned()));
        }
        (None, None) => {
            return Err(bad_event(format!(
                "the event has no `stage` and the function has no CRYPTO_ETL_STAGE; say which stage to run ({})",
                STAGES.join(", ")
            )));
        }
    }
    let stage = fields.get("stage").and_then(Value::as_str).unwrap_or_default().to_owned();
    if !STAGES.contains(&stage.as_str()) {
        return Err(bad_event(format!(
            "unknown stage {stage:?}; the stages are {}",
            STAGES.join(", ")
        )));
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| bad_event(format!("the {stage} event is not valid: {e}")))
}

/// What a container keeps between invocations.
pub struct App {
    store: Store,
    runtime: Runtime,
    plugin_dir: PathBuf,
    coingecko: CoinGecko,
    extract_request: ExtractRequest,
    default_stage: Option<String>,
    warehouse_spec: String,
    table: TableName,
    /// Built on the first load, so extract and transform never need warehouse credentials.
    warehouse: OnceCell<Warehouse>,
    /// The stored pipeline and the manifest text it came from, reused while unchanged.
    pipeline: tokio::sync::Mutex<Option<(Vec<u8>, Pipeline)>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store.describe())
            .field("warehouse", &self.warehouse_spec)
            .field("default_stage", &self.default_stage)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Builds the container's state from the function's settings (`get` reads the environment).
    pub async fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, Failed> {
        let config = |message: String| Failed { kind: FailureKind::Config, message };
        let store_url = get("CRYPTO_ETL_STORE").ok_or_else(|| {
            config("CRYPTO_ETL_STORE is not set; give the function its bucket (s3://bucket)".into())
        })?;
        let store_url = StoreUrl::parse(&store_url).map_err(|e| config(e.to_string()))?;
        let s3 = S3Options {
            endpoint: get("CRYPTO_ETL_S3_ENDPOINT"),
            path_style: get("CRYPTO_ETL_S3_PATH_STYLE").is_some_and(|v| v == "true" || v == "1"),
        };
        let store = Store::open(&store_url, &s3).await.map_err(|e| config(e.to_string()))?;
        let cache_root =
            PathBuf::from(get("CRYPTO_ETL_CACHE_DIR").unwrap_or("/tmp/crypto-etl".into()));
        let runtime = Runtime::new(Limits::default(), Some(cache_root.join("compiled")))
            .map_err(|e| config(e.to_string()))?;

        let plan: ApiPlan = match get("COINGECKO_API_PLAN") {
            Some(plan) => plan.parse().map_err(config)?,
            None => ApiPlan::Demo,
        };
        let api_key = match get("COINGECKO_SECRET_ARN").filter(|arn| !arn.is_empty()) {
            Some(arn) => secret_fields(&arn)
                .await
                .map_err(config)?
                .get("COINGECKO_API_KEY")
                .and_then(Value::as_str)
                .map(str::to_owned),
            None => get("COINGECKO_API_KEY"),
        };
        let api_key = api_key.filter(|k| !k.is_empty()).map(ApiKey::new);
        let coingecko = CoinGecko::new(ClientConfig {
            plan,
            base_url: get("COINGECKO_BASE_URL").unwrap_or_else(|| plan.default_base_url().into()),
            min_interval: plan.default_interval(api_key.is_some()),
            api_key,
            retry: RetryPolicy::default(),
        })
        .map_err(|e| config(e.to_string()))?;
        let extract_request = ExtractRequest {
            top: match get("CRYPTO_ETL_TOP") {
                Some(top) => top
                    .parse()
                    .map_err(|_| config(format!("CRYPTO_ETL_TOP={top:?} is not a number")))?,
                None => 500,
            },
            currency: get("CRYPTO_ETL_CURRENCY").unwrap_or_else(|| "usd".into()),
            price_change_percentage: "24h".into(),
            include_global: true,
        };
        extract_request.validate().map_err(|e| config(e.to_string()))?;
        let table =
            TableName::new(&get("CRYPTO_ETL_TABLE").unwrap_or_else(|| DEFAULT_TABLE.into()))
                .map_err(|e| config(e.to_string()))?;
        Ok(Self {
            store,
            runtime,
            plugin_dir: cache_root.join("plugins"),
            coingecko,
            extract_request,
            default_stage: get("CRYPTO_ETL_STAGE"),
            warehouse_spec: get("CRYPTO_ETL_WAREHOUSE").unwrap_or_else(|| SNOWFLAKE.into()),
            table,
            warehouse: OnceCell::new(),
            pipeline: tokio::sync::Mutex::new(None),
        })
    }

    /// Runs one invocation.
    pub async fn handle(&self, payload: Value) -> Result<Value, Failed> {
        let event = parse_event(payload, self.default_stage.as_deref())?;
        let started = Instant::now();
        let result = match event {
            StageEvent::Extract(event) => self.extract(event).await,
            StageEvent::Transform(event) => self.transform(event).await,
            StageEvent::Load(event) => self.load(event).await,
            StageEvent::BackfillPlan(event) => self.backfill_plan(event).await,
        };
        match &result {
            Ok(output) => {
                tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, output = %output, "stage done")
            }
            Err(failed) => {
                tracing::error!(error_type = failed.kind.error_name(), message = %failed.message, "stage failed")
            }
        }
        result
    }

    async fn extract(&self, event: ExtractStageEvent) -> Result<Value, Failed> {
        let fetch_time = match &event.fetch_time {
            Some(text) => FetchTime::parse(text).map_err(|e| bad_event(e.to_string()))?,
            None => FetchTime::now(),
        };
        let mut request = self.extract_request.clone();
        if let Some(currency) = event.currency {
            request.currency = currency;
        }
        if let Some(coins) = event.coins {
            request.top = coins;
        }
        request.validate().map_err(|e| bad_event(e.to_string()))?;
        let mut retries = 0u64;
        let mut on_event = |event: ExtractEvent| {
            if let ExtractEvent::Retry(notice) = event {
                retries += 1;
                tracing::warn!(what = %notice.what, attempt = notice.attempt, reason = %notice.reason, "retrying");
            }
        };
        let extracted = extract(&self.coingecko, &self.store, &request, fetch_time, &mut on_event)
            .await
            .map_err(|e| Failed::from(StageError::from(e)))?;
        metrics(
            "extract",
            &[
                ("CoinsFetched", extracted.coins as f64, "Count"),
                ("Retries", retries as f64, "Count"),
            ],
            None,
        );
        to_value(&extracted)
    }

    async fn transform(&self, event: TransformEvent) -> Result<Value, Failed> {
        let pipeline = self.current_pipeline().await?;
        let output = stages::transform(&self.runtime, &self.store, &pipeline, &event).await?;
        metrics(
            "transform",
            &[
                ("CoinsIn", output.rows_in as f64, "Count"),
                ("CoinsKept", output.rows_out as f64, "Count"),
                ("CoinsRejected", output.rows_rejected as f64, "Count"),
            ],
            None,
        );
        for plugin in &output.plugins {
            metrics(
                "transform",
                &[("PluginMilliseconds", plugin.millis, "Milliseconds")],
                Some(&plugin.plugin.name),
            );
        }
        to_value(&output)
    }

    async fn load(&self, event: LoadEvent) -> Result<Value, Failed> {
        let warehouse = self
            .warehouse
            .get_or_try_init(|| async {
                let table = self.table.clone();
                let warehouse = if self.warehouse_spec == SNOWFLAKE {
                    match snowflake_settings().await {
                        Ok(settings) => Warehouse::snowflake(settings, table),
                        Err(e) => Err(e),
                    }
                } else {
                    Warehouse::parse(&self.warehouse_spec, table)
                };
                warehouse.map_err(|e| Failed::from(StageError::from(e)))
            })
            .await?;
        let output = stages::load(warehouse, &self.store, &event).await?;
        metrics("load", &[("RowsLoaded", output.report.rows_loaded as f64, "Count")], None);
        to_value(&output)
    }

    async fn backfill_plan(&self, event: BackfillEvent) -> Result<Value, Failed> {
        let items = stages::stored_snapshots(&self.store, &event).await?;
        let key = Key::new(&format!("backfill/{}/items.json", FetchTime::now().key()))
            .map_err(|e| Failed { kind: FailureKind::Failed, message: e.to_string() })?;
        let body = serde_json::to_vec(&items).unwrap_or_default();
        self.store
            .put(&key, body, "application/json")
            .await
            .map_err(|e| Failed::from(StageError::Store(e)))?;
        Ok(json!({
            "status": "success",
            "bucket_name": self.store.bucket_name(),
            "items_key": self.store.object_name(&key),
            "count": items.len(),
        }))
    }

    /// The pipeline in the store (`plugins/pipeline.toml`), or the built-in default when there
    /// is none. Read on every transform, so a newly published plugin runs on the next one.
    async fn current_pipeline(&self) -> Result<Pipeline, Failed> {
        let mut cached = self.pipeline.lock().await;
        let text = match published::manifest(&self.store).await {
            Ok(Some(text)) => text,
            Ok(None) => {
                *cached = None;
                return Ok(Pipeline::default_pipeline());
            }
            Err(e) => return Err(StageError::from(e).into()),
        };
        if let Some((seen, pipeline)) = cached.as_ref()
            && *seen == text
        {
            return Ok(pipeline.clone());
        }
        let pipeline = published::materialize(&self.store, &self.plugin_dir, &text)
            .await
            .map_err(|e| Failed::from(StageError::from(e)))?;
        *cached = Some((text, pipeline.clone()));
        Ok(pipeline)
    }
}

/// Snowflake settings from the environment, with the fields of the Secrets Manager secret named
/// by `SNOWFLAKE_SECRET_ARN` (a JSON object of `SNOWFLAKE_*` names) taking precedence.
async fn snowflake_settings() -> Result<SnowflakeSettings, crate::load::LoadError> {
    let secret = match std::env::var("SNOWFLAKE_SECRET_ARN") {
        Ok(arn) if !arn.is_empty() => {
            secret_fields(&arn).await.map_err(crate::load::LoadError::Config)?
        }
        _ => serde_json::Map::new(),
    };
    SnowflakeSettings::from_lookup(|name| {
        secret
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| std::env::var(name).ok())
    })
}

/// The fields of a Secrets Manager secret holding a JSON object.
async fn secret_fields(arn: &str) -> Result<serde_json::Map<String, Value>, String> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let value = client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
        format!(
            "could not read the secret {arn}: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
        )
    })?;
    serde_json::from_str(value.secret_string().unwrap_or_default())
        .map_err(|_| format!("the secret {arn} is not a JSON object of settings"))
}

fn to_value<T: serde::Serialize>(output: &T) -> Result<Value, Failed> {
    serde_json::to_value(output).map_err(|e| Failed {
        kind: FailureKind::Failed,
        message: format!("unserializable output: {e}"),
    })
}

/// Prints one CloudWatch embedded-metric-format record: CloudWatch turns it into metrics in the
/// `CryptoEtl` namespace, by stage (and plugin).
fn metrics(stage: &str, values: &[(&str, f64, &str)], plugin: Option<&str>) {
    let mut dimensions = vec!["Stage"];
    if plugin.is_some() {
        dimensions.push("Plugin");
    }
    let definitions: Vec<Value> =
        values.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64;
    let mut record = json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": "CryptoEtl",
                "Dimensions": [dimensions],
                "Metrics": definitions,
            }],
        },
        "Stage": stage,
    });
    if let Some(plugin) = plugin {
        record["Plugin"] = json!(plugin);
    }
    for (name, value, _) in values {
        record[*name] = json!(value);
    }
    println!("{record}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_is_explicit() {
        let event = json!({"file_path": "s3://b/raw/x.json", "fetch_time": "2026-11-27T10-00-00Z"});
        let error = parse_event(event.clone(), None).unwrap_err();
        assert_eq!(error.kind, FailureKind::BadEvent);
        assert!(error.message.contains("CRYPTO_ETL_STAGE"), "{}", error.message);
        assert!(matches!(parse_event(event, Some("transform")), Ok(StageEvent::Transform(_))));
        let error = parse_event(json!({"stage": "deploy"}), None).unwrap_err();
        assert!(error.message.contains("unknown stage \"deploy\""), "{}", error.message);
    }

    #[test]
    fn malformed_events_say_what_is_missing() {
        let error = parse_event(json!({"stage": "load", "bucket_name": "b"}), None).unwrap_err();
        assert_eq!(error.kind, FailureKind::BadEvent);
        assert!(error.message.contains("file_name"), "{}", error.message);
        let error = parse_event(json!([1, 2]), None).unwrap_err();
        assert!(error.message.contains("an array"), "{}", error.message);
    }
}
