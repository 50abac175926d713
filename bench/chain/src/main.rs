//! `chain-bench`: what the sandbox costs. Runs a pipeline's plugin chain over one snapshot two
//! ways, in the same process, taking turns:
//!
//! - **wasm**: the WebAssembly components the host ships, through [`Runtime`], exactly as
//!   `crypto-etl transform` runs them (a fresh instance per call, limits armed, compiled code
//!   from the plugin cache);
//! - **native**: the same plugin crates compiled into this binary and called through the SDK
//!   types directly, behind the same [`Chain`], which plans, hands over columns and checks every
//!   output the same way.
//!
//! Both sides move the columns a plugin reads into the interface's types without a copy; only
//! the wasm side then copies them into the instance's memory and its output out of it. Prints
//! the figures as JSON for `bench/run.py`. Usage:
//!
//! ```text
//! chain-bench --input SNAPSHOT.json [--reps 5] [--pipeline default] [--cache-dir DIR]
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use crypto_etl::batch::{Batch, Schema};
use crypto_etl::pipeline::{Chain, ChainRun, Pipeline, Source, Stage};
use crypto_etl::plugin::{
    Config, Limits, Plan, PluginError, PluginInfo, PluginOutput, Runtime, SnapshotContext,
    TransformPlugin,
};
use crypto_etl_plugin_sdk as sdk;
use sdk::bindings::crypto_etl::plugin::types as wire;
use serde_json::json;

/// A plugin crate compiled into this binary, behind the host's plugin trait.
struct Native<P> {
    info: PluginInfo,
    plugin: PhantomData<P>,
}

impl<P: sdk::Plugin> Native<P> {
    fn boxed() -> Box<dyn TransformPlugin>
    where
        P: 'static,
    {
        Box::new(Self { info: info(P::info()), plugin: PhantomData })
    }

    fn fail(&self, error: sdk::PluginError) -> PluginError {
        PluginError::new(&self.info, guest_error(error))
    }
}

impl<P> std::fmt::Debug for Native<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Native").field("info", &self.info).finish()
    }
}

// The same conversions the host uses for the components, for the SDK's types.
crypto_etl::wire_conversions!(wire);

impl<P: sdk::Plugin> TransformPlugin for Native<P> {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn sha256(&self) -> &str {
        "native"
    }

    fn plan(&self, config: &Config, schema: &Schema) -> Result<Plan, PluginError> {
        let schema = sdk::Schema::new(self::schema(schema));
        let plan = P::plan(&sdk::Config::new(config.clone()), &schema)
            .map_err(|e| self.fail(e))?
            .into_wire();
        Ok(self::plan(plan))
    }

    fn transform(
        &self,
        config: &Config,
        input: Batch,
        context: &SnapshotContext,
    ) -> Result<(Batch, PluginOutput), PluginError> {
        let config = sdk::Config::new(config.clone());
        let input = sdk::Input::new(config, batch(input), self::context(context));
        let output = P::transform(&input).map_err(|e| self.fail(e))?.into_wire();
        Ok((batch_back(input.into_batch()), self::output(output)))
    }
}

/// The native counterpart of each plugin the host ships.
fn native_stages(pipeline: &Pipeline) -> anyhow::Result<Vec<Stage>> {
    pipeline
        .steps
        .iter()
        .map(|step| {
            let plugin = match &step.source {
                Source::Builtin("clean") => Native::<clean::Clean>::boxed(),
                Source::Builtin("market-share") => Native::<market_share::MarketShare>::boxed(),
                other => bail!("no native build of {other:?}; only the built-in plugins have one"),
            };
            Ok(Stage { plugin, config: step.config.clone() })
        })
        .collect()
}

struct Args {
    input: PathBuf,
    reps: usize,
    pipeline: String,
    cache_dir: Option<PathBuf>,
}

fn args() -> anyhow::Result<Args> {
    let mut args =
        Args { input: PathBuf::new(), reps: 5, pipeline: "default".into(), cache_dir: None };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--input" => args.input = value()?.into(),
            "--reps" => args.reps = value()?.parse().context("--reps takes a whole number")?,
            "--pipeline" => args.pipeline = value()?,
            "--cache-dir" => args.cache_dir = Some(value()?.into()),
            "-h" | "--help" => {
                println!(
                    "usage: chain-bench --input SNAPSHOT.json [--reps 5] [--pipeline default] [--cache-dir DIR]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if args.input.as_os_str().is_empty() {
        bail!("--input SNAPSHOT.json is required (try --help)");
    }
    Ok(args)
}

/// Seconds, per side: the chain's, and each plugin call's by plugin.
#[derive(Debug, Default)]
struct Times(Vec<f64>, BTreeMap<String, Vec<f64>>);

/// One timed run of `chain` over a copy of `batch`: the chain's wall time and each stage's.
fn run(chain: &Chain, batch: &Batch, context: &SnapshotContext) -> anyhow::Result<(f64, ChainRun)> {
    let batch = batch.clone();
    let rows = (0..batch.rows()).collect();
    let started = Instant::now();
    let run = chain.run(batch, rows, context)?;
    Ok((started.elapsed().as_secs_f64(), run))
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let raw = std::fs::read(&args.input)
        .with_context(|| format!("could not read {}", args.input.display()))?;
    let ingested = crypto_etl::ingest::ingest(&raw)?;
    drop(raw);
    let mut batch = ingested.batch;
    let mut keep = vec![true; batch.rows()];
    for rejection in &ingested.rejected {
        keep[rejection.row] = false;
    }
    batch.filter(&keep);

    let pipeline = Pipeline::resolve(&args.pipeline)?;
    let runtime = Runtime::new(Limits::default(), args.cache_dir.clone())?;
    let schema = batch.schema();
    let chains = [
        ("wasm", Chain::plan(pipeline.load(&runtime)?, &schema)?),
        ("native", Chain::plan(native_stages(&pipeline)?, &schema)?),
    ];
    let context = SnapshotContext {
        fetch_time: 1_795_773_600_000_000,
        currency: "usd".into(),
        market_total_cap: None,
        market_total_volume: None,
    };

    // Warm-up, and the check that both give the same result. The first run of each side is the
    // one a CLI process makes: plugin memories and the host's heap are fresh. Later runs reuse
    // them, as a warm Lambda does.
    let (first_wasm, wasm) = run(&chains[0].1, &batch, &context)?;
    let (first_native, native) = run(&chains[1].1, &batch, &context)?;
    let same_output = wasm.batch == native.batch && wasm.rejected == native.rejected;

    let mut figures: BTreeMap<&str, Times> = BTreeMap::new();
    for _ in 0..args.reps {
        for (name, chain) in &chains {
            let (wall, done) = run(chain, &batch, &context)?;
            let Times(walls, stages) = figures.entry(name).or_default();
            walls.push(wall);
            for stage in done.stages {
                stages.entry(stage.plugin).or_default().push(stage.elapsed.as_secs_f64());
            }
        }
    }
    let figures: serde_json::Map<String, serde_json::Value> = figures
        .into_iter()
        .map(|(name, Times(walls, stages))| {
            (name.into(), json!({"chain": walls, "stages": stages}))
        })
        .collect();
    let report = json!({
        "input": args.input,
        "rows": batch.rows(),
        "pipeline": pipeline.name,
        "reps": args.reps,
        "same_output": same_output,
        "rows_out": wasm.batch.rows(),
        "figures": figures,
        "first": {"wasm": first_wasm, "native": first_native},
    });
    println!("{report}");
    Ok(())
}
