//! The cloud warehouse: Snowflake, loaded with `COPY INTO` from an external stage over the store.
//!
//! The stage (`SNOWFLAKE_STAGE`, default `CRYPTO_STAGE` as in the original pipeline) points at the
//! bucket's root, so a processed file's object name is its path in the stage. A load:
//!
//! 1. creates the table and its load history if they do not exist, and adds the columns the file
//!    has and the table lacks (nullable; a column never changes type);
//! 2. copies the file into a session-private temporary table with an explicit column list,
//!    `FILES = (...)` and `ON_ERROR = ABORT_STATEMENT`, so one bad row refuses the whole file;
//! 3. in one transaction, deletes any earlier load of the snapshot, inserts the copied rows with
//!    the snapshot's id, and records the load.
//!
//! A retry or a re-run therefore leaves one copy of each row, and a failure leaves the table as
//! it was. Every identifier is validated and quoted upper-case, which is what the original's
//! unquoted names resolve to.

use std::fmt;
use std::time::Duration;

use snowflake_connector_rs::{
    AuthConfig, CellValue, Client, ClientConfig, EndpointConfig, ErrorKind, KeyPairConfig,
    QueryConfig, Session, SessionConfig, Statement,
};
use url::Url;

use super::{LoadError, LoadReport, TableName};
use crate::batch::ColumnType;
use crate::processed::ProcessedSchema;

/// The database the original pipeline loaded into.
pub const DEFAULT_DATABASE: &str = "CRYPTO_ETL_DB";
/// The schema the original pipeline loaded into.
pub const DEFAULT_SCHEMA: &str = "PUBLIC";
/// The stage the original pipeline copied from.
pub const DEFAULT_STAGE: &str = "CRYPTO_STAGE";

/// How to sign in. Never printed.
#[derive(Clone)]
pub enum SnowflakeAuth {
    Password(String),
    /// A PKCS#8 PEM private key, optionally encrypted with a passphrase.
    KeyPair {
        pem: String,
        passphrase: Option<String>,
    },
}

impl fmt::Debug for SnowflakeAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnowflakeAuth::Password(_) => f.write_str("Password(<redacted>)"),
            SnowflakeAuth::KeyPair { .. } => f.write_str("KeyPair(<redacted>)"),
        }
    }
}

/// Where and how to load into Snowflake, from `SNOWFLAKE_*` settings.
#[derive(Debug, Clone)]
pub struct SnowflakeSettings {
    pub account: String,
    pub user: String,
    pub auth: SnowflakeAuth,
    pub warehouse: Option<String>,
    pub database: String,
    pub schema: String,
    pub role: Option<String>,
    pub stage: String,
    /// Instead of `https://<account>.snowflakecomputing.com`: PrivateLink, or a local double.
    pub endpoint: Option<Url>,
    pub query_timeout: Duration,
}

/// The settings read by [`SnowflakeSettings::from_lookup`], for help texts.
pub const SETTINGS_HELP: &str = "\
SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, and SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY (PKCS#8 PEM) or
SNOWFLAKE_PRIVATE_KEY_PATH (with SNOWFLAKE_PRIVATE_KEY_PASSPHRASE if encrypted); optional:
SNOWFLAKE_WAREHOUSE, SNOWFLAKE_DATABASE (default CRYPTO_ETL_DB), SNOWFLAKE_SCHEMA (default PUBLIC),
SNOWFLAKE_ROLE, SNOWFLAKE_STAGE (default CRYPTO_STAGE), SNOWFLAKE_ENDPOINT (a base URL instead of
https://<account>.snowflakecomputing.com)";

impl SnowflakeSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, LoadError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `get` (the environment, or a secret's fields).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, LoadError> {
        let get = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &str| {
            get(name).ok_or_else(|| {
                LoadError::Config(format!("{name} is not set; Snowflake needs {SETTINGS_HELP}"))
            })
        };
        let identifier = |name: &str, default: Option<&str>| -> Result<Option<String>, LoadError> {
            match get(name).or_else(|| default.map(str::to_owned)) {
                Some(value) if is_identifier(&value) => Ok(Some(value.to_ascii_uppercase())),
                Some(value) => Err(LoadError::Config(format!(
                    "{name}={value:?} is not a plain identifier (letters, digits and _, starting with a letter or _)"
                ))),
                None => Ok(None),
            }
        };
        let account = required("SNOWFLAKE_ACCOUNT")?;
        if !account.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(LoadError::Config(format!(
                "SNOWFLAKE_ACCOUNT={account:?} is not an account identifier (like myorg-myaccount)"
            )));
        }
        let user = required("SNOWFLAKE_USER")?;
        let auth = if let Some(password) = get("SNOWFLAKE_PASSWORD") {
            SnowflakeAuth::Password(password)
        } else {
            let pem = match (get("SNOWFLAKE_PRIVATE_KEY"), get("SNOWFLAKE_PRIVATE_KEY_PATH")) {
                (Some(pem), _) => pem,
                (None, Some(path)) => std::fs::read_to_string(&path).map_err(|e| {
                    LoadError::Config(format!("cannot read SNOWFLAKE_PRIVATE_KEY_PATH {path}: {e}"))
                })?,
                (None, None) => {
                    return Err(LoadError::Config(format!(
                        "no Snowflake credentials: set SNOWFLAKE_PASSWORD or a key pair; Snowflake needs {SETTINGS_HELP}"
                    )));
                }
            };
            SnowflakeAuth::KeyPair { pem, passphrase: get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE") }
        };
        let endpoint = match get("SNOWFLAKE_ENDPOINT") {
            Some(text) => Some(Url::parse(&text).map_err(|e| {
                LoadError::Config(format!("SNOWFLAKE_ENDPOINT={text:?} is not a URL: {e}"))
            })?),
            None => None,
        };
        Ok(Self {
            account,
            user,
            auth,
            warehouse: identifier("SNOWFLAKE_WAREHOUSE", None)?,
            database: identifier("SNOWFLAKE_DATABASE", Some(DEFAULT_DATABASE))?.unwrap_or_default(),
            schema: identifier("SNOWFLAKE_SCHEMA", Some(DEFAULT_SCHEMA))?.unwrap_or_default(),
            role: identifier("SNOWFLAKE_ROLE", None)?,
            stage: identifier("SNOWFLAKE_STAGE", Some(DEFAULT_STAGE))?.unwrap_or_default(),
            endpoint,
            query_timeout: Duration::from_secs(300),
        })
    }
}

/// A Snowflake identifier this loader will quote: `[A-Za-z_][A-Za-z0-9_$]*`, at most 255.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 255
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// `"NAME"`: identifiers are stored upper-case, as Snowflake resolves unquoted names.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.to_ascii_uppercase().replace('"', "\"\""))
}

/// The Snowflake type a column of `ty` gets.
fn snowflake_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Float64 => "FLOAT",
        ColumnType::Int64 => "NUMBER(38,0)",
        ColumnType::Text => "VARCHAR",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Timestamp => "TIMESTAMP_NTZ",
    }
}

/// The column type an existing Snowflake column holds, from `INFORMATION_SCHEMA.COLUMNS`.
fn column_type_of(data_type: &str, scale: Option<i64>) -> Option<ColumnType> {
    match data_type.to_ascii_uppercase().as_str() {
        "NUMBER" | "DECIMAL" | "NUMERIC" | "INT" | "INTEGER" | "BIGINT"
            if scale.unwrap_or(0) == 0 =>
        {
            Some(ColumnType::Int64)
        }
        "FLOAT" | "DOUBLE" | "REAL" | "DOUBLE PRECISION" => Some(ColumnType::Float64),
        "TEXT" | "VARCHAR" | "STRING" => Some(ColumnType::Text),
        "BOOLEAN" => Some(ColumnType::Boolean),
        "TIMESTAMP_NTZ" | "TIMESTAMP" | "DATETIME" => Some(ColumnType::Timestamp),
        _ => None,
    }
}

/// A Snowflake account to load into. The client is built once and reused for every load.
#[derive(Clone)]
pub struct SnowflakeWarehouse {
    settings: SnowflakeSettings,
    table: TableName,
    client: Client,
}

impl fmt::Debug for SnowflakeWarehouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnowflakeWarehouse")
            .field("settings", &self.settings)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl SnowflakeWarehouse {
    pub fn new(settings: SnowflakeSettings, table: TableName) -> Result<Self, LoadError> {
        let auth = match &settings.auth {
            SnowflakeAuth::Password(password) => AuthConfig::password(password.as_str()),
            SnowflakeAuth::KeyPair { pem, passphrase: None } => {
                AuthConfig::key_pair(KeyPairConfig::from_pem(pem.as_str()))
            }
            SnowflakeAuth::KeyPair { pem, passphrase: Some(passphrase) } => AuthConfig::key_pair(
                KeyPairConfig::from_encrypted_pem(pem.as_str(), passphrase.as_bytes()),
            ),
        };
        let mut session = SessionConfig::new()
            .with_database(settings.database.as_str())
            .with_schema(settings.schema.as_str());
        if let Some(warehouse) = &settings.warehouse {
            session = session.with_warehouse(warehouse.as_str());
        }
        if let Some(role) = &settings.role {
            session = session.with_role(role.as_str());
        }
        let mut config = ClientConfig::new(settings.user.as_str(), settings.account.as_str(), auth)
            .with_session(session)
            .with_query(QueryConfig::new().with_query_response_timeout(settings.query_timeout));
        if let Some(endpoint) = &settings.endpoint {
            config = config.with_endpoint(EndpointConfig::custom_base_url(endpoint.clone()));
        }
        let client = Client::new(config).map_err(|e| LoadError::Config(e.to_string()))?;
        Ok(Self { settings, table, client })
    }

    /// Where it loads, for people: `snowflake:DB.SCHEMA.TABLE`.
    pub fn describe(&self) -> String {
        format!("snowflake:{}", self.table_path())
    }

    fn table_path(&self) -> String {
        format!("{}.{}.{}", self.settings.database, self.settings.schema, self.table.as_str())
    }

    fn qualified(&self, name: &str) -> String {
        format!(
            "{}.{}.{}",
            ident(&self.settings.database),
            ident(&self.settings.schema),
            ident(name)
        )
    }

    /// Loads the staged object `object` (its key in the bucket the stage points at), described
    /// by `schema`, replacing any earlier load of the same snapshot.
    pub async fn load(
        &self,
        schema: &ProcessedSchema,
        object: &str,
        file: &str,
    ) -> Result<LoadReport, LoadError> {
        let session = self.client.create_session().await.map_err(|e| self.sign_in_error(e))?;
        let started = chrono::Utc::now().naive_utc();
        let table = self.qualified(self.table.as_str());
        let history = self.qualified(&format!("{}_LOAD_HISTORY", self.table.as_str()));
        let latest = self.qualified(&format!("{}_LATEST", self.table.as_str()));
        // Temporary tables live in the session's own namespace: named unqualified.
        let incoming = ident(&format!("{}_INCOMING", self.table.as_str()));

        execute(
            &session,
            "create the table",
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (\"SNAPSHOT_ID\" VARCHAR NOT NULL, \"CURRENCY\" VARCHAR NOT NULL)"
            ),
        )
        .await?;
        execute(
            &session,
            "create the load history",
            format!(
                "CREATE TABLE IF NOT EXISTS {history} (\"SNAPSHOT_ID\" VARCHAR NOT NULL, \"FILE\" VARCHAR NOT NULL,
                 \"ROWS_LOADED\" NUMBER(38,0) NOT NULL, \"ROWS_REJECTED\" NUMBER(38,0) NOT NULL,
                 \"PIPELINE\" VARCHAR NOT NULL, \"PLUGINS\" VARCHAR NOT NULL,
                 \"STARTED_AT\" TIMESTAMP_NTZ NOT NULL, \"FINISHED_AT\" TIMESTAMP_NTZ NOT NULL)"
            ),
        )
        .await?;

        let added = self.evolve(&session, &table, schema).await?;

        // The copy goes to a temporary table first: the snapshot id is not in the file, and the
        // swap below must be one transaction, which DDL and COPY inside it would end.
        let columns: Vec<String> = schema.columns.iter().map(|c| ident(&c.name)).collect();
        let definitions: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("{} {}", ident(&c.name), snowflake_type(c.column_type)))
            .collect();
        execute(
            &session,
            "create the temporary table",
            format!("CREATE OR REPLACE TEMPORARY TABLE {incoming} ({})", definitions.join(", ")),
        )
        .await?;
        let (folder, name) = object.rsplit_once('/').unwrap_or(("", object));
        let from = format!("@{}/{folder}/", self.qualified(&self.settings.stage));
        let copy = format!(
            "COPY INTO {incoming} ({columns}) FROM '{from}' FILES = ('{name}')
             FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1 FIELD_OPTIONALLY_ENCLOSED_BY = '\"'
                            EMPTY_FIELD_AS_NULL = TRUE NULL_IF = ())
             ON_ERROR = ABORT_STATEMENT FORCE = TRUE",
            columns = columns.join(", "),
            from = sql_text(&from),
            name = sql_text(name),
        );
        let loaded = self.copy(&session, copy, file).await?;
        if loaded != schema.rows {
            return Err(LoadError::Rejected {
                file: file.to_owned(),
                message: format!(
                    "Snowflake loaded {loaded} rows but the schema file says {}; nothing was loaded",
                    schema.rows
                ),
            });
        }

        let plugins = serde_json::to_string(&schema.plugins).unwrap_or_default();
        let swap = async {
            execute(&session, "start a transaction", "BEGIN".to_owned()).await?;
            let replaced = count(
                &session,
                "remove an earlier load of this snapshot",
                Statement::new(format!("DELETE FROM {table} WHERE \"SNAPSHOT_ID\" = ?"))
                    .bind(schema.snapshot_id.clone()),
            )
            .await?;
            count(
                &session,
                "insert the snapshot's rows",
                Statement::new(format!(
                    "INSERT INTO {table} (\"SNAPSHOT_ID\", \"CURRENCY\", {columns})
                     SELECT ?, ?, {columns} FROM {incoming}",
                    columns = columns.join(", ")
                ))
                .bind(schema.snapshot_id.clone())
                .bind(schema.currency.clone()),
            )
            .await?;
            count(
                &session,
                "record the load",
                Statement::new(format!("INSERT INTO {history} VALUES (?, ?, ?, ?, ?, ?, ?, ?)"))
                    .bind(schema.snapshot_id.clone())
                    .bind(file.to_owned())
                    .bind(loaded as i64)
                    .bind(schema.rejected as i64)
                    .bind(schema.pipeline.clone())
                    .bind(plugins.clone())
                    .bind(started.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
                    // Both times in UTC, from here: CURRENT_TIMESTAMP is in the account's time zone.
                    .bind(
                        chrono::Utc::now().naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
                    ),
            )
            .await?;
            execute(&session, "commit", "COMMIT".to_owned()).await?;
            Ok::<_, LoadError>(replaced)
        };
        let replaced = match swap.await {
            Ok(replaced) => replaced,
            Err(error) => {
                // Undo the DELETE: sessions are not closed explicitly, so an open transaction
                // would keep its locks until the session expires.
                let _ = session.query("ROLLBACK").await;
                return Err(error);
            }
        };

        // For dashboards (Looker Studio and the like): the newest snapshot only.
        execute(
            &session,
            "update the latest-snapshot view",
            format!(
                "CREATE OR REPLACE VIEW {latest} AS SELECT * FROM {table}
                 WHERE \"SNAPSHOT_ID\" = (SELECT \"SNAPSHOT_ID\" FROM {history}
                     ORDER BY SPLIT_PART(\"SNAPSHOT_ID\", ':', 2) DESC, \"FINISHED_AT\" DESC LIMIT 1)"
            ),
        )
        .await?;
        let _ = session.query(format!("DROP TABLE IF EXISTS {incoming}")).await;

        Ok(LoadReport {
            snapshot_id: schema.snapshot_id.clone(),
            table: self.table_path(),
            rows_loaded: loaded,
            rows_replaced: replaced,
            columns_added: added,
        })
    }

    /// Adds the file's columns the table lacks; refuses a column whose type would change.
    async fn evolve(
        &self,
        session: &Session,
        table: &str,
        schema: &ProcessedSchema,
    ) -> Result<Vec<String>, LoadError> {
        let existing: Vec<(String, String, Option<i64>)> = session
            .query_as(
                Statement::new(format!(
                    "SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_SCALE FROM {}.INFORMATION_SCHEMA.COLUMNS
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    ident(&self.settings.database)
                ))
                .bind(self.settings.schema.clone())
                .bind(self.table.as_str().to_ascii_uppercase()),
            )
            .await
            .map_err(|e| failure("read the table's columns", e))?
            .collect()
            .await
            .map_err(|e| failure("read the table's columns", e))?;
        let mut added = Vec::new();
        for column in &schema.columns {
            let upper = column.name.to_ascii_uppercase();
            match existing.iter().find(|(name, _, _)| name.eq_ignore_ascii_case(&upper)) {
                Some((_, have, scale)) => {
                    if column_type_of(have, *scale) != Some(column.column_type) {
                        return Err(LoadError::TypeConflict {
                            column: column.name.clone(),
                            table: self.table_path(),
                            have: have.clone(),
                            new: snowflake_type(column.column_type).to_owned(),
                        });
                    }
                }
                None => {
                    execute(
                        session,
                        "add a column",
                        format!(
                            "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {} {}",
                            ident(&column.name),
                            snowflake_type(column.column_type)
                        ),
                    )
                    .await?;
                    added.push(column.name.clone());
                }
            }
        }
        Ok(added)
    }

    /// Runs the COPY and returns the rows it loaded; any error refuses the whole file.
    async fn copy(&self, session: &Session, copy: String, file: &str) -> Result<usize, LoadError> {
        let rejected = |message: String| LoadError::Rejected { file: file.to_owned(), message };
        let rows = session
            .query(copy)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Server => rejected(server_message(&e)),
                _ => failure("copy the file from the stage", e),
            })?
            .collect::<Vec<_>>()
            .await
            .map_err(|e| failure("read the COPY result", e))?;
        let mut loaded = 0usize;
        for row in rows {
            // Snowflake names COPY's result columns in lower case; accept either.
            let text = |name: &str| {
                let value = row.value(name).or_else(|_| row.value(&name.to_ascii_uppercase()));
                match value.ok()? {
                    CellValue::String(text) => Some(text.clone()),
                    CellValue::Integer(n) => Some(n.to_string()),
                    _ => None,
                }
            };
            let status = text("status").unwrap_or_default();
            if !status.is_empty() && !status.eq_ignore_ascii_case("LOADED") {
                let first_error = text("first_error").unwrap_or_default();
                return Err(rejected(format!("{status}: {first_error}")));
            }
            loaded += text("rows_loaded").and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
        }
        Ok(loaded)
    }

    fn sign_in_error(&self, error: snowflake_connector_rs::Error) -> LoadError {
        match error.kind() {
            ErrorKind::Network | ErrorKind::Timeout => failure("reach Snowflake", error),
            _ => LoadError::SignIn {
                account: self.settings.account.clone(),
                user: self.settings.user.clone(),
                message: server_message(&error),
            },
        }
    }
}

/// A string literal: the text between single quotes, with quotes and backslashes escaped.
fn sql_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

fn server_message(error: &snowflake_connector_rs::Error) -> String {
    match (error.snowflake_code(), error.snowflake_message()) {
        (Some(code), Some(message)) => format!("{message} (Snowflake error {code})"),
        (None, Some(message)) => message.to_owned(),
        _ => error.to_string(),
    }
}

fn failure(action: &'static str, error: snowflake_connector_rs::Error) -> LoadError {
    let transient = matches!(error.kind(), ErrorKind::Network | ErrorKind::Timeout)
        || error.is_session_expired();
    let message = server_message(&error);
    if transient {
        LoadError::Unreachable { action, message }
    } else {
        LoadError::Warehouse { action, message }
    }
}

async fn execute(session: &Session, action: &'static str, sql: String) -> Result<(), LoadError> {
    session.query(sql).await.map_err(|e| failure(action, e))?;
    Ok(())
}

/// Runs a DML statement and returns the rows it changed.
async fn count(
    session: &Session,
    action: &'static str,
    statement: Statement<snowflake_connector_rs::PositionalBinds>,
) -> Result<usize, LoadError> {
    let rows: Vec<(i64,)> = session
        .query_as(statement)
        .await
        .map_err(|e| failure(action, e))?
        .collect()
        .await
        .map_err(|e| failure(action, e))?;
    Ok(rows.first().map_or(0, |(n,)| usize::try_from(*n).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<SnowflakeSettings, LoadError> {
        let env: HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        SnowflakeSettings::from_lookup(|name| env.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_original_pipeline() {
        let s = settings(&[
            ("SNOWFLAKE_ACCOUNT", "myorg-acct"),
            ("SNOWFLAKE_USER", "etl"),
            ("SNOWFLAKE_PASSWORD", "hunter2"),
        ])
        .unwrap();
        assert_eq!((s.database.as_str(), s.schema.as_str()), ("CRYPTO_ETL_DB", "PUBLIC"));
        assert_eq!(s.stage, "CRYPTO_STAGE");
        assert!(!format!("{s:?}").contains("hunter2"), "the password must never be printed");
    }

    #[test]
    fn missing_and_hostile_settings_are_refused_with_the_variable_named() {
        let error = settings(&[("SNOWFLAKE_USER", "etl")]).unwrap_err().to_string();
        assert!(error.contains("SNOWFLAKE_ACCOUNT is not set"), "{error}");
        let error = settings(&[("SNOWFLAKE_ACCOUNT", "a"), ("SNOWFLAKE_USER", "u")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("no Snowflake credentials"), "{error}");
        let error = settings(&[
            ("SNOWFLAKE_ACCOUNT", "a"),
            ("SNOWFLAKE_USER", "u"),
            ("SNOWFLAKE_PASSWORD", "p"),
            ("SNOWFLAKE_SCHEMA", "PUBLIC\"; DROP TABLE X; --"),
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("SNOWFLAKE_SCHEMA"), "{error}");
    }

    #[test]
    fn existing_column_types_are_recognised() {
        assert_eq!(column_type_of("NUMBER", Some(0)), Some(ColumnType::Int64));
        assert_eq!(column_type_of("NUMBER", Some(2)), None);
        assert_eq!(column_type_of("FLOAT", None), Some(ColumnType::Float64));
        assert_eq!(column_type_of("TEXT", None), Some(ColumnType::Text));
        assert_eq!(column_type_of("TIMESTAMP_NTZ", None), Some(ColumnType::Timestamp));
        assert_eq!(sql_text("a'b\\c"), "a\\'b\\\\c");
        assert_eq!(ident("market_cap"), "\"MARKET_CAP\"");
    }
}
