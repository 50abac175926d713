//! The three stages as JSON events in, JSON events out: the same shapes the original Lambdas
//! took and returned (with more fields), whether the CLI's `run`, a Lambda or a test calls them.
//!
//! - extract returns `{status, file_path, fetch_time, ...}` ([`crate::extract::Extracted`]);
//! - transform takes that and returns `{status, bucket_name, file_name, ...}`;
//! - load takes that and returns `{status, message, ...}`.
//!
//! Events are untrusted input: every field is checked before it names anything in a store.

use serde::{Deserialize, Serialize};

use crate::load::{LoadError, LoadReport, Warehouse, load_stored};
use crate::names::is_valid_currency;
use crate::pipeline::Pipeline;
use crate::plugin::Runtime;
use crate::processed::PluginRef;
use crate::snapshot::FetchTime;
use crate::store::{Key, Store, StoreError};
use crate::transform::{StoredRequest, TransformError, transform_stored};

/// An event that cannot be acted on.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is not valid for this stage: {0}")]
    Malformed(String),
    #[error(transparent)]
    Location(#[from] StoreError),
}

/// What transform takes: the extract's output (extra fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct TransformEvent {
    /// `s3://bucket/key` or a path in a local store.
    pub file_path: String,
    /// `2026-11-27T10-00-00Z`
    pub fetch_time: String,
    /// Quote currency of the snapshot (`usd` when absent, as the original always fetched).
    #[serde(default)]
    pub currency: Option<String>,
}

/// A plugin's part in a transform, in the transform's output.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRun {
    #[serde(flatten)]
    pub plugin: PluginRef,
    pub rows_in: usize,
    pub rejected: usize,
    pub millis: f64,
}

/// What transform returns: the original's `status`, `bucket_name`, `file_name`, and more.
#[derive(Debug, Clone, Serialize)]
pub struct TransformOutput {
    pub status: &'static str,
    pub bucket_name: String,
    pub file_name: String,
    pub snapshot_id: String,
    pub fetch_time: String,
    pub pipeline: String,
    pub rows_in: usize,
    pub rows_out: usize,
    pub rows_rejected: usize,
    pub quarantine_file: String,
    pub schema_file: String,
    pub plugins: Vec<PluginRun>,
    pub warnings: Vec<String>,
}

/// Runs transform for an extract's output event.
pub async fn transform(
    runtime: &Runtime,
    store: &Store,
    pipeline: &Pipeline,
    event: &TransformEvent,
) -> Result<TransformOutput, StageError> {
    let fetch_time =
        FetchTime::parse(&event.fetch_time).map_err(|e| EventError::Malformed(e.to_string()))?;
    let raw = store.key_for_location(&event.file_path).map_err(EventError::from)?;
    let currency = event.currency.clone().unwrap_or_else(|| "usd".into());
    if !is_valid_currency(&currency) {
        return Err(
            EventError::Malformed(format!("currency {currency:?} is not a currency code")).into()
        );
    }
    let request = StoredRequest {
        raw,
        fetch_time,
        currency,
        pipeline: pipeline.clone(),
        market_totals: None,
    };
    let report = transform_stored(runtime, store, &request).await?;
    let plugins = report
        .stages
        .iter()
        .map(|s| PluginRun {
            plugin: PluginRef {
                name: s.plugin.clone(),
                version: s.version.clone(),
                sha256: s.sha256.clone(),
            },
            rows_in: s.rows_in,
            rejected: s.rejected,
            millis: (s.elapsed.as_secs_f64() * 1e6).round() / 1e3,
        })
        .collect();
    Ok(TransformOutput {
        status: "success",
        bucket_name: store.bucket_name(),
        file_name: store.object_name(&report.keys.csv),
        snapshot_id: report.schema.snapshot_id.clone(),
        fetch_time: report.schema.fetch_time.clone(),
        pipeline: report.schema.pipeline.clone(),
        rows_in: report.rows_in,
        rows_out: report.schema.rows,
        rows_rejected: report.schema.rejected,
        quarantine_file: store.object_name(&report.keys.quarantine),
        schema_file: store.object_name(&report.keys.schema),
        plugins,
        warnings: report.warnings,
    })
}

/// What load takes: the transform's output (extra fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct LoadEvent {
    pub bucket_name: String,
    pub file_name: String,
}

/// What load returns: the original's `status` and `message`, and more.
#[derive(Debug, Clone, Serialize)]
pub struct LoadOutput {
    pub status: &'static str,
    pub message: String,
    pub warehouse: String,
    #[serde(flatten)]
    pub report: LoadReport,
}

/// Runs load for a transform's output event.
pub async fn load(
    warehouse: &Warehouse,
    store: &Store,
    event: &LoadEvent,
) -> Result<LoadOutput, StageError> {
    let csv: Key =
        store.key_for_object(&event.bucket_name, &event.file_name).map_err(EventError::from)?;
    let report = load_stored(warehouse, store, &csv).await?;
    let message = format!(
        "loaded {} rows of snapshot {} into {}{}",
        report.rows_loaded,
        report.snapshot_id,
        report.table,
        if report.rows_replaced > 0 {
            format!(" (replacing the {} rows of an earlier load)", report.rows_replaced)
        } else {
            String::new()
        }
    );
    Ok(LoadOutput { status: "success", message, warehouse: warehouse.describe(), report })
}

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error(transparent)]
    Load(#[from] LoadError),
}

impl StageError {
    /// Whether running the stage again later may succeed (for retry rules).
    pub fn is_transient(&self) -> bool {
        match self {
            StageError::Event(_) => false,
            StageError::Transform(e) => e.is_transient(),
            StageError::Load(e) => e.is_transient(),
        }
    }
}
