//! Command-line interface: argument parsing, logging, and exit codes. Each command is a thin
//! caller of the library's stage functions.

mod backfill;
pub mod config;
mod extract;
mod plugin;
mod plugin_author;
#[cfg(feature = "duckdb")]
mod report;
mod run;
mod transform;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use crypto_etl::plugin::{Limits, Runtime};
use crypto_etl::store::{S3Options, Store, StoreUrl};
use tracing_subscriber::EnvFilter;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  unexpected failure (a bug: please report it)
  2  bad command line
  3  the input cannot be used (unreadable, not a list of coins, empty); nothing was written
  4  the pipeline failed (bad manifest, plugin refused or crashed); nothing was written
  5  the output or the store could not be written
  6  CoinGecko failed or refused (after retries); nothing was stored
  7  a backfill finished, but some snapshots failed (listed in its summary)

Environment:
  CRYPTO_ETL_LOG        log filter, e.g. `info` or `crypto_etl=debug` (default: warn)
  CRYPTO_ETL_CACHE_DIR  where compiled plugins are cached
  CRYPTO_ETL_STORE      the default --store (a folder or s3://bucket/prefix)
  CRYPTO_ETL_WAREHOUSE  the default --warehouse (duckdb:PATH or snowflake); CRYPTO_ETL_TABLE the table
  CRYPTO_ETL_S3_ENDPOINT, CRYPTO_ETL_S3_PATH_STYLE   S3-compatible servers and VPC endpoints
  CRYPTO_ETL_CONFIG     the configuration file (default ./crypto-etl.toml when present)
  SNOWFLAKE_*           Snowflake account, user, password or key pair, database, schema, stage
  COINGECKO_API_KEY, COINGECKO_API_PLAN, COINGECKO_BASE_URL   how to reach CoinGecko
  AWS_*                 S3 credentials, region and endpoint, as for any AWS tool";

/// CoinGecko market snapshots to a warehouse, transformed by sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "crypto-etl", version, after_long_help = long_help())]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// A configuration file [default: ./crypto-etl.toml when present]; its keys are listed in
    /// `crypto-etl --help`.
    #[arg(long, global = true, value_name = "FILE", env = "CRYPTO_ETL_CONFIG")]
    pub config_file: Option<PathBuf>,

    /// More log output (-v: info, -vv: crypto-etl's debug, with each phase timed; -vvv: every
    /// library's debug; -vvvv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run extract, transform and load in a row (the whole pipeline, locally).
    Run(run::RunArgs),
    /// Fetch the top coins from CoinGecko and store the raw snapshot exactly as received.
    Extract(extract::ExtractArgs),
    /// Clean a raw snapshot and add derived fields with the plugin pipeline.
    Transform(transform::TransformArgs),
    /// Load a processed CSV into the warehouse (given the transform's output event).
    Load(run::LoadArgs),
    /// Reprocess stored raw snapshots with the current pipeline and load them again.
    Backfill(backfill::BackfillArgs),
    /// Write an HTML page about the loaded snapshots (totals, dominance, movers, trends).
    #[cfg(feature = "duckdb")]
    Report(report::ReportArgs),
    /// Work with plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Exit codes, environment variables and the configuration file's keys: the one place that
/// documents every setting.
fn long_help() -> String {
    format!("{EXIT_CODES}\n\n{}", config::help())
}

/// Limits and caching of the plugin sandbox, shared by every command that runs plugins.
#[derive(Debug, Args)]
struct RuntimeArgs {
    /// Wall-clock time one plugin call may take, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    plugin_deadline_ms: u64,

    /// Memory one plugin instance may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    plugin_memory_mib: usize,

    /// Output one plugin call may return, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    plugin_output_mib: usize,

    /// Where compiled plugins are cached [default: the user's cache folder].
    #[arg(long, value_name = "DIR", env = "CRYPTO_ETL_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile plugins afresh instead of using the disk cache.
    #[arg(long)]
    no_cache: bool,
}

impl RuntimeArgs {
    fn runtime(&self) -> Result<Runtime, Failure> {
        let limits = Limits {
            deadline: Duration::from_millis(self.plugin_deadline_ms),
            memory: self.plugin_memory_mib << 20,
            output: self.plugin_output_mib << 20,
        };
        let cache_dir = match (&self.cache_dir, self.no_cache) {
            (_, true) => None,
            (Some(dir), false) => Some(dir.clone()),
            (None, false) => dirs::cache_dir().map(|d| d.join("crypto-etl").join("plugins")),
        };
        Runtime::new(limits, cache_dir).map_err(|e| Failure::new(Code::Internal, e.to_string()))
    }

    /// Where plugins read from a store's pipeline are kept, by sha256.
    fn published_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .or_else(|| dirs::cache_dir().map(|d| d.join("crypto-etl").join("plugins")))
            .unwrap_or_else(|| std::env::temp_dir().join("crypto-etl"))
            .join("published")
    }
}

/// Where snapshots are kept, shared by every command that reads or writes them.
#[derive(Debug, Args)]
struct StoreArgs {
    /// A folder, or s3://bucket[/prefix].
    #[arg(long, value_name = "DIR|S3_URL", env = "CRYPTO_ETL_STORE", default_value = "data")]
    store: String,

    /// S3 endpoint, for S3-compatible servers or VPC endpoints (AWS_ENDPOINT_URL_S3 works too).
    #[arg(long, value_name = "URL", env = "CRYPTO_ETL_S3_ENDPOINT")]
    s3_endpoint: Option<String>,

    /// Address S3 buckets by path (endpoint/bucket/key), as S3-compatible servers need.
    #[arg(long, env = "CRYPTO_ETL_S3_PATH_STYLE")]
    s3_path_style: bool,
}

impl StoreArgs {
    async fn open(&self) -> Result<Store, Failure> {
        let url = StoreUrl::parse(&self.store)
            .map_err(|e| Failure::new(Code::BadInput, e.to_string()))?;
        let options =
            S3Options { endpoint: self.s3_endpoint.clone(), path_style: self.s3_path_style };
        Store::open(&url, &options).await.map_err(|e| Failure::new(Code::Output, e.to_string()))
    }
}

/// The pipeline `--pipeline` names: a built-in, a manifest file, or `stored` (the store's
/// plugins/pipeline.toml, as the Lambda runs it; the built-in default when there is none).
async fn resolve_pipeline(
    name: &str,
    store: &Store,
    runtime: &RuntimeArgs,
) -> Result<crypto_etl::pipeline::Pipeline, Failure> {
    use crypto_etl::pipeline::{Pipeline, published};
    if name == "stored" {
        return published::fetch(store, &runtime.published_dir())
            .await
            .map(|stored| stored.unwrap_or_else(Pipeline::default_pipeline))
            .map_err(|e| Failure::new(Code::Pipeline, e.to_string()));
    }
    Pipeline::resolve(name).map_err(|e| Failure::new(Code::Pipeline, e.to_string()))
}

/// Parses `--currency`.
fn currency(text: &str) -> Result<String, String> {
    if crypto_etl::names::is_valid_currency(text) {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not a CoinGecko currency code such as usd, eur or btc"))
    }
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| {
        Failure::new(Code::Internal, format!("could not start the async runtime: {e}"))
    })
}

/// Why a command failed, for the exit code and the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Internal = 1,
    BadInput = 3,
    Pipeline = 4,
    Output = 5,
    Source = 6,
    Partial = 7,
}

/// A failed command: exit code, what failed, and what to do about it.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), hint: None }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

pub fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        // wasmtime's and the AWS SDK's own debug lines would bury the phases.
        (false, 2) => "info,crypto_etl=debug",
        (false, 3) => "debug",
        (false, _) => "trace",
    };
    let filter =
        EnvFilter::try_from_env("CRYPTO_ETL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Run(args) => run::run(args, cli.quiet),
        Command::Extract(args) => extract::run(args, cli.quiet),
        Command::Load(args) => run::load(args),
        Command::Transform(args) => transform::run(args, cli.quiet),
        Command::Backfill(args) => backfill::run(args, cli.quiet),
        #[cfg(feature = "duckdb")]
        Command::Report(args) => report::run(args, cli.quiet),
        Command::Plugin(command) => plugin::run(command),
    }
}
