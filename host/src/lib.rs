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
