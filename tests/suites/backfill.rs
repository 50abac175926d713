//! `crypto-etl backfill`: stored snapshots reprocessed with the current chain, each loaded once,
//! a corrupt one reported while the rest are done.

use std::path::Path;

use crypto_etl_test_support::{plugins, sample};
use duckdb::Connection;

use crate::common::{crypto_etl, sha256_hex};

const TIMES: [&str; 3] = ["2026-11-25T10-00-00Z", "2026-11-26T10-00-00Z", "2026-11-27T10-00-00Z"];

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db).unwrap().query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn backfill_reprocesses_every_snapshot_once_and_reports_the_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let db = dir.path().join("crypto.duckdb");
    let warehouse = format!("duckdb:{}", db.display());
    for time in TIMES {
        let output = crypto_etl()
            .args(["run", "--source", sample("coins-markets.json").to_str().unwrap()])
            .args(["--store", store.to_str().unwrap(), "--warehouse", &warehouse])
            .args(["--fetch-time", time])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    // One raw object is damaged (a truncated upload).
    let corrupt = store.join("raw/dt=2026-11-26/raw_crypto_data_2026-11-26T10-00-00Z.json");
    std::fs::write(&corrupt, b"[{\"id\": \"bitcoin\", \"symbol\": ").unwrap();

    // The analyst's new field, in a pipeline manifest.
    let wasm = std::fs::read(plugins::PRICE_RANGE).unwrap();
    std::fs::write(dir.path().join("price-range.wasm"), &wasm).unwrap();
    let manifest = dir.path().join("pipeline.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[plugin]]\nbuiltin = \"clean\"\n[[plugin]]\nbuiltin = \"market-share\"\n\
             [[plugin]]\npath = \"price-range.wasm\"\nsha256 = \"{}\"\n",
            sha256_hex(&wasm)
        ),
    )
    .unwrap();

    let output = crypto_etl()
        .args(["backfill", "--store", store.to_str().unwrap(), "--warehouse", &warehouse])
        .args(["--pipeline", manifest.to_str().unwrap(), "--jobs", "2", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((summary["snapshots"].as_u64(), summary["succeeded"].as_u64()), (Some(3), Some(2)));
    let outcomes = summary["outcomes"].as_array().unwrap();
    let failed: Vec<&serde_json::Value> =
        outcomes.iter().filter(|o| o["succeeded"] == false).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["fetch_time"], TIMES[1]);
    assert!(failed[0]["error"].as_str().unwrap().contains("JSON"), "{}", failed[0]);

    // Every snapshot once; the reprocessed ones gained the new field, the failed one kept its rows.
    assert_eq!(count(&db, "SELECT count(*) FROM CRYPTO_DATA"), 15);
    assert_eq!(count(&db, "SELECT count(DISTINCT snapshot_id) FROM CRYPTO_DATA"), 3);
    let computable = "high_24h IS NOT NULL AND low_24h IS NOT NULL AND current_price <> 0";
    let reprocessed = "snapshot_id <> 'usd:2026-11-26T10-00-00Z'";
    let filled = count(
        &db,
        &format!(
            "SELECT count(*) FROM CRYPTO_DATA WHERE {reprocessed} AND price_range_24h_percentage IS NOT NULL"
        ),
    );
    assert!(filled > 0);
    assert_eq!(
        filled,
        count(
            &db,
            &format!("SELECT count(*) FROM CRYPTO_DATA WHERE {reprocessed} AND {computable}")
        )
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM CRYPTO_DATA WHERE snapshot_id = 'usd:2026-11-26T10-00-00Z' AND price_range_24h_percentage IS NULL"
        ),
        5
    );
    // The raw object is left as it was, and the summary is stored.
    assert_eq!(std::fs::read(&corrupt).unwrap(), b"[{\"id\": \"bitcoin\", \"symbol\": ");
    let summaries: Vec<_> = std::fs::read_dir(store.join("backfill")).unwrap().collect();
    assert_eq!(summaries.len(), 1);

    // A date range picks only its snapshots.
    let output = crypto_etl()
        .args(["backfill", "--store", store.to_str().unwrap(), "--warehouse", &warehouse])
        .args(["--from", "2026-11-27", "--to", "2026-11-27", "--pipeline", "default", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["snapshots"], 1);
    assert_eq!(count(&db, "SELECT count(*) FROM CRYPTO_DATA"), 15);
}
