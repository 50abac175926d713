//! The transform stage: raw `/coins/markets` JSON in, processed CSV and quarantine out.
//!
//! Ingest types the raw response (rows it cannot type are set aside), the pipeline's plugins run
//! over the rest, and only when every plugin succeeded are the CSV and the quarantine file made
//! visible. Any failure leaves the raw snapshot untouched and writes nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::batch::{Batch, Schema};
use crate::ingest::{self, IngestError};
use crate::output::{self, FormattedAhead, Staged, WriteError};
use crate::pipeline::chain::RowValues;
use crate::pipeline::{Chain, Pipeline, PipelineError, RejectedRow, StageReport};
use crate::plugin::{Plan, PluginError, Runtime, SnapshotContext};
use crate::processed::{self, ColumnSpec, PluginRef, ProcessedSchema};
use crate::raw::RawBytes;
use crate::snapshot::{FetchTime, ProcessedKeys};
use crate::store::{Key, Store, StoreError};

/// Why a transform failed. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("could not read the raw snapshot {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the raw snapshot cannot be transformed: {0}")]
    Ingest(#[from] IngestError),
    #[error("the raw snapshot holds no coins (an empty array); nothing to transform")]
    Empty,
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TransformError {
    /// Whether running the transform again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, TransformError::Store(e) if e.is_transient())
    }
}

/// A snapshot after the pipeline: what to write, and what happened.
#[derive(Debug)]
pub struct Transformed {
    pub batch: Batch,
    /// The output's columns with their types and descriptions.
    pub columns: Vec<ColumnSpec>,
    pub rejected: Vec<RejectedRow>,
    pub stages: Vec<StageReport>,
    /// What each plugin declared for this snapshot, in chain order.
    pub plans: Vec<Plan>,
    pub rows_in: usize,
    pub warnings: Vec<String>,
    /// CSV fields of the columns no plugin touches, formatted while the plugins ran, for
    /// [`Transformed::write_csv`]. `None` when formatting them failed (writing the CSV then
    /// says why).
    formatted_ahead: Option<FormattedAhead>,
}

/// Runs ingest and the pipeline over a raw response, in memory.
pub fn transform(
    runtime: &Runtime,
    raw: impl Into<RawBytes>,
    pipeline: &Pipeline,
    context: &SnapshotContext,
) -> Result<Transformed, TransformError> {
    let raw = raw.into();
    let started = std::time::Instant::now();
    let parsed = ingest::parse(&raw, &|read| raw.release(read))?;
    drop(raw);
    let ingested = parsed.finish()?;
    tracing::debug!(elapsed = ?started.elapsed(), rows = ingested.batch.rows(), "ingested");
    // Loaded after the raw bytes are gone: compiling a plugin that is not cached yet takes
    // tens of megabytes, which would otherwise add to the peak of a large snapshot's parse.
    let started = std::time::Instant::now();
    let stages = pipeline.load(runtime)?;
    tracing::debug!(elapsed = ?started.elapsed(), "plugins loaded");
    let mut batch = ingested.batch;
    let rows_in = batch.rows();
    if rows_in == 0 {
        return Err(TransformError::Empty);
    }

    let mut keep = vec![true; rows_in];
    for rejection in &ingested.rejected {
        keep[rejection.row] = false;
    }
    // One rejection per row, in row order, as ingest reports them.
    let mut rejected: Vec<RejectedRow> = ingested
        .rejected
        .into_iter()
        .zip(RowValues::of_dropped(&batch, &keep))
        .map(|(rejection, values)| RejectedRow {
            source_row: rejection.row,
            stage: "ingest".into(),
            reason: rejection.reason,
            values,
        })
        .collect();
    batch.filter(&keep);
    let source_rows: Vec<usize> = (0..rows_in).filter(|r| keep[*r]).collect();

    let schema = batch.schema();
    let chain = Chain::plan(stages, &schema)?;
    let columns = describe(&chain);
    let plans = chain.plans().map(|(_, plan)| plan.clone()).collect();
    let started = std::time::Instant::now();
    // The plugins run one at a time; meanwhile another core formats the columns they never
    // see, which are about half the work of writing the CSV, until the plugins are done.
    let (mut run, ahead) =
        chain.run_alongside(batch, source_rows, context, |untouched, plugins_done| {
            FormattedAhead::format(&schema, untouched, plugins_done).ok()
        })?;
    tracing::debug!(elapsed = ?started.elapsed(), "plugin chain ran");
    let formatted_ahead = ahead.map(|ahead| ahead.for_rows(std::mem::take(&mut run.input_rows)));
    rejected.extend(run.rejected);
    rejected.sort_by_key(|r| r.source_row);
    Ok(Transformed {
        batch: run.batch,
        columns,
        rejected,
        stages: run.stages,
        plans,
        rows_in,
        warnings: ingested.warnings,
        formatted_ahead,
    })
}

/// The chain's output columns with the description of whoever wrote each last.
fn describe(chain: &Chain) -> Vec<ColumnSpec> {
    let mut descriptions = std::collections::HashMap::new();
    for (info, plan) in chain.plans() {
        for write in &plan.writes {
            descriptions.insert(
                write.name.as_str(),
                format!("{} (plugin {})", write.description, info.name),
            );
        }
    }
    chain
        .output_schema()
        .fields
        .iter()
        .map(|field| ColumnSpec {
            name: field.name.clone(),
            column_type: field.column_type,
            description: descriptions
                .get(field.name.as_str())
                .cloned()
                .unwrap_or_else(|| format!("`{}` from CoinGecko /coins/markets", field.name)),
        })
        .collect()
}

impl Transformed {
    /// The batch as CSV ([`output::write_csv`]), with the fields formatted ahead.
    pub fn write_csv(&self, out: impl std::io::Write) -> std::io::Result<()> {
        output::write_csv_with(&self.batch, self.formatted_ahead.as_ref(), out)
    }

    /// The schema file that goes with this output.
    pub fn schema(
        &self,
        pipeline: &Pipeline,
        fetch_time: &FetchTime,
        currency: &str,
    ) -> ProcessedSchema {
        ProcessedSchema {
            format: processed::FORMAT,
            snapshot_id: processed::snapshot_id(currency, fetch_time),
            fetch_time: fetch_time.key(),
            currency: currency.to_owned(),
            pipeline: pipeline.name.clone(),
            rows: self.batch.rows(),
            rejected: self.rejected.len(),
            columns: self.columns.clone(),
            plugins: self
                .stages
                .iter()
                .map(|s| PluginRef {
                    name: s.plugin.clone(),
                    version: s.version.clone(),
                    sha256: s.sha256.clone(),
                })
                .collect(),
        }
    }
}

/// A transform of a raw snapshot kept in a store, into the same store.
#[derive(Debug, Clone)]
pub struct StoredRequest {
    pub raw: Key,
    pub fetch_time: FetchTime,
    pub currency: String,
    pub pipeline: Pipeline,
    pub market_totals: Option<(f64, f64)>,
}

/// What a stored transform wrote, and how it went.
#[derive(Debug)]
pub struct StoredReport {
    pub keys: ProcessedKeys,
    pub schema: ProcessedSchema,
    pub stages: Vec<StageReport>,
    pub warnings: Vec<String>,
    pub rows_in: usize,
}

/// Reads the raw snapshot from `store`, transforms it, and writes the quarantine, the schema and
/// (last, so its presence means the set is complete) the CSV beside each other.
pub async fn transform_stored(
    runtime: &Runtime,
    store: &Store,
    request: &StoredRequest,
) -> Result<StoredReport, TransformError> {
    let raw = store.get(&request.raw).await?;
    let context = SnapshotContext {
        fetch_time: request.fetch_time.micros(),
        currency: request.currency.clone(),
        market_total_cap: request.market_totals.map(|t| t.0),
        market_total_volume: request.market_totals.map(|t| t.1),
    };
    let (runtime, pipeline) = (runtime.clone(), request.pipeline.clone());
    // Plugins and parsing are CPU work: keep them off the async workers.
    let done = tokio::task::spawn_blocking(move || transform(&runtime, raw, &pipeline, &context))
        .await
        .map_err(|e| {
            TransformError::Write(WriteError {
                path: "(transform task)".into(),
                source: std::io::Error::other(e.to_string()),
            })
        })??;

    let keys = request.fetch_time.processed_keys();
    let schema = done.schema(&request.pipeline, &request.fetch_time, &request.currency);
    let in_memory = |what: &str, result: std::io::Result<Vec<u8>>| {
        result.map_err(|source| WriteError { path: what.into(), source })
    };
    let mut quarantine = Vec::new();
    let quarantine = in_memory(
        "quarantine",
        output::write_quarantine(&done.rejected, &mut quarantine).map(|()| quarantine),
    )?;
    let mut csv = Vec::new();
    let csv = in_memory("csv", done.write_csv(&mut csv).map(|()| csv))?;
    let schema_json = serde_json::to_vec_pretty(&schema).unwrap_or_default();
    store.put(&keys.quarantine, quarantine, "application/x-ndjson").await?;
    store.put(&keys.schema, schema_json, "application/json").await?;
    store.put(&keys.csv, csv, "text/csv").await?;
    Ok(StoredReport {
        keys,
        schema,
        stages: done.stages,
        warnings: done.warnings,
        rows_in: done.rows_in,
    })
}

/// What the CLI asks of a transform.
#[derive(Debug, Clone)]
pub struct FileRequest {
    pub input: PathBuf,
    pub output: PathBuf,
    pub pipeline: Pipeline,
    pub fetch_time: FetchTime,
    pub currency: String,
}

/// What a transform did, for people and for the next stage.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: &'static str,
    pub input: PathBuf,
    pub output: PathBuf,
    pub quarantine: PathBuf,
    pub fetch_time: String,
    pub pipeline: String,
    pub rows_in: usize,
    pub rows_out: usize,
    pub rows_rejected: usize,
    pub columns: Vec<String>,
    pub plugins: Vec<PluginReport>,
    pub warnings: Vec<String>,
}

/// One plugin's part in a run.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub rows_in: usize,
    pub rejected: usize,
    #[serde(serialize_with = "millis")]
    pub elapsed: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// Transforms the raw file `input` into `output` and its quarantine file beside it.
pub fn transform_file(runtime: &Runtime, request: &FileRequest) -> Result<Report, TransformError> {
    let started = std::time::Instant::now();
    let raw = RawBytes::read(&request.input)
        .map_err(|source| TransformError::Read { path: request.input.clone(), source })?;
    tracing::debug!(elapsed = ?started.elapsed(), bytes = raw.len(), "read the raw snapshot");
    let context = SnapshotContext {
        fetch_time: request.fetch_time.micros(),
        currency: request.currency.clone(),
        market_total_cap: None,
        market_total_volume: None,
    };
    let done = transform(runtime, raw, &request.pipeline, &context)?;
    let started = std::time::Instant::now();
    let quarantine = output::quarantine_path(&request.output);
    let schema = done.schema(&request.pipeline, &request.fetch_time, &request.currency);
    let mut staged = Staged::default();
    staged.write(&quarantine, |w| output::write_quarantine(&done.rejected, w))?;
    staged.write(&output::schema_path(&request.output), |w| {
        serde_json::to_writer_pretty(&mut *w, &schema).map_err(std::io::Error::other)
    })?;
    staged.write(&request.output, |w| done.write_csv(w))?;
    staged.commit()?;
    tracing::debug!(elapsed = ?started.elapsed(), "outputs written");
    Ok(Report {
        status: "success",
        input: request.input.clone(),
        output: request.output.clone(),
        quarantine,
        fetch_time: request.fetch_time.key(),
        pipeline: request.pipeline.name.clone(),
        rows_in: done.rows_in,
        rows_out: done.batch.rows(),
        rows_rejected: done.rejected.len(),
        columns: column_names(&done.batch.schema()),
        plugins: done
            .stages
            .into_iter()
            .map(|s| PluginReport {
                name: s.plugin,
                version: s.version,
                sha256: s.sha256,
                rows_in: s.rows_in,
                rejected: s.rejected,
                elapsed: s.elapsed,
            })
            .collect(),
        warnings: done.warnings,
    })
}

fn column_names(schema: &Schema) -> Vec<String> {
    schema.names().map(str::to_owned).collect()
}

/// The fetch time for a raw file: given, else from its `raw_crypto_data_<time>.json` name.
pub fn fetch_time_for(input: &Path, given: Option<FetchTime>) -> Option<FetchTime> {
    given
        .or_else(|| input.file_name().and_then(|n| FetchTime::from_file_name(&n.to_string_lossy())))
}
