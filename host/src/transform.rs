//! The transform stage: raw `/coins/markets` JSON in, processed CSV and quarantine out.
//!
//! Ingest types the raw response (rows it cannot type are set aside), the pipeline's plugins run
//! over the rest, and only when every plugin succeeded are the CSV and the quarantine file made
//! visible. Any failure leaves the raw snapshot untouched and writes nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::batch::{Batch, Schema};
use crate::ingest::{IngestError, ingest};
use crate::output::{self, Staged, WriteError};
use crate::pipeline::chain::row_values;
use crate::pipeline::{Chain, Pipeline, PipelineError, RejectedRow, StageReport};
use crate::plugin::{PluginError, Runtime, SnapshotContext};
use crate::snapshot::FetchTime;

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
}

/// A snapshot after the pipeline: what to write, and what happened.
#[derive(Debug)]
pub struct Transformed {
    pub batch: Batch,
    pub rejected: Vec<RejectedRow>,
    pub stages: Vec<StageReport>,
    pub rows_in: usize,
    pub warnings: Vec<String>,
}

/// Runs ingest and the pipeline over a raw response, in memory.
pub fn transform(
    runtime: &Runtime,
    raw: Vec<u8>,
    pipeline: &Pipeline,
    context: &SnapshotContext,
) -> Result<Transformed, TransformError> {
    let stages = pipeline.load(runtime)?;
    let ingested = ingest(&raw)?;
    drop(raw);
    let mut batch = ingested.batch;
    let rows_in = batch.rows();
    if rows_in == 0 {
        return Err(TransformError::Empty);
    }

    let mut keep = vec![true; rows_in];
    let mut rejected = Vec::with_capacity(ingested.rejected.len());
    for rejection in ingested.rejected {
        keep[rejection.row] = false;
        rejected.push(RejectedRow {
            source_row: rejection.row,
            stage: "ingest".into(),
            reason: rejection.reason,
            values: row_values(&batch, rejection.row),
        });
    }
    batch.filter(&keep);
    let source_rows: Vec<usize> = (0..rows_in).filter(|r| keep[*r]).collect();

    let chain = Chain::plan(stages, &batch.schema())?;
    let run = chain.run(batch, source_rows, context)?;
    rejected.extend(run.rejected);
    rejected.sort_by_key(|r| r.source_row);
    Ok(Transformed {
        batch: run.batch,
        rejected,
        stages: run.stages,
        rows_in,
        warnings: ingested.warnings,
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
    let raw = std::fs::read(&request.input)
        .map_err(|source| TransformError::Read { path: request.input.clone(), source })?;
    let context = SnapshotContext {
        fetch_time: request.fetch_time.micros(),
        currency: request.currency.clone(),
        market_total_cap: None,
        market_total_volume: None,
    };
    let done = transform(runtime, raw, &request.pipeline, &context)?;
    let quarantine = output::quarantine_path(&request.output);
    let mut staged = Staged::default();
    staged.write(&quarantine, |w| output::write_quarantine(&done.rejected, w))?;
    staged.write(&request.output, |w| output::write_csv(&done.batch, w))?;
    staged.commit()?;
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
