//! `crypto-etl plugin ...`

use std::path::PathBuf;

use clap::{Args, Subcommand};
use crypto_etl::pipeline::Pipeline;
use crypto_etl::pipeline::published::{self, Placement, PublishError};
use crypto_etl::plugin::{ACCEPTED_INTERFACES, TransformPlugin};

use super::{Code, Failure, RuntimeArgs, StoreArgs};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load a plugin component in the sandbox and show who it says it is and its sha256
    /// (what a pipeline manifest needs).
    #[command(
        after_help = "Example:\n  crypto-etl plugin inspect target/wasm32-wasip2/release/price_range.wasm"
    )]
    Inspect(InspectArgs),
    /// Check a plugin against the store's pipeline and add it there: the next transform (the
    /// Lambda's too) runs it, with no redeploy.
    #[command(after_help = PUBLISH_EXAMPLES)]
    Publish(PublishArgs),
    /// Create a plugin crate that builds as it is: one function to edit, a test, the SDK.
    #[command(after_help = NEW_EXAMPLES)]
    New(NewArgs),
    /// Run a plugin after the default chain on a snapshot, with production's limits and checks,
    /// and show what it read, wrote and rejected, and what it cost.
    #[command(after_help = TEST_EXAMPLES)]
    Test(TestArgs),
    /// Show the pipeline a store's transforms run (plugins/pipeline.toml, or the built-in default).
    #[command(after_help = "Example:\n  crypto-etl plugin list --store s3://my-bucket")]
    List(ListArgs),
}

const NEW_EXAMPLES: &str = "\
Example, from nothing to a new column:
  crypto-etl plugin new supply-ratio
  cd supply-ratio && cargo build --release --target wasm32-wasip2
  crypto-etl plugin test target/wasm32-wasip2/release/supply_ratio.wasm --input ../samples/coins-markets.json

The crate depends on the plugin SDK of this crypto-etl checkout (--sdk to use another copy).
See plugins/README.md for the whole guide.";

const TEST_EXAMPLES: &str = "\
Examples:
  crypto-etl plugin test target/wasm32-wasip2/release/supply_ratio.wasm --input samples/coins-markets.json
  crypto-etl plugin test my.wasm --input data/raw/dt=2026-11-27/raw_crypto_data_2026-11-27T10-00-00Z.json \\
      --config window=24h --rows 20";

const PUBLISH_EXAMPLES: &str = "\
Examples:
  # Add a plugin at the end of the bucket's pipeline
  crypto-etl plugin publish target/wasm32-wasip2/release/price_range.wasm --store s3://my-bucket

  # Right after clean, with configuration
  crypto-etl plugin publish volatility.wasm --store s3://my-bucket --after clean --config window=24h

Before anything is uploaded, the whole new chain runs over a reference snapshot with the
production limits and checks. The plugin is stored under its sha256 and the manifest
(plugins/pipeline.toml) is replaced in one write; publishing a plugin of the same name again
replaces it in place.";

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The plugin component (.wasm).
    wasm: PathBuf,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The plugin component (.wasm).
    wasm: PathBuf,

    /// Run it right after the plugin of this name [default: last].
    #[arg(long, value_name = "NAME")]
    after: Option<String>,

    /// Configuration for the plugin (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
    config: Vec<(String, String)>,

    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: lower-case letters, digits and `-` (e.g. supply-ratio). Its column is
    /// the same with `_`.
    name: String,

    /// The folder to create the crate in [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// The plugin SDK crate to depend on [default: this checkout's plugins/sdk].
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The plugin component (.wasm).
    wasm: PathBuf,

    /// A raw /coins/markets snapshot to run it on.
    #[arg(long, value_name = "RAW.json")]
    input: PathBuf,

    /// Configuration for the plugin (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
    config: Vec<(String, String)>,

    /// How many rows to show.
    #[arg(long, value_name = "N", default_value_t = 10)]
    rows: usize,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} should look like key=value")),
    }
}

pub fn run(command: PluginCommand) -> Result<(), Failure> {
    match command {
        PluginCommand::Inspect(args) => inspect(args),
        PluginCommand::Publish(args) => publish(args),
        PluginCommand::New(args) => super::plugin_author::new(args.name, args.dir, args.sdk),
        PluginCommand::Test(args) => super::plugin_author::test(
            &args.wasm,
            &args.input,
            args.config,
            args.rows,
            &args.runtime,
        ),
        PluginCommand::List(args) => list(args),
    }
}

fn read_wasm(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| {
        Failure::new(Code::BadInput, format!("could not read {}: {e}", path.display()))
    })
}

fn inspect(args: InspectArgs) -> Result<(), Failure> {
    let bytes = read_wasm(&args.wasm)?;
    let runtime = args.runtime.runtime()?;
    let plugin = runtime
        .load(&bytes, &args.wasm.display().to_string())
        .map_err(|e| Failure::new(Code::Pipeline, e.to_string()))?;
    let info = plugin.info();
    println!("name         {}", info.name);
    println!("version      {}", info.version);
    println!("description  {}", info.description);
    println!("interface    crypto-etl:plugin {}", ACCEPTED_INTERFACES[0]);
    println!("sha256       {}", plugin.sha256());
    Ok(())
}

fn publish_failure(error: PublishError) -> Failure {
    let code = match &error {
        PublishError::Store(_) | PublishError::Cache { .. } => Code::Output,
        _ => Code::Pipeline,
    };
    Failure::new(code, error.to_string())
        .hint("nothing was changed in the store; the pipeline it had still runs")
}

fn publish(args: PublishArgs) -> Result<(), Failure> {
    let bytes = read_wasm(&args.wasm)?;
    let runtime = args.runtime.runtime()?;
    let cache = args.runtime.published_dir();
    let tokio = super::tokio_runtime()?;
    let published = tokio.block_on(async {
        let store = args.store.open().await?;
        published::publish(
            &store,
            &runtime,
            &cache,
            &bytes,
            &args.wasm.display().to_string(),
            args.config.clone(),
            &Placement { after: args.after.clone() },
        )
        .await
        .map_err(publish_failure)
    })?;
    println!("published    {} {} (sha256 {})", published.name, published.version, published.sha256);
    println!("object       {}", published.object);
    println!("manifest     {}", published.manifest);
    println!("chain        {}", published.chain.join(" -> "));
    println!("columns      {}", published.columns.join(", "));
    Ok(())
}

fn list(args: ListArgs) -> Result<(), Failure> {
    let runtime = args.runtime.runtime()?;
    let cache = args.runtime.published_dir();
    let tokio = super::tokio_runtime()?;
    let (pipeline, stored) = tokio.block_on(async {
        let store = args.store.open().await?;
        let stored = published::fetch(&store, &cache).await.map_err(publish_failure)?;
        Ok::<_, Failure>(match stored {
            Some(pipeline) => (pipeline, true),
            None => (Pipeline::default_pipeline(), false),
        })
    })?;
    let stages =
        pipeline.load(&runtime).map_err(|e| Failure::new(Code::Pipeline, e.to_string()))?;
    if !stored {
        println!(
            "no {} in the store: transforms run the built-in default",
            published::MANIFEST_KEY
        );
    } else {
        println!("{}", pipeline.name);
    }
    for (index, (stage, step)) in stages.iter().zip(&pipeline.steps).enumerate() {
        let info = stage.plugin.info();
        let config: Vec<String> = step.config.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:>2}. {:<16} {:<10} sha256 {}…{}",
            index + 1,
            info.name,
            info.version,
            &stage.plugin.sha256()[..12],
            if config.is_empty() {
                String::new()
            } else {
                format!("  config {}", config.join(" "))
            }
        );
    }
    Ok(())
}
