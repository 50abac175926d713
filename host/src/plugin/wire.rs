//! Conversions between the host's columns and the records a binding generator makes from the
//! plugin interface's WIT (`column-type`, `column`, `column-data` and its five column records).
//!
//! wasmtime's bindgen makes them for the host (`v0_1_0`), wit-bindgen for the SDK (which the
//! benchmark's native build of the plugins uses): the same shapes as different types. One
//! macro writes the conversions for whichever module it is given.

/// Defines, in the calling module and with visibility `$vis`, the conversions for the bindings
/// module `$wire` (e.g. `wire` after `use ...::crypto_etl::plugin::types as wire;`): `schema`,
/// `plan`, `info`, `guest_error`, `context`, `batch`, `batch_back` and `output`. Columns move
/// between the two sets of types without a copy.
#[doc(hidden)]
#[macro_export]
macro_rules! wire_conversions {
    ($vis:vis $($wire:ident)::+) => {
        fn to_wire_type(ty: $crate::batch::ColumnType) -> $($wire)::+::ColumnType {
            use $crate::batch::ColumnType as T;
            use $($wire)::+::ColumnType as W;
            match ty {
                T::Float64 => W::Float64,
                T::Int64 => W::Int64,
                T::Text => W::Text,
                T::Boolean => W::Boolean,
                T::Timestamp => W::Timestamp,
            }
        }

        fn from_wire_type(ty: $($wire)::+::ColumnType) -> $crate::batch::ColumnType {
            use $crate::batch::ColumnType as T;
            use $($wire)::+::ColumnType as W;
            match ty {
                W::Float64 => T::Float64,
                W::Int64 => T::Int64,
                W::Text => T::Text,
                W::Boolean => T::Boolean,
                W::Timestamp => T::Timestamp,
            }
        }

        /// `column` in the interface's types, its buffers moved, not copied.
        fn column_to_wire(column: $crate::batch::Column) -> $($wire)::+::Column {
            use $crate::batch::ColumnData as D;
            use $($wire)::+ as w;
            let data = match column.data {
                D::Float64 { values, valid } => {
                    w::ColumnData::Float64(w::Float64Column { values, valid })
                }
                D::Int64 { values, valid } => w::ColumnData::Int64(w::Int64Column { values, valid }),
                D::Timestamp { values, valid } => {
                    w::ColumnData::Timestamp(w::TimestampColumn { values, valid })
                }
                D::Boolean { values, valid } => {
                    w::ColumnData::Boolean(w::BooleanColumn { values, valid })
                }
                D::Text { data, offsets, valid } => {
                    w::ColumnData::Text(w::TextColumn { data, offsets, valid })
                }
            };
            w::Column { name: column.name, data }
        }

        /// `column` as a host column, its buffers moved, not copied. Shapes are not checked
        /// here: the chain checks every output against the plugin's plan.
        fn column_from_wire(column: $($wire)::+::Column) -> $crate::batch::Column {
            use $crate::batch::ColumnData as D;
            use $($wire)::+ as w;
            let data = match column.data {
                w::ColumnData::Float64(c) => D::Float64 { values: c.values, valid: c.valid },
                w::ColumnData::Int64(c) => D::Int64 { values: c.values, valid: c.valid },
                w::ColumnData::Timestamp(c) => D::Timestamp { values: c.values, valid: c.valid },
                w::ColumnData::Boolean(c) => D::Boolean { values: c.values, valid: c.valid },
                w::ColumnData::Text(c) => {
                    D::Text { data: c.data, offsets: c.offsets, valid: c.valid }
                }
            };
            $crate::batch::Column { name: column.name, data }
        }

        /// The schema a plugin plans against.
        $vis fn schema(schema: &$crate::batch::Schema) -> Vec<$($wire)::+::ColumnInfo> {
            schema
                .fields
                .iter()
                .map(|f| $($wire)::+::ColumnInfo {
                    name: f.name.clone(),
                    type_: to_wire_type(f.column_type),
                })
                .collect()
        }

        $vis fn info(info: $($wire)::+::PluginInfo) -> $crate::plugin::PluginInfo {
            $crate::plugin::PluginInfo {
                name: info.name,
                version: info.version,
                description: info.description,
            }
        }

        $vis fn guest_error(error: $($wire)::+::PluginError) -> $crate::plugin::Failure {
            use $crate::plugin::GuestErrorKind as K;
            use $($wire)::+::PluginError as E;
            let (kind, message) = match error {
                E::InvalidConfig(m) => (K::InvalidConfig, m),
                E::InvalidInput(m) => (K::InvalidInput, m),
                E::Internal(m) => (K::Internal, m),
            };
            $crate::plugin::Failure::Guest { kind, message }
        }

        $vis fn context(
            context: &$crate::plugin::SnapshotContext,
        ) -> $($wire)::+::SnapshotContext {
            $($wire)::+::SnapshotContext {
                fetch_time: context.fetch_time,
                currency: context.currency.clone(),
                market_total_cap: context.market_total_cap,
                market_total_volume: context.market_total_volume,
            }
        }

        /// The columns a plugin reads, moved into the interface's types.
        $vis fn batch(batch: $crate::batch::Batch) -> $($wire)::+::Batch {
            $($wire)::+::Batch {
                // The chain refuses batches over u32::MAX rows before any plugin runs.
                row_count: u32::try_from(batch.rows()).unwrap_or(u32::MAX),
                columns: batch.into_columns().into_iter().map(column_to_wire).collect(),
            }
        }

        /// A batch given to a plugin, moved back into host types.
        $vis fn batch_back(batch: $($wire)::+::Batch) -> $crate::batch::Batch {
            $crate::batch::Batch::new(
                batch.row_count as usize,
                batch.columns.into_iter().map(column_from_wire).collect(),
            )
        }

        /// A plugin's output as host types. Shapes are not checked here: the chain checks every
        /// output against the plugin's plan, whatever interface version it came through.
        $vis fn output(output: $($wire)::+::Output) -> $crate::plugin::PluginOutput {
            $crate::plugin::PluginOutput {
                columns: output.columns.into_iter().map(column_from_wire).collect(),
                rejected: output
                    .rejected
                    .into_iter()
                    .map(|r| $crate::plugin::Rejection { row: r.row as usize, reason: r.reason })
                    .collect(),
            }
        }

        /// A plugin's plan as host types; the chain checks it.
        $vis fn plan(plan: $($wire)::+::TransformPlan) -> $crate::plugin::Plan {
            $crate::plugin::Plan {
                reads: plan
                    .reads
                    .into_iter()
                    .map(|r| $crate::batch::Field {
                        name: r.name,
                        column_type: from_wire_type(r.type_),
                    })
                    .collect(),
                writes: plan
                    .writes
                    .into_iter()
                    .map(|w| $crate::plugin::WriteSpec {
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
    };
}
