//! The local pipeline into the embedded DuckDB warehouse: `run` end to end, re-runs that never
//! duplicate, schema evolution, and loads refused as a whole.

use std::path::Path;

use crypto_etl_test_support::{plugins, sample};
use duckdb::Connection;

use crate::common::{crypto_etl, sha256_hex};

const T1: &str = "2026-11-27T10-00-00Z";
const T2: &str = "2026-11-27T11-00-00Z";

fn run(dir: &Path, fetch_time: &str, extra: &[&str]) -> (i32, String, String) {
    let store = dir.join("store");
    let warehouse = format!("duckdb:{}", dir.join("crypto.duckdb").display());
    let output = crypto_etl()
        .args(["run", "--source", sample("coins-markets.json").to_str().unwrap()])
        .args([
            "--store",
            store.to_str().unwrap(),
            "--warehouse",
            &warehouse,
            "--fetch-time",
            fetch_time,
        ])
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn query<T: duckdb::types::FromSql>(dir: &Path, sql: &str) -> Vec<T> {
    let connection = Connection::open(dir.join("crypto.duckdb")).unwrap();
    let mut statement = connection.prepare(sql).unwrap();
    statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
}

fn count(dir: &Path, sql: &str) -> i64 {
    query::<i64>(dir, sql)[0]
}

#[test]
fn running_the_same_snapshot_twice_leaves_one_copy() {
    let dir = tempfile::tempdir().unwrap();
    for attempt in 0..2 {
        let (code, stdout, stderr) = run(dir.path(), T1, &[]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("transform  5 kept, 2 rejected"), "{stdout}");
        if attempt == 1 {
            assert!(stdout.contains("replacing the 5 rows of an earlier load"), "{stdout}");
        }
    }
    let d = dir.path();
    assert_eq!(count(d, "SELECT count(*) FROM CRYPTO_DATA"), 5);
    assert_eq!(count(d, "SELECT count(DISTINCT id) FROM CRYPTO_DATA"), 5);
    assert_eq!(
        query::<String>(d, "SELECT DISTINCT snapshot_id FROM CRYPTO_DATA"),
        vec![format!("usd:{T1}")]
    );
    let shares = query::<f64>(
        d,
        "SELECT sum(dominance_percentage) + sum(volume_percentage) FROM CRYPTO_DATA",
    )[0];
    assert!((shares - 200.0).abs() < 1e-9, "{shares}");
    // Ethereum is there (the original pipeline dropped it), with its null max_supply.
    assert_eq!(
        count(d, "SELECT count(*) FROM CRYPTO_DATA WHERE id = 'ethereum' AND max_supply IS NULL"),
        1
    );
    assert_eq!(
        query::<String>(
            d,
            "SELECT strftime(ath_date, '%Y-%m-%dT%H:%M:%S') FROM CRYPTO_DATA WHERE id = 'bitcoin'"
        ),
        vec!["2026-10-06T18:57:42".to_owned()]
    );
    // Both loads are in the history, with the plugins that shaped them.
    assert_eq!(count(d, "SELECT count(*) FROM CRYPTO_DATA_LOAD_HISTORY"), 2);
    let plugins =
        query::<String>(d, "SELECT plugins FROM CRYPTO_DATA_LOAD_HISTORY LIMIT 1")[0].clone();
    assert!(
        plugins.contains("\"name\":\"clean\"") && plugins.contains("\"name\":\"market-share\""),
        "{plugins}"
    );
}

#[test]
fn a_second_snapshot_adds_rows_and_becomes_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    for t in [T1, T2] {
        let (code, _, stderr) = run(dir.path(), t, &[]);
        assert_eq!(code, 0, "{stderr}");
    }
    let d = dir.path();
    assert_eq!(count(d, "SELECT count(*) FROM CRYPTO_DATA"), 10);
    assert_eq!(count(d, "SELECT count(DISTINCT snapshot_id) FROM CRYPTO_DATA"), 2);
    assert_eq!(count(d, "SELECT count(*) FROM CRYPTO_DATA_LATEST"), 5);
    assert_eq!(
        query::<String>(d, "SELECT DISTINCT snapshot_id FROM CRYPTO_DATA_LATEST"),
        vec![format!("usd:{T2}")]
    );
}

#[test]
fn a_plugin_that_adds_a_column_between_loads_adds_it_to_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(dir.path(), T1, &[]);
    assert_eq!(code, 0, "{stderr}");

    let wasm = std::fs::read(plugins::PRICE_RANGE).unwrap();
    std::fs::write(dir.path().join("price_range.wasm"), &wasm).unwrap();
    let manifest = dir.path().join("pipeline.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[plugin]]\nbuiltin = \"clean\"\n[[plugin]]\nbuiltin = \"market-share\"\n\
             [[plugin]]\npath = \"price_range.wasm\"\nsha256 = \"{}\"\n",
            sha256_hex(&wasm)
        ),
    )
    .unwrap();
    let (code, stdout, stderr) =
        run(dir.path(), T2, &["--pipeline", manifest.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let events: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(events["load"]["columns_added"], serde_json::json!(["price_range_24h_percentage"]));

    let d = dir.path();
    let by_snapshot = |t: &str| {
        count(
            d,
            &format!(
                "SELECT count(price_range_24h_percentage) FROM CRYPTO_DATA WHERE snapshot_id = 'usd:{t}'"
            ),
        )
    };
    assert_eq!(by_snapshot(T1), 0, "old rows read the new column as null");
    assert_eq!(
        by_snapshot(T2),
        4,
        "every new row with a 24h range has a value (the stale coin has none)"
    );
}

/// Writes a processed CSV and schema into a local store by hand, and loads them.
fn load_by_hand(dir: &Path, csv: &str, schema: serde_json::Value) -> (i32, String) {
    let store = dir.join("store");
    let folder = store.join("processed/dt=2026-11-27");
    std::fs::create_dir_all(&folder).unwrap();
    let name = format!("processed_crypto_data_{T1}");
    std::fs::write(folder.join(format!("{name}.csv")), csv).unwrap();
    std::fs::write(folder.join(format!("{name}.schema.json")), schema.to_string()).unwrap();
    let event = serde_json::json!({
        "bucket_name": store.to_str().unwrap(),
        "file_name": format!("processed/dt=2026-11-27/{name}.csv"),
    });
    let output = crypto_etl()
        .args(["load", "--event", &event.to_string(), "--store", store.to_str().unwrap()])
        .args(["--warehouse", &format!("duckdb:{}", dir.join("crypto.duckdb").display())])
        .output()
        .unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn schema(columns: serde_json::Value, rows: usize) -> serde_json::Value {
    serde_json::json!({
        "format": 1, "snapshot_id": format!("usd:{T1}"), "fetch_time": T1, "currency": "usd",
        "pipeline": "default", "rows": rows, "rejected": 0, "columns": columns, "plugins": [],
    })
}

#[test]
fn hostile_or_broken_files_are_refused_and_nothing_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(dir.path(), T2, &[]);
    assert_eq!(code, 0, "{stderr}");
    let before = count(dir.path(), "SELECT count(*) FROM CRYPTO_DATA");

    let evil = serde_json::json!([{"name": "x\"; DROP TABLE CRYPTO_DATA; --", "type": "float64", "description": ""}]);
    let (code, stderr) = load_by_hand(dir.path(), "x\n1\n", schema(evil, 1));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("is not a valid column name"), "{stderr}");

    let conflict = serde_json::json!([
        {"name": "id", "type": "text", "description": ""},
        {"name": "market_cap", "type": "text", "description": ""}
    ]);
    let (code, stderr) =
        load_by_hand(dir.path(), "id,market_cap\nbitcoin,big\n", schema(conflict, 1));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(
            "column `market_cap` is VARCHAR in this file but BIGINT in table CRYPTO_DATA"
        ),
        "{stderr}"
    );

    // One bad value: the whole file is refused, not the row dropped (no ON_ERROR = CONTINUE).
    let columns = serde_json::json!([
        {"name": "id", "type": "text", "description": ""},
        {"name": "current_price", "type": "float64", "description": ""}
    ]);
    let (code, stderr) =
        load_by_hand(dir.path(), "id,current_price\na,1.5\nb,not-a-number\n", schema(columns, 2));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("the warehouse refused"), "{stderr}");

    assert_eq!(count(dir.path(), "SELECT count(*) FROM CRYPTO_DATA"), before);
    assert_eq!(
        count(
            dir.path(),
            &format!("SELECT count(*) FROM CRYPTO_DATA WHERE snapshot_id = 'usd:{T1}'")
        ),
        0
    );
}

#[test]
fn a_failed_transform_keeps_the_raw_snapshot_and_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("raw.json");
    std::fs::write(&bad, br#"[{"name": "a coin with no id"}]"#).unwrap();
    let store = dir.path().join("store");
    let output = crypto_etl()
        .args(["run", "--source", bad.to_str().unwrap(), "--fetch-time", T1])
        .args(["--store", store.to_str().unwrap()])
        .args(["--warehouse", &format!("duckdb:{}", dir.path().join("crypto.duckdb").display())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("the snapshot has no `id` column"), "{stderr}");
    let raw = store.join(format!("raw/dt=2026-11-27/raw_crypto_data_{T1}.json"));
    assert_eq!(
        std::fs::read(raw).unwrap(),
        std::fs::read(&bad).unwrap(),
        "the raw snapshot must stay"
    );
    assert!(!store.join("processed").exists(), "nothing processed may be written");
    assert!(!dir.path().join("crypto.duckdb").exists());
}
