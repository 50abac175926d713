//! The optional configuration file.
//!
//! `crypto-etl.toml` in the working folder, or the file `--config-file` or `CRYPTO_ETL_CONFIG`
//! names. (`--config` is taken: it configures plugins.)
//! Each setting is a default for the environment variable of the same meaning, so the order is
//! always: a flag, then the environment, then the file, then the built-in default.
//!
//! ```toml
//! store = "s3://my-bucket"
//! warehouse = "snowflake"
//!
//! [snowflake]
//! account = "myorg-myaccount"
//! user = "CRYPTO_ETL"
//! ```
//!
//! Secrets (passwords, keys) are refused here: they belong in the environment or a secret store.

use std::path::{Path, PathBuf};

/// Every key the file takes, the variable it stands for, and what it means.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("store", "CRYPTO_ETL_STORE", "where snapshots are kept: a folder or s3://bucket/prefix"),
    ("warehouse", "CRYPTO_ETL_WAREHOUSE", "duckdb:PATH or snowflake"),
    ("table", "CRYPTO_ETL_TABLE", "the warehouse table (CRYPTO_DATA)"),
    ("cache_dir", "CRYPTO_ETL_CACHE_DIR", "where compiled plugins are cached"),
    ("log", "CRYPTO_ETL_LOG", "log filter, e.g. info"),
    ("s3_endpoint", "CRYPTO_ETL_S3_ENDPOINT", "S3-compatible server or VPC endpoint"),
    ("s3_path_style", "CRYPTO_ETL_S3_PATH_STYLE", "true for path-style bucket addressing"),
    ("coingecko.api_plan", "COINGECKO_API_PLAN", "demo or pro"),
    ("coingecko.base_url", "COINGECKO_BASE_URL", "API root instead of the plan's host"),
    ("snowflake.account", "SNOWFLAKE_ACCOUNT", "account identifier"),
    ("snowflake.user", "SNOWFLAKE_USER", "user name"),
    ("snowflake.private_key_path", "SNOWFLAKE_PRIVATE_KEY_PATH", "PKCS#8 key file"),
    ("snowflake.warehouse", "SNOWFLAKE_WAREHOUSE", "compute warehouse"),
    ("snowflake.database", "SNOWFLAKE_DATABASE", "database (CRYPTO_ETL_DB)"),
    ("snowflake.schema", "SNOWFLAKE_SCHEMA", "schema (PUBLIC)"),
    ("snowflake.role", "SNOWFLAKE_ROLE", "role"),
    ("snowflake.stage", "SNOWFLAKE_STAGE", "external stage over the bucket (CRYPTO_STAGE)"),
    ("snowflake.endpoint", "SNOWFLAKE_ENDPOINT", "base URL for PrivateLink"),
];

/// Keys that would hold a secret.
const SECRETS: &[&str] = &[
    "coingecko.api_key",
    "snowflake.password",
    "snowflake.private_key",
    "snowflake.private_key_passphrase",
];

/// The default file name, looked for in the working folder.
pub const DEFAULT_FILE: &str = "crypto-etl.toml";

/// The file to read: `--config-file FILE` (or `--config-file=FILE`) among `args`, `CRYPTO_ETL_CONFIG`, or
/// `crypto-etl.toml` when it exists; `None` when there is none.
pub fn locate(args: &[String]) -> Option<PathBuf> {
    let flag = args.iter().enumerate().find_map(|(i, arg)| {
        arg.strip_prefix("--config-file=")
            .map(str::to_owned)
            .or_else(|| (arg == "--config-file").then(|| args.get(i + 1).cloned()).flatten())
    });
    if let Some(path) = flag.or_else(|| std::env::var("CRYPTO_ETL_CONFIG").ok()) {
        return Some(PathBuf::from(path));
    }
    let default = PathBuf::from(DEFAULT_FILE);
    default.exists().then_some(default)
}

/// Reads `path` and returns the (variable, value) pairs it sets.
pub fn read(path: &Path) -> Result<Vec<(&'static str, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("could not read the configuration file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("the configuration file {} {e}", path.display()))
}

fn parse(text: &str) -> Result<Vec<(&'static str, String)>, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("is not valid TOML: {e}"))?;
    let mut flat = Vec::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(section) => {
                for (inner, value) in section {
                    flat.push((format!("{key}.{inner}"), value));
                }
            }
            value => flat.push((key, value)),
        }
    }
    let mut settings = Vec::new();
    for (key, value) in flat {
        if SECRETS.contains(&key.as_str()) {
            return Err(format!(
                "holds `{key}`, a secret; keep secrets in the environment or a secret manager"
            ));
        }
        let Some((_, variable, _)) = KEYS.iter().find(|(name, _, _)| *name == key) else {
            let known: Vec<&str> = KEYS.iter().map(|(name, _, _)| *name).collect();
            return Err(format!("has an unknown key `{key}` (known: {})", known.join(", ")));
        };
        let value = match value {
            toml::Value::String(text) => text,
            toml::Value::Boolean(flag) => flag.to_string(),
            toml::Value::Integer(number) => number.to_string(),
            other => return Err(format!("sets `{key}` to a {}; use a string", other.type_str())),
        };
        settings.push((*variable, value));
    }
    Ok(settings)
}

/// The help text listing every key, for `--help`.
pub fn help() -> String {
    let mut text = format!(
        "Configuration file ({DEFAULT_FILE} here, or --config-file FILE / CRYPTO_ETL_CONFIG); each key is a default\nfor its variable; flags beat variables, variables beat the file:\n"
    );
    for (key, variable, meaning) in KEYS {
        text.push_str(&format!("  {key:<28} {variable:<28} {meaning}\n"));
    }
    text.push_str("  (secrets are refused in the file: SNOWFLAKE_PASSWORD, SNOWFLAKE_PRIVATE_KEY, COINGECKO_API_KEY)");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_variables_and_secrets_are_refused() {
        let mut settings = parse(
            "store = \"s3://b\"\ns3_path_style = true\n[snowflake]\naccount = \"org-acct\"\n",
        )
        .unwrap();
        settings.sort();
        assert_eq!(
            settings,
            vec![
                ("CRYPTO_ETL_S3_PATH_STYLE", "true".to_owned()),
                ("CRYPTO_ETL_STORE", "s3://b".to_owned()),
                ("SNOWFLAKE_ACCOUNT", "org-acct".to_owned()),
            ]
        );
        assert!(parse("[snowflake]\npassword = \"x\"\n").unwrap_err().contains("secret"));
        assert!(parse("stor = \"x\"\n").unwrap_err().contains("unknown key `stor`"));
    }

    #[test]
    fn the_flag_names_the_file() {
        let args: Vec<String> =
            ["crypto-etl", "run", "--config-file", "my.toml"].map(String::from).into();
        assert_eq!(locate(&args), Some(PathBuf::from("my.toml")));
        let args: Vec<String> = ["crypto-etl", "--config-file=other.toml"].map(String::from).into();
        assert_eq!(locate(&args), Some(PathBuf::from("other.toml")));
        // A plugin's --config is not the configuration file.
        let args: Vec<String> =
            ["crypto-etl", "plugin", "test", "--config", "k=v"].map(String::from).into();
        assert_eq!(locate(&args), None);
    }
}
