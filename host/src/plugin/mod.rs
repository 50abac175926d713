//! Transform plugins as the rest of the host sees them: a plain trait, no wasmtime in sight.
//!
//! [`runtime`] loads WebAssembly components into sandboxed [`TransformPlugin`]s; [`builtin`]
//! holds the default plugins compiled into the host; the pipeline (`crate::pipeline`) chains them.

pub mod builtin;
mod cache;
#[cfg(target_os = "linux")]
mod memory;
pub mod runtime;
mod v0_1_0;
mod wire;

use std::fmt;
use std::time::Duration;

use crate::batch::{Batch, Column, ColumnType, Field, Schema};

pub use runtime::{Limits, Runtime};

/// The plugin interface versions this host accepts, newest first.
pub const ACCEPTED_INTERFACES: &[&str] = &["0.1.0"];

/// Who a plugin says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
}

/// A column a plugin writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSpec {
    pub name: String,
    pub column_type: ColumnType,
    pub description: String,
    pub replaces: bool,
}

/// What a plugin declares it will do to a batch of a given schema.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub reads: Vec<Field>,
    pub writes: Vec<WriteSpec>,
    pub removes: Vec<String>,
    pub drops_rows: bool,
}

/// A row a plugin dropped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub row: usize,
    pub reason: String,
}

/// What a plugin returned from `transform`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PluginOutput {
    pub columns: Vec<Column>,
    pub rejected: Vec<Rejection>,
}

/// What the host knows about the snapshot as a whole, given to every plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotContext {
    /// Microseconds since the Unix epoch, UTC.
    pub fetch_time: i64,
    pub currency: String,
    pub market_total_cap: Option<f64>,
    pub market_total_volume: Option<f64>,
}

/// Key/value configuration of one plugin instance, in manifest order.
pub type Config = Vec<(String, String)>;

/// A transform plugin, however it is implemented.
pub trait TransformPlugin: fmt::Debug {
    fn info(&self) -> &PluginInfo;

    /// Hex SHA-256 of the plugin's bytes (its identity in manifests and load history).
    fn sha256(&self) -> &str;

    /// The memory the last call used at its peak, in bytes, where the runtime can tell.
    fn peak_memory(&self) -> Option<usize> {
        None
    }

    fn plan(&self, config: &Config, schema: &Schema) -> Result<Plan, PluginError>;

    /// Transforms `input`, which holds exactly the columns of the plan's reads. The columns are
    /// lent, not copied: they come back unchanged, with the output.
    fn transform(
        &self,
        config: &Config,
        input: Batch,
        context: &SnapshotContext,
    ) -> Result<(Batch, PluginOutput), PluginError>;
}

/// The kind of error a plugin reported itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestErrorKind {
    InvalidConfig,
    InvalidInput,
    Internal,
}

impl fmt::Display for GuestErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuestErrorKind::InvalidConfig => "refused its configuration",
            GuestErrorKind::InvalidInput => "refused the input",
            GuestErrorKind::Internal => "reported an internal error",
        })
    }
}

/// What went wrong inside one plugin call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The plugin returned an error of its own.
    #[error("{kind}: {message}")]
    Guest { kind: GuestErrorKind, message: String },
    /// The plugin trapped: a panic, an out-of-bounds access, `unreachable`, a stack overflow.
    #[error("crashed (trap: {trap}){}", printed_suffix(.printed))]
    Trap { trap: String, printed: String },
    #[error("ran past its deadline of {} ms and was stopped", .deadline.as_millis())]
    Timeout { deadline: Duration },
    #[error("tried to use more than {} MiB of memory and was stopped", .limit / (1024 * 1024))]
    MemoryLimit { limit: usize },
    #[error("returned {bytes} bytes of output, over the limit of {limit}")]
    OutputTooLarge { bytes: usize, limit: usize },
    /// The output or plan does not match the interface's rules or the plugin's own declaration.
    #[error("{0}")]
    Invalid(String),
}

fn printed_suffix(text: &str) -> String {
    if text.trim().is_empty() { String::new() } else { format!("; it printed: {}", text.trim()) }
}

/// A plugin call that failed, naming the plugin and its version.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("plugin `{plugin}` {version} {failure}")]
pub struct PluginError {
    pub plugin: String,
    pub version: String,
    #[source]
    pub failure: Failure,
}

impl PluginError {
    pub fn new(info: &PluginInfo, failure: Failure) -> Self {
        Self { plugin: info.name.clone(), version: info.version.clone(), failure }
    }
}

/// Why a plugin could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{origin} is not a WebAssembly component: {reason}")]
    NotAComponent { origin: String, reason: String },
    #[error(
        "{origin} implements crypto-etl plugin interface {found}, but this host accepts {}; rebuild it against a supported crypto-etl-plugin-sdk",
        ACCEPTED_INTERFACES.join(", ")
    )]
    UnsupportedInterface { origin: String, found: String },
    #[error(
        "{origin} is not a crypto-etl plugin: it does not export `crypto-etl:plugin/transformer` (it exports: {exports})"
    )]
    MissingExport { origin: String, exports: String },
    #[error("{origin} needs something this host does not provide to plugins: {reason}")]
    Unlinkable { origin: String, reason: String },
    #[error("{origin}: {failure}")]
    Describe { origin: String, failure: Failure },
    #[error("{origin} declares an invalid identity: {reason}")]
    BadInfo { origin: String, reason: String },
}
