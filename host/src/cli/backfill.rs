//! `crypto-etl backfill`: every stored raw snapshot (or a date range of them) through the current
//! pipeline and into the warehouse again, so history gains the fields added since.

use std::io::{IsTerminal, Write};

use chrono::NaiveDate;
use clap::Args;
use crypto_etl::stages::{self, BackfillEvent, LoadEvent, TransformEvent};
use crypto_etl::store::Key;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::run::{WarehouseArgs, stage_failure};
use super::{Code, Failure, RuntimeArgs, StoreArgs};

const EXAMPLES: &str = "\
Examples:
  # Everything in ./data, with the pipeline stored there (or the default)
  crypto-etl backfill --store data

  # One month, four at a time, with an extra plugin's manifest
  crypto-etl backfill --from 2026-10-01 --to 2026-10-31 --jobs 4 --pipeline pipeline.toml

Each snapshot is transformed and loaded on its own: a failure is reported and the others go on.
Loads replace a snapshot's rows, so a backfill can be run again safely. A summary is printed and
stored as backfill/<time>/summary.json.";

/// Reprocess stored raw snapshots with the current pipeline and load them again.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct BackfillArgs {
    /// First fetch date included (YYYY-MM-DD) [default: the oldest snapshot].
    #[arg(long, value_name = "DATE")]
    from: Option<NaiveDate>,

    /// Last fetch date included (YYYY-MM-DD) [default: the newest snapshot].
    #[arg(long, value_name = "DATE")]
    to: Option<NaiveDate>,

    /// `stored` (the store's plugins/pipeline.toml, else the default), `default`, `seed-compat`
    /// or a manifest file.
    #[arg(long, value_name = "NAME|FILE", default_value = "stored")]
    pipeline: String,

    /// Snapshots transformed at once [default: the number of CPUs].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,

    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    warehouse: WarehouseArgs,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// How one snapshot went.
#[derive(Debug, Serialize)]
struct Outcome {
    file_path: String,
    fetch_time: String,
    succeeded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows_loaded: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows_rejected: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    pipeline: String,
    snapshots: usize,
    succeeded: usize,
    failed: usize,
    outcomes: Vec<Outcome>,
}

pub fn run(args: BackfillArgs, quiet: bool) -> Result<(), Failure> {
    let warehouse = args.warehouse.open()?;
    let plugins = args.runtime.runtime()?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let tokio = super::tokio_runtime()?;
    let summary = tokio.block_on(async {
        let store = args.store.open().await?;
        let pipeline = super::resolve_pipeline(&args.pipeline, &store, &args.runtime).await?;
        let event = BackfillEvent { prefix: None, from: args.from, to: args.to };
        let snapshots = stages::stored_snapshots(&store, &event).await.map_err(stage_failure)?;
        if snapshots.is_empty() {
            return Err(Failure::new(
                Code::BadInput,
                format!("no raw snapshots in {} for these dates", store.describe()),
            )
            .hint("snapshots are raw/dt=<date>/raw_crypto_data_<time>.json; `crypto-etl extract` or `run` stores them"));
        }
        let progress = if !quiet && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(snapshots.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} snapshots {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        // Transforms run side by side; loads one at a time (an embedded database has one writer).
        let load_lock = tokio::sync::Mutex::new(());
        let one = |event: TransformEvent| {
            let (store, plugins, pipeline, warehouse, load_lock) =
                (&store, &plugins, &pipeline, &warehouse, &load_lock);
            async move {
                let mut outcome = Outcome {
                    file_path: event.file_path.clone(),
                    fetch_time: event.fetch_time.clone(),
                    succeeded: false,
                    rows_loaded: None,
                    rows_rejected: None,
                    error: None,
                };
                let result = async {
                    let transformed = stages::transform(plugins, store, pipeline, &event).await?;
                    outcome.rows_rejected = Some(transformed.rows_rejected);
                    let load = LoadEvent {
                        bucket_name: transformed.bucket_name,
                        file_name: transformed.file_name,
                    };
                    let _one_writer = load_lock.lock().await;
                    stages::load(warehouse, store, &load).await
                }
                .await;
                match result {
                    Ok(loaded) => {
                        outcome.succeeded = true;
                        outcome.rows_loaded = Some(loaded.report.rows_loaded);
                    }
                    Err(error) => outcome.error = Some(error.to_string()),
                }
                outcome
            }
        };
        let mut outcomes: Vec<Outcome> = futures_util::stream::iter(snapshots)
            .map(one)
            .buffer_unordered(jobs)
            .inspect(|outcome| {
                progress.inc(1);
                if let Some(error) = &outcome.error {
                    progress.suspend(|| tracing::warn!("{}: {error}", outcome.file_path));
                }
            })
            .collect()
            .await;
        progress.finish_and_clear();
        outcomes.sort_by(|a, b| a.fetch_time.cmp(&b.fetch_time));
        let failed = outcomes.iter().filter(|o| !o.succeeded).count();
        let summary = Summary {
            pipeline: pipeline.name.clone(),
            snapshots: outcomes.len(),
            succeeded: outcomes.len() - failed,
            failed,
            outcomes,
        };
        let key = Key::new(&format!(
            "backfill/{}/summary.json",
            crypto_etl::snapshot::FetchTime::now().key()
        ))
        .map_err(|e| Failure::new(Code::Internal, e.to_string()))?;
        let body = serde_json::to_vec_pretty(&summary).unwrap_or_default();
        store
            .put(&key, body, "application/json")
            .await
            .map_err(|e| Failure::new(Code::Output, e.to_string()))?;
        Ok::<_, Failure>((summary, store.location(&key)))
    });
    let (summary, location) = summary?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else if !quiet {
        for outcome in &summary.outcomes {
            let line = match (&outcome.error, outcome.rows_loaded) {
                (Some(error), _) => format!("FAILED  {}  {error}", outcome.fetch_time),
                (None, rows) => format!(
                    "ok      {}  {} rows loaded, {} rejected",
                    outcome.fetch_time,
                    rows.unwrap_or(0),
                    outcome.rows_rejected.unwrap_or(0)
                ),
            };
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(
            out,
            "backfill: {} of {} snapshots reprocessed with {}, {} failed (summary: {location})",
            summary.succeeded, summary.snapshots, summary.pipeline, summary.failed
        );
    }
    if summary.failed > 0 {
        return Err(Failure::new(
            Code::Partial,
            format!("{} of {} snapshots failed", summary.failed, summary.snapshots),
        )
        .hint("the others are loaded; fix the failed snapshots' cause and run the backfill again (loads replace, never duplicate)"));
    }
    Ok(())
}
