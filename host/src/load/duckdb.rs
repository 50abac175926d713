//! The embedded warehouse: a DuckDB file, no server and no account.

use std::path::{Path, PathBuf};

use duckdb::{Connection, params};

use super::{LoadError, LoadReport, TableName};
use crate::batch::ColumnType;
use crate::processed::ProcessedSchema;

/// A DuckDB database file holding the snapshot table, its load history and a latest view.
#[derive(Debug, Clone)]
pub struct DuckDbWarehouse {
    path: PathBuf,
    table: TableName,
}

fn duck(action: &'static str) -> impl Fn(duckdb::Error) -> LoadError {
    move |e| LoadError::Warehouse { action, message: e.to_string() }
}

impl DuckDbWarehouse {
    pub fn new(path: PathBuf, table: TableName) -> Self {
        Self { path, table }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// Loads the CSV at `csv` described by `schema`, replacing any earlier load of the same
    /// snapshot, in one transaction.
    pub fn load(
        &self,
        schema: &ProcessedSchema,
        csv: &Path,
        file: &str,
    ) -> Result<LoadReport, LoadError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LoadError::Warehouse {
                action: "create the database folder",
                message: format!("{}: {e}", dir.display()),
            })?;
        }
        let mut connection = Connection::open(&self.path).map_err(duck("open the database"))?;
        let started = chrono_now(&connection)?;
        let tx = connection.transaction().map_err(duck("start a transaction"))?;
        let table = quote(self.table.as_str());
        let history = quote(&format!("{}_LOAD_HISTORY", self.table.as_str()));
        let latest = quote(&format!("{}_LATEST", self.table.as_str()));

        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (snapshot_id VARCHAR NOT NULL, currency VARCHAR NOT NULL);
             CREATE TABLE IF NOT EXISTS {history} (
                 snapshot_id VARCHAR NOT NULL, file VARCHAR NOT NULL, rows_loaded BIGINT NOT NULL,
                 rows_rejected BIGINT NOT NULL, pipeline VARCHAR NOT NULL, plugins VARCHAR NOT NULL,
                 started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP NOT NULL);"
        ))
        .map_err(duck("create the tables"))?;

        // Schema evolution: new columns are added (nullable, so old rows read as null); a column
        // never changes type.
        let existing: Vec<(String, String)> = {
            let mut statement = tx
                .prepare("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?")
                .map_err(duck("read the table's columns"))?;
            let rows = statement
                .query_map(params![self.table.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(duck("read the table's columns"))?;
            rows.collect::<Result<_, _>>().map_err(duck("read the table's columns"))?
        };
        let mut added = Vec::new();
        for column in &schema.columns {
            let wanted = sql_type(column.column_type);
            match existing.iter().find(|(name, _)| name == &column.name) {
                Some((_, have)) if have != wanted => {
                    return Err(LoadError::TypeConflict {
                        column: column.name.clone(),
                        table: self.table.as_str().to_owned(),
                        have: have.clone(),
                        new: wanted.into(),
                    });
                }
                Some(_) => {}
                None => {
                    tx.execute_batch(&format!(
                        "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {} {}",
                        quote(&column.name),
                        sql_type(column.column_type)
                    ))
                    .map_err(duck("add a column"))?;
                    added.push(column.name.clone());
                }
            }
        }

        // Idempotent: a re-run of the same snapshot replaces its rows.
        let replaced = tx
            .execute(
                &format!("DELETE FROM {table} WHERE snapshot_id = ?"),
                params![schema.snapshot_id],
            )
            .map_err(duck("remove an earlier load of this snapshot"))?;
        let names: Vec<String> = schema.columns.iter().map(|c| quote(&c.name)).collect();
        let types: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("'{}': '{}'", c.name, sql_type(c.column_type)))
            .collect();
        let insert = format!(
            "INSERT INTO {table} (snapshot_id, currency, {names})
             SELECT ?, ?, {names} FROM read_csv(?, header = true, auto_detect = false,
                 columns = {{{types}}}, timestampformat = '%Y-%m-%dT%H:%M:%S', quote = '\"', escape = '\"')",
            names = names.join(", "),
            types = types.join(", "),
        );
        let csv_path = csv.to_str().ok_or_else(|| LoadError::Warehouse {
            action: "read the CSV",
            message: format!("{} is not a UTF-8 path", csv.display()),
        })?;
        let loaded = tx
            .execute(&insert, params![schema.snapshot_id, schema.currency, csv_path])
            .map_err(|e| LoadError::Rejected { file: file.to_owned(), message: e.to_string() })?;
        if loaded != schema.rows {
            return Err(LoadError::Rejected {
                file: file.to_owned(),
                message: format!(
                    "the CSV has {loaded} rows but its schema file says {}",
                    schema.rows
                ),
            });
        }

        let plugins = serde_json::to_string(&schema.plugins).unwrap_or_default();
        tx.execute(
            &format!("INSERT INTO {history} VALUES (?, ?, ?, ?, ?, ?, ?, now())"),
            params![
                schema.snapshot_id,
                file,
                loaded as i64,
                schema.rejected as i64,
                schema.pipeline,
                plugins,
                started
            ],
        )
        .map_err(duck("record the load"))?;
        tx.execute_batch(&format!(
            "CREATE OR REPLACE VIEW {latest} AS SELECT * FROM {table}
             WHERE snapshot_id = (SELECT snapshot_id FROM {history}
                                  ORDER BY split_part(snapshot_id, ':', 2) DESC, finished_at DESC LIMIT 1)"
        ))
        .map_err(duck("update the latest-snapshot view"))?;
        tx.commit().map_err(duck("commit"))?;
        Ok(LoadReport {
            snapshot_id: schema.snapshot_id.clone(),
            table: self.table.as_str().to_owned(),
            rows_loaded: loaded,
            rows_replaced: replaced,
            columns_added: added,
        })
    }
}

fn chrono_now(connection: &Connection) -> Result<String, LoadError> {
    connection
        .query_row("SELECT strftime(now(), '%Y-%m-%d %H:%M:%S.%f')", [], |row| row.get(0))
        .map_err(duck("read the clock"))
}

/// A quoted SQL identifier. Only ever called with names that passed `TableName::new` or
/// `names::is_valid_column_name`, which cannot contain a quote; doubling quotes keeps it safe
/// even so.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The SQL type a column of `ty` gets in the warehouse.
fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Float64 => "DOUBLE",
        ColumnType::Int64 => "BIGINT",
        ColumnType::Text => "VARCHAR",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Timestamp => "TIMESTAMP",
    }
}
