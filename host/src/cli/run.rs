//! `crypto-etl run` and `crypto-etl load`

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use crypto_etl::extract::import;
use crypto_etl::load::{DEFAULT_TABLE, LoadError, TableName, Warehouse};
use crypto_etl::snapshot::FetchTime;
use crypto_etl::stages::{self, EventError, LoadEvent, StageError, TransformEvent};
use crypto_etl::store::Store;
use crypto_etl::transform::fetch_time_for;
use serde_json::json;

use super::extract::{SourceArgs, failure as extract_failure};
use super::{Code, Failure, RuntimeArgs, StoreArgs};

const RUN_EXAMPLES: &str = "\
Examples:
  # The whole pipeline on a saved response, no network or account needed
  crypto-etl run --source samples/coins-markets.json

  # Live from CoinGecko into the local DuckDB file (data/crypto.duckdb)
  crypto-etl run

  # The same snapshot again: its rows are replaced, never duplicated
  crypto-etl run --source raw.json --fetch-time 2026-11-27T10-00-00Z";

const LOAD_EXAMPLES: &str = "\
Examples:
  # Load what a transform wrote (its output event is the input here)
  crypto-etl load --event '{\"bucket_name\": \"data\", \"file_name\": \"processed/dt=2026-11-27/processed_crypto_data_2026-11-27T10-00-00Z.csv\"}'";

/// Where to load, shared by `run` and `load`.
#[derive(Debug, Args)]
pub(super) struct WarehouseArgs {
    /// The warehouse: duckdb:PATH, or snowflake (configured by SNOWFLAKE_* variables: ACCOUNT,
    /// USER, PASSWORD or PRIVATE_KEY[_PATH], WAREHOUSE, DATABASE, SCHEMA, ROLE, STAGE, ENDPOINT).
    #[arg(
        long,
        value_name = "duckdb:PATH|snowflake",
        env = "CRYPTO_ETL_WAREHOUSE",
        default_value = "duckdb:data/crypto.duckdb"
    )]
    warehouse: String,

    /// The table snapshots are loaded into.
    #[arg(long, env = "CRYPTO_ETL_TABLE", default_value = DEFAULT_TABLE)]
    table: String,
}

impl WarehouseArgs {
    /// Whether it names Snowflake (whose settings are read only when it is opened).
    #[cfg(feature = "duckdb")] // only `report` asks, and it exists only with DuckDB
    pub(super) fn is_snowflake(&self) -> bool {
        self.warehouse == crypto_etl::load::SNOWFLAKE
    }

    pub(super) fn open(&self) -> Result<Warehouse, Failure> {
        let table =
            TableName::new(&self.table).map_err(|e| Failure::new(Code::BadInput, e.to_string()))?;
        Warehouse::parse(&self.warehouse, table)
            .map_err(|e| Failure::new(Code::BadInput, e.to_string()))
    }
}

/// Run extract, transform and load in a row, passing the same events the state machine passes.
///
/// The raw snapshot, the processed CSV and the quarantine go to the store (default ./data), the
/// rows to the warehouse (default data/crypto.duckdb, table CRYPTO_DATA). A snapshot is known by
/// its fetch time and currency: running the same one twice replaces its rows.
#[derive(Debug, Args)]
#[command(after_help = RUN_EXAMPLES)]
pub struct RunArgs {
    /// `coingecko` for a live fetch, or the path of a saved /coins/markets response.
    #[arg(long, value_name = "coingecko|FILE", default_value = "coingecko")]
    source: String,

    /// The snapshot's fetch time [default: now, or from a raw_crypto_data_<time>.json name].
    #[arg(long, value_name = "TIME", value_parser = FetchTime::parse)]
    fetch_time: Option<FetchTime>,

    /// `default`, `seed-compat`, a pipeline manifest, or `stored` (the store's
    /// plugins/pipeline.toml, as the Lambda runs it).
    #[arg(long, value_name = "NAME|FILE", default_value = "default")]
    pipeline: String,

    /// Print the three stages' events as JSON instead of a summary.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    coingecko: SourceArgs,

    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    warehouse: WarehouseArgs,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// Load one processed CSV into the warehouse, given the transform's output event.
#[derive(Debug, Args)]
#[command(after_help = LOAD_EXAMPLES)]
pub struct LoadArgs {
    /// The event: {"bucket_name": ..., "file_name": ...} (the transform's output).
    #[arg(long, value_name = "JSON")]
    event: String,

    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    warehouse: WarehouseArgs,
}

pub(super) fn stage_failure(error: StageError) -> Failure {
    let code = match &error {
        StageError::Event(EventError::Location(_))
        | StageError::Event(EventError::Malformed(_)) => Code::BadInput,
        StageError::Transform(e) => return super::transform::failure(e),
        StageError::Load(
            LoadError::Warehouse { .. } | LoadError::Staging(_) | LoadError::Unreachable { .. },
        ) => Code::Output,
        StageError::Load(_) => Code::BadInput,
        StageError::Extract(_) => Code::Source,
        StageError::Published(_) => Code::Pipeline,
        StageError::Store(_) => Code::Output,
    };
    Failure::new(code, error.to_string()).hint("the raw snapshot and the processed files stay in the store; fix the cause and run the stage again")
}

pub fn run(args: RunArgs, quiet: bool) -> Result<(), Failure> {
    let warehouse = args.warehouse.open()?;
    let plugins = args.runtime.runtime()?;
    let tokio = super::tokio_runtime()?;
    let events = tokio.block_on(async {
        let store = args.store.open().await?;
        let pipeline = super::resolve_pipeline(&args.pipeline, &store, &args.runtime).await?;
        let extracted = if args.source == "coingecko" {
            let fetch_time = args.fetch_time.unwrap_or_else(FetchTime::now);
            args.coingecko.extract(&store, fetch_time, quiet).await.map_err(|f| match f.code {
                Code::Source => {
                    let before = f.hint.clone().unwrap_or_default();
                    f.hint(format!(
                        "{before}; with no network, run on a saved response: crypto-etl run --source samples/coins-markets.json"
                    ))
                }
                _ => f,
            })?
        } else {
            import_file(&store, &args.source, args.fetch_time, &args.coingecko.currency).await?
        };
        say(quiet, args.json, &format!("extract    {} coins -> {}", extracted.coins, extracted.file_path));

        let transform_event: TransformEvent = serde_json::from_value(json!(extracted))
            .map_err(|e| Failure::new(Code::Internal, e.to_string()))?;
        let transformed = stages::transform(&plugins, &store, &pipeline, &transform_event).await.map_err(stage_failure)?;
        say(
            quiet,
            args.json,
            &format!(
                "transform  {} kept, {} rejected -> {} (quarantine: {})",
                transformed.rows_out, transformed.rows_rejected, transformed.file_name, transformed.quarantine_file
            ),
        );

        let load_event = LoadEvent { bucket_name: transformed.bucket_name.clone(), file_name: transformed.file_name.clone() };
        let loaded = stages::load(&warehouse, &store, &load_event).await.map_err(stage_failure)?;
        say(quiet, args.json, &format!("load       {} ({})", loaded.message, loaded.warehouse));
        Ok::<_, Failure>(json!({ "extract": extracted, "transform": transformed, "load": loaded }))
    })?;
    if args.json {
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&events).unwrap_or_default()
        );
    }
    Ok(())
}

fn say(quiet: bool, json: bool, line: &str) {
    if !quiet && !json {
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

async fn import_file(
    store: &Store,
    source: &str,
    fetch_time: Option<FetchTime>,
    currency: &str,
) -> Result<crypto_etl::extract::Extracted, Failure> {
    let path = PathBuf::from(source);
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        Failure::new(Code::BadInput, format!("could not read --source {source}: {e}"))
            .hint("--source takes `coingecko` or the path of a saved /coins/markets response")
    })?;
    let fetch_time = fetch_time_for(&path, fetch_time).unwrap_or_else(FetchTime::now);
    import(store, bytes, source, currency, fetch_time).await.map_err(extract_failure)
}

pub fn load(args: LoadArgs) -> Result<(), Failure> {
    let event: LoadEvent = serde_json::from_str(&args.event).map_err(|e| {
        Failure::new(Code::BadInput, format!("the event is not a load event: {e}"))
            .hint("give the transform's output, e.g. {\"bucket_name\": \"data\", \"file_name\": \"processed/...csv\"}")
    })?;
    let warehouse = args.warehouse.open()?;
    let tokio = super::tokio_runtime()?;
    let output = tokio.block_on(async {
        let store = args.store.open().await?;
        stages::load(&warehouse, &store, &event).await.map_err(stage_failure)
    })?;
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&output).unwrap_or_default()
    );
    Ok(())
}
