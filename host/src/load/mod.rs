//! The load stage: a processed CSV into the warehouse, once per snapshot.
//!
//! The schema file beside the CSV says which columns it has and of which types; it is checked
//! before anything reaches SQL, and every identifier is quoted. Columns that plugins add become
//! new nullable columns; a column never changes type. Loading the same snapshot again replaces
//! its rows instead of adding a second copy, and each load is recorded in a load-history table.

#[cfg(feature = "duckdb")]
mod duckdb;
mod snowflake;

#[cfg(feature = "duckdb")]
use std::path::PathBuf;

use serde::Serialize;

#[cfg(feature = "duckdb")]
pub use self::duckdb::DuckDbWarehouse;
pub use self::snowflake::{SETTINGS_HELP, SnowflakeAuth, SnowflakeSettings, SnowflakeWarehouse};
use crate::processed::{ProcessedSchema, SchemaError};
use crate::snapshot::ProcessedKeys;
use crate::store::{Key, Store, StoreError};

/// Why a load failed. Nothing was loaded: each load is one transaction.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "{0:?} is not a warehouse; use duckdb:PATH (e.g. duckdb:data/crypto.duckdb) or snowflake"
    )]
    BadWarehouse(String),
    #[error(
        "this build of crypto-etl has no DuckDB warehouse (built without the `duckdb` feature); use snowflake"
    )]
    NoDuckDb,
    #[error("the warehouse is not configured: {0}")]
    Config(String),
    #[error(
        "Snowflake refused to sign in user {user} on account {account}: {message}; check SNOWFLAKE_USER and SNOWFLAKE_PASSWORD (or the key pair)"
    )]
    SignIn { account: String, user: String, message: String },
    #[error("the warehouse could not be reached to {action} (try again): {message}")]
    Unreachable { action: &'static str, message: String },
    #[error("{0:?} is not a valid table name ([A-Za-z_][A-Za-z0-9_]*, at most 63)")]
    BadTable(String),
    #[error("{key} is not a processed CSV (its name should end in .csv)")]
    NotACsv { key: String },
    #[error("the schema file {location} cannot be used: {source}")]
    Schema { location: String, source: SchemaError },
    #[error(
        "column `{column}` is {new} in this file but {have} in table {table}; columns never change type (add a new column instead)"
    )]
    TypeConflict { column: String, table: String, have: String, new: String },
    #[error("the warehouse refused {file}, so nothing of it was loaded: {message}")]
    Rejected { file: String, message: String },
    #[error("the warehouse failed to {action}: {message}")]
    Warehouse { action: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not stage the CSV for loading: {0}")]
    Staging(std::io::Error),
}

impl LoadError {
    /// Whether loading again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            LoadError::Store(e) => e.is_transient(),
            LoadError::Unreachable { .. } => true,
            _ => false,
        }
    }
}

/// A checked warehouse table name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(String);

impl TableName {
    pub fn new(name: &str) -> Result<Self, LoadError> {
        let mut chars = name.chars();
        let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && name.len() <= 63
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok { Ok(Self(name.to_owned())) } else { Err(LoadError::BadTable(name.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The default table, as the original pipeline named it.
pub const DEFAULT_TABLE: &str = "CRYPTO_DATA";

/// How `--warehouse` and `CRYPTO_ETL_WAREHOUSE` name Snowflake.
pub const SNOWFLAKE: &str = "snowflake";

/// Where to load: `duckdb:PATH` or `snowflake`.
#[derive(Debug, Clone)]
pub enum Warehouse {
    #[cfg(feature = "duckdb")]
    DuckDb(DuckDbWarehouse),
    Snowflake(Box<SnowflakeWarehouse>),
}

impl Warehouse {
    /// Parses `duckdb:PATH` (a bare path ending in `.duckdb` works too) or `snowflake` (whose
    /// settings come from `SNOWFLAKE_*` environment variables).
    pub fn parse(text: &str, table: TableName) -> Result<Self, LoadError> {
        if text == SNOWFLAKE {
            return Self::snowflake(SnowflakeSettings::from_env()?, table);
        }
        let path =
            text.strip_prefix("duckdb:").or_else(|| text.ends_with(".duckdb").then_some(text));
        match path {
            #[cfg(feature = "duckdb")]
            Some(path) if !path.is_empty() => {
                Ok(Warehouse::DuckDb(DuckDbWarehouse::new(PathBuf::from(path), table)))
            }
            #[cfg(not(feature = "duckdb"))]
            Some(path) if !path.is_empty() => Err(LoadError::NoDuckDb),
            _ => Err(LoadError::BadWarehouse(text.to_owned())),
        }
    }

    /// Snowflake with the given settings.
    pub fn snowflake(settings: SnowflakeSettings, table: TableName) -> Result<Self, LoadError> {
        Ok(Warehouse::Snowflake(Box::new(SnowflakeWarehouse::new(settings, table)?)))
    }

    /// Where it is, for people.
    pub fn describe(&self) -> String {
        match self {
            #[cfg(feature = "duckdb")]
            Warehouse::DuckDb(w) => format!("duckdb:{}", w.path().display()),
            Warehouse::Snowflake(w) => w.describe(),
        }
    }
}

/// What a load did: a superset of the original Lambda's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    pub snapshot_id: String,
    pub table: String,
    pub rows_loaded: usize,
    /// Rows of an earlier load of the same snapshot that this load replaced.
    pub rows_replaced: usize,
    pub columns_added: Vec<String>,
}

/// Loads the processed CSV at `csv` in `store` (with its schema file beside it).
pub async fn load_stored(
    warehouse: &Warehouse,
    store: &Store,
    csv: &Key,
) -> Result<LoadReport, LoadError> {
    let keys =
        ProcessedKeys::for_csv(csv).ok_or_else(|| LoadError::NotACsv { key: csv.to_string() })?;
    let schema_bytes = store.get(&keys.schema).await?;
    let schema = ProcessedSchema::parse(&schema_bytes)
        .map_err(|source| LoadError::Schema { location: store.location(&keys.schema), source })?;
    let file = store.location(csv);
    match warehouse {
        // Snowflake copies from its external stage over the bucket: the object name is the path.
        Warehouse::Snowflake(snowflake) => {
            snowflake.load(&schema, &store.object_name(csv), &file).await
        }
        #[cfg(feature = "duckdb")]
        Warehouse::DuckDb(duck) => {
            // DuckDB reads files; a CSV in S3 is staged in a private temporary file first.
            let local = match store {
                Store::Local(local) => Staged::Existing(local.path(csv)),
                Store::S3(_) => {
                    let bytes = store.get(csv).await?;
                    let mut temp = tempfile::Builder::new()
                        .suffix(".csv")
                        .tempfile()
                        .map_err(LoadError::Staging)?;
                    std::io::Write::write_all(&mut temp, &bytes).map_err(LoadError::Staging)?;
                    Staged::Temporary(temp)
                }
            };
            let duck = duck.clone();
            tokio::task::spawn_blocking(move || duck.load(&schema, local.path(), &file))
                .await
                .map_err(|e| LoadError::Warehouse {
                    action: "run the load",
                    message: e.to_string(),
                })?
        }
    }
}

/// A CSV file DuckDB can read.
#[cfg(feature = "duckdb")]
enum Staged {
    Existing(PathBuf),
    Temporary(tempfile::NamedTempFile),
}

#[cfg(feature = "duckdb")]
impl Staged {
    fn path(&self) -> &std::path::Path {
        match self {
            Staged::Existing(path) => path,
            Staged::Temporary(temp) => temp.path(),
        }
    }
}
