//! Bindings for version 0.1.0 of the plugin interface (`wit/v0.1.0`), and the conversions
//! between its types and the host's. Each interface version the host accepts gets a module like
//! this one; nothing outside `plugin` sees these types.

use crate::batch::{Batch, Column, ColumnData, ColumnType, Field, Schema};
use crate::plugin::{
    Failure, GuestErrorKind, Plan, PluginInfo, PluginOutput, Rejection, SnapshotContext, WriteSpec,
};

wasmtime::component::bindgen!({
    path: "../wit/v0.1.0",
    world: "transform-plugin",
});

pub use self::crypto_etl::plugin::host::LogLevel;
use self::crypto_etl::plugin::types as wire;

/// The name of the export that marks a component as a plugin of this interface version.
pub const EXPORT: &str = "crypto-etl:plugin/transformer@0.1.0";

fn to_wire_type(ty: ColumnType) -> wire::ColumnType {
    match ty {
        ColumnType::Float64 => wire::ColumnType::Float64,
        ColumnType::Int64 => wire::ColumnType::Int64,
        ColumnType::Text => wire::ColumnType::Text,
        ColumnType::Boolean => wire::ColumnType::Boolean,
        ColumnType::Timestamp => wire::ColumnType::Timestamp,
    }
}

fn from_wire_type(ty: wire::ColumnType) -> ColumnType {
    match ty {
        wire::ColumnType::Float64 => ColumnType::Float64,
        wire::ColumnType::Int64 => ColumnType::Int64,
        wire::ColumnType::Text => ColumnType::Text,
        wire::ColumnType::Boolean => ColumnType::Boolean,
        wire::ColumnType::Timestamp => ColumnType::Timestamp,
    }
}

pub fn schema(schema: &Schema) -> Vec<wire::ColumnInfo> {
    schema
        .fields
        .iter()
        .map(|f| wire::ColumnInfo { name: f.name.clone(), type_: to_wire_type(f.column_type) })
        .collect()
}

pub fn info(info: wire::PluginInfo) -> PluginInfo {
    PluginInfo { name: info.name, version: info.version, description: info.description }
}

pub fn plan(plan: wire::TransformPlan) -> Plan {
    Plan {
        reads: plan
            .reads
            .into_iter()
            .map(|r| Field { name: r.name, column_type: from_wire_type(r.type_) })
            .collect(),
        writes: plan
            .writes
            .into_iter()
            .map(|w| WriteSpec {
                name: w.name,
                column_type: from_wire_type(w.type_),
                description: w.description,
                replaces: w.replaces,
            })
            .collect(),
        removes: plan.removes,
        drops_rows: plan.drops_rows,
    }
}

pub fn guest_error(error: wire::PluginError) -> Failure {
    let (kind, message) = match error {
        wire::PluginError::InvalidConfig(m) => (GuestErrorKind::InvalidConfig, m),
        wire::PluginError::InvalidInput(m) => (GuestErrorKind::InvalidInput, m),
        wire::PluginError::Internal(m) => (GuestErrorKind::Internal, m),
    };
    Failure::Guest { kind, message }
}

pub fn context(context: &SnapshotContext) -> wire::SnapshotContext {
    wire::SnapshotContext {
        fetch_time: context.fetch_time,
        currency: context.currency.clone(),
        market_total_cap: context.market_total_cap,
        market_total_volume: context.market_total_volume,
    }
}

fn column_to_wire(column: &Column) -> wire::Column {
    let data = match &column.data {
        ColumnData::Float64 { values, valid } => wire::ColumnData::Float64(wire::Float64Column {
            values: values.clone(),
            valid: valid.clone(),
        }),
        ColumnData::Int64 { values, valid } => wire::ColumnData::Int64(wire::Int64Column {
            values: values.clone(),
            valid: valid.clone(),
        }),
        ColumnData::Timestamp { values, valid } => {
            wire::ColumnData::Timestamp(wire::TimestampColumn {
                values: values.clone(),
                valid: valid.clone(),
            })
        }
        ColumnData::Boolean { values, valid } => wire::ColumnData::Boolean(wire::BooleanColumn {
            values: values.clone(),
            valid: valid.clone(),
        }),
        ColumnData::Text { data, offsets, valid } => wire::ColumnData::Text(wire::TextColumn {
            data: data.clone(),
            offsets: offsets.clone(),
            valid: valid.clone(),
        }),
    };
    wire::Column { name: column.name.clone(), data }
}

pub fn batch(batch: &Batch) -> wire::Batch {
    wire::Batch {
        // The chain refuses batches over u32::MAX rows before any plugin runs.
        row_count: u32::try_from(batch.rows()).unwrap_or(u32::MAX),
        columns: batch.columns().iter().map(column_to_wire).collect(),
    }
}

fn column_from_wire(column: wire::Column) -> Column {
    let data = match column.data {
        wire::ColumnData::Float64(c) => ColumnData::Float64 { values: c.values, valid: c.valid },
        wire::ColumnData::Int64(c) => ColumnData::Int64 { values: c.values, valid: c.valid },
        wire::ColumnData::Timestamp(c) => {
            ColumnData::Timestamp { values: c.values, valid: c.valid }
        }
        wire::ColumnData::Boolean(c) => ColumnData::Boolean { values: c.values, valid: c.valid },
        wire::ColumnData::Text(c) => {
            ColumnData::Text { data: c.data, offsets: c.offsets, valid: c.valid }
        }
    };
    Column { name: column.name, data }
}

/// The output as host types. Shapes are not checked here: the pipeline checks every output
/// against the plugin's plan whatever interface version it came through.
pub fn output(output: wire::Output) -> PluginOutput {
    PluginOutput {
        columns: output.columns.into_iter().map(column_from_wire).collect(),
        rejected: output
            .rejected
            .into_iter()
            .map(|r| Rejection { row: r.row as usize, reason: r.reason })
            .collect(),
    }
}
