//! The three stages as JSON events in, JSON events out: the same shapes the original Lambdas
//! took and returned (with more fields), whether the CLI's `run`, a Lambda or a test calls them.
//!
//! - extract returns `{status, file_path, fetch_time, ...}` ([`crate::extract::Extracted`]);
//! - transform takes that and returns `{status, bucket_name, file_name, ...}`;
//! - load takes that and returns `{status, message, ...}`.
//!
//! Events are untrusted input: every field is checked before it names anything in a store.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::extract::ExtractError;
use crate::load::{LoadError, LoadReport, Warehouse, load_stored};
use crate::names::is_valid_currency;
use crate::pipeline::Pipeline;
use crate::pipeline::published::PublishError;
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformEvent {
    /// `s3://bucket/key` or a path in a local store.
    pub file_path: String,
    /// `2026-11-27T10-00-00Z`
    pub fetch_time: String,
    /// Quote currency of the snapshot (`usd` when absent, as the original always fetched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// The currency the extract recorded in the snapshot's `.meta.json`; `usd` (what the original
/// pipeline always fetched) when there is none, as for snapshots it stored.
async fn recorded_currency(store: &Store, raw: &Key) -> String {
    let meta =
        match raw.as_str().strip_suffix(".json").map(|stem| Key::new(&format!("{stem}.meta.json")))
        {
            Some(Ok(meta)) => store.get(&meta).await.ok(),
            _ => None,
        };
    meta.and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|meta| meta.get("currency")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "usd".into())
}

/// A plugin's part in a transform, in the transform's output.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRun {
    #[serde(flatten)]
    pub plugin: PluginRef,
    pub rows_in: usize,
    pub rejected: usize,
    pub millis: f64,
    /// The plugin instance's memory at its peak, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<usize>,
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
    let currency = match &event.currency {
        Some(currency) => currency.clone(),
        None => recorded_currency(store, &raw).await,
    };
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
            peak_memory_bytes: s.peak_memory,
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

/// Which raw snapshots a backfill reprocesses (fields absent: all of them).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BackfillEvent {
    /// Where the raw snapshots are (`raw/`, or a folder below it).
    #[serde(default)]
    pub prefix: Option<String>,
    /// First fetch date included, `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "date")]
    pub from: Option<NaiveDate>,
    /// Last fetch date included, `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "date")]
    pub to: Option<NaiveDate>,
}

/// `YYYY-MM-DD`, or null.
fn date<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<NaiveDate>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else { return Ok(None) };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a date like 2026-11-27")))
}

/// The raw snapshots in `store` fetched between `from` and `to` (inclusive), oldest first, as
/// transform events.
pub async fn stored_snapshots(
    store: &Store,
    event: &BackfillEvent,
) -> Result<Vec<TransformEvent>, StageError> {
    if let (Some(from), Some(to)) = (event.from, event.to)
        && from > to
    {
        return Err(EventError::Malformed(format!("`from` {from} is after `to` {to}")).into());
    }
    let prefix = event.prefix.as_deref().unwrap_or(crate::snapshot::RAW_PREFIX);
    let raw = Key::new(prefix.trim_end_matches('/'))
        .ok()
        .filter(|k| k.as_str().split('/').next() == Some(crate::snapshot::RAW_PREFIX))
        .ok_or_else(|| {
            EventError::Malformed(format!("prefix {prefix:?} is not raw/ or a folder below it"))
        })?;
    let mut found: Vec<(FetchTime, Key)> = store
        .list(&raw)
        .await
        .map_err(StageError::Store)?
        .into_iter()
        .filter_map(|key| {
            let time = FetchTime::from_raw_file_name(key.file_name())?;
            let date = time.date();
            let after = event.from.is_none_or(|from| date >= from);
            let before = event.to.is_none_or(|to| date <= to);
            (after && before).then_some((time, key))
        })
        .collect();
    found.sort();
    Ok(found
        .into_iter()
        .map(|(time, key)| TransformEvent {
            file_path: store.location(&key),
            fetch_time: time.key(),
            currency: None,
        })
        .collect())
}

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Published(#[from] PublishError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error(transparent)]
    Load(#[from] LoadError),
}

impl StageError {
    /// Whether running the stage again later may succeed (for retry rules).
    pub fn is_transient(&self) -> bool {
        self.kind() == FailureKind::Transient
    }

    /// What kind of failure this is, for retry rules and alarms.
    pub fn kind(&self) -> FailureKind {
        use crate::transform::TransformError as T;
        let transient = match self {
            StageError::Event(_) => false,
            StageError::Extract(e) => e.is_transient(),
            StageError::Published(e) => e.is_transient(),
            StageError::Store(e) => e.is_transient(),
            StageError::Transform(e) => e.is_transient(),
            StageError::Load(e) => e.is_transient(),
        };
        if transient {
            return FailureKind::Transient;
        }
        match self {
            StageError::Event(_) => FailureKind::BadEvent,
            StageError::Extract(ExtractError::Config(_) | ExtractError::Unauthorized { .. }) => {
                FailureKind::Config
            }
            StageError::Extract(ExtractError::UnexpectedBody { .. }) => FailureKind::BadData,
            StageError::Published(_) => FailureKind::PluginFailed,
            StageError::Transform(T::Pipeline(_) | T::Plugin(_)) => FailureKind::PluginFailed,
            StageError::Transform(T::Ingest(_) | T::Empty) => FailureKind::BadData,
            StageError::Load(
                LoadError::Config(_)
                | LoadError::SignIn { .. }
                | LoadError::BadWarehouse(_)
                | LoadError::NoDuckDb
                | LoadError::BadTable(_),
            ) => FailureKind::Config,
            StageError::Load(
                LoadError::Rejected { .. }
                | LoadError::TypeConflict { .. }
                | LoadError::Schema { .. }
                | LoadError::NotACsv { .. },
            ) => FailureKind::BadData,
            _ => FailureKind::Failed,
        }
    }
}

/// Failure kinds as Step Functions sees them (`CryptoEtl.<Kind>` error names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Throttling, 5xx, timeouts: worth retrying.
    Transient,
    /// The event cannot be acted on.
    BadEvent,
    /// The snapshot or processed file is not usable.
    BadData,
    /// A plugin or the pipeline manifest failed its checks.
    PluginFailed,
    /// Settings or credentials are wrong.
    Config,
    /// Anything else; not retried.
    Failed,
}

impl FailureKind {
    /// The error name Step Functions matches in Retry and Catch rules.
    pub fn error_name(self) -> &'static str {
        match self {
            FailureKind::Transient => "CryptoEtl.Transient",
            FailureKind::BadEvent => "CryptoEtl.BadEvent",
            FailureKind::BadData => "CryptoEtl.BadData",
            FailureKind::PluginFailed => "CryptoEtl.PluginFailed",
            FailureKind::Config => "CryptoEtl.Config",
            FailureKind::Failed => "CryptoEtl.Failed",
        }
    }
}
