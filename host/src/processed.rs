//! What the transform says about a processed CSV, for the load: `<csv stem>.schema.json`.
//!
//! The load trusts nothing it reads from a store, so [`ProcessedSchema::parse`] checks every
//! column name and type before any of them can reach SQL.

use serde::{Deserialize, Serialize};

use crate::batch::ColumnType;
use crate::names::{is_valid_column_name, is_valid_currency, is_valid_label};
use crate::snapshot::FetchTime;

/// The version of this file's layout.
pub const FORMAT: u32 = 1;

/// A column of the processed CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    pub description: String,
}

/// A plugin that shaped the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// Everything the load needs to know about a processed CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessedSchema {
    pub format: u32,
    /// `<currency>:<fetch time>`: the same snapshot always has the same id.
    pub snapshot_id: String,
    pub fetch_time: String,
    pub currency: String,
    pub pipeline: String,
    /// Rows in the CSV (header not counted).
    pub rows: usize,
    /// Rows set aside in the quarantine file.
    pub rejected: usize,
    /// The CSV's columns, in order.
    pub columns: Vec<ColumnSpec>,
    pub plugins: Vec<PluginRef>,
}

/// Why a schema file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("not a processed-file schema: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("schema format {0} is not one this version reads ({FORMAT})")]
    Format(u32),
    #[error("{0}")]
    Invalid(String),
}

/// The identity of a snapshot: currency and fetch time.
pub fn snapshot_id(currency: &str, fetch_time: &FetchTime) -> String {
    format!("{currency}:{}", fetch_time.key())
}

impl ProcessedSchema {
    pub fn parse(bytes: &[u8]) -> Result<Self, SchemaError> {
        let schema: Self = serde_json::from_slice(bytes)?;
        if schema.format != FORMAT {
            return Err(SchemaError::Format(schema.format));
        }
        let fetch_time = FetchTime::parse(&schema.fetch_time)
            .map_err(|e| SchemaError::Invalid(format!("fetch_time: {e}")))?;
        if schema.snapshot_id != snapshot_id(&schema.currency, &fetch_time) {
            return Err(SchemaError::Invalid(format!(
                "snapshot_id {:?} does not match currency {:?} and fetch time {:?}",
                schema.snapshot_id, schema.currency, schema.fetch_time
            )));
        }
        if !is_valid_currency(&schema.currency) {
            return Err(SchemaError::Invalid(format!(
                "currency {:?} is not a currency code",
                schema.currency
            )));
        }
        if schema.columns.is_empty() {
            return Err(SchemaError::Invalid("it lists no columns".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for column in &schema.columns {
            if !is_valid_column_name(&column.name) {
                return Err(SchemaError::Invalid(format!(
                    "column {:?} is not a valid column name ([a-z][a-z0-9_]*, at most 63)",
                    column.name
                )));
            }
            if !seen.insert(&column.name) {
                return Err(SchemaError::Invalid(format!(
                    "column `{}` appears twice",
                    column.name
                )));
            }
            if !is_valid_label(&column.description, 500) {
                return Err(SchemaError::Invalid(format!(
                    "the description of `{}` is not acceptable",
                    column.name
                )));
            }
        }
        Ok(schema)
    }

    pub fn fetch_time(&self) -> Option<FetchTime> {
        FetchTime::parse(&self.fetch_time).ok()
    }
}
