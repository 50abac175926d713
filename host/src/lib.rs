//! crypto-etl: CoinGecko market snapshots, cleaned and extended by sandboxed WebAssembly plugins.
//!
//! The stages, each a function from an input location to an output location:
//!
//! - [`extract`]: the top coins from CoinGecko, kept exactly as received in a [`store::Store`];
//! - [`ingest`]: a raw `/coins/markets` response into a typed, columnar [`batch::Batch`];
//! - [`pipeline`]: the plugins of a pipeline manifest, run over the batch by the [`plugin`] runtime;
//! - [`output`]: the processed CSV and the quarantine of rejected rows, written atomically;
//! - [`transform`]: the three above as one stage;
//! - [`load`]: a processed CSV into DuckDB or Snowflake;
//! - [`stages`]: the stages as JSON events in and out, which [`lambda`] serves to Step Functions.

#![deny(unsafe_code)]

pub mod batch;
pub mod extract;
pub mod ingest;
pub mod lambda;
pub mod load;
pub mod names;
pub mod output;
pub mod pipeline;
pub mod plugin;
pub mod processed;
pub mod raw;
#[cfg(feature = "duckdb")]
pub mod report;
pub mod snapshot;
pub mod stages;
pub mod store;
pub mod transform;

/// Threads for work shared out across cores (parsing, joining, formatting): the cores this
/// process may use, at most 8. Asked once per process, since the answer comes from the
/// scheduler and the cgroup files.
pub(crate) fn worker_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(8))
}
