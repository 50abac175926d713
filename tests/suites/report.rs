//! `crypto-etl report`: the page rendered in headless Chromium (Debian's, driven by
//! tests/node/check-report.mjs) loads with no errors and no network, and its charts and totals
//! show the warehouse's numbers. The screenshot is kept in target/test-artifacts/.

use std::path::{Path, PathBuf};
use std::process::Command;

use crypto_etl_test_support::{sample, workspace};
use duckdb::Connection;
use serde_json::Value;

use crate::common::crypto_etl;

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("..").join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_report_shows_the_warehouse_numbers_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crypto.duckdb");
    let warehouse = format!("duckdb:{}", db.display());
    for time in ["2026-11-26T10-00-00Z", "2026-11-27T10-00-00Z"] {
        let output = crypto_etl()
            .args(["run", "--source", sample("coins-markets.json").to_str().unwrap()])
            .args([
                "--store",
                dir.path().join("store").to_str().unwrap(),
                "--warehouse",
                &warehouse,
            ])
            .args(["--fetch-time", time])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let page = dir.path().join("report.html");
    let output = crypto_etl()
        .args(["report", "--warehouse", &warehouse, "--out", page.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("/*REPORT_DATA*/"), "the data is in the page");

    let screenshot = artifacts().join("report.png");
    let output = Command::new("node")
        .arg(workspace().join("tests/node/check-report.mjs"))
        .arg(&page)
        .arg(&screenshot)
        .output()
        .expect("node runs (scripts/test installs tests/node)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["render_state"], "ready", "{seen}");
    assert_eq!(seen["console_errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["network_requests"], serde_json::json!([]), "the page is self-contained");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "a real screenshot");

    // The numbers on the page are the warehouse's.
    let connection = Connection::open(&db).unwrap();
    let latest = "snapshot_id = 'usd:2026-11-27T10-00-00Z'";
    let total: f64 = connection
        .query_row(
            &format!("SELECT sum(market_cap)::DOUBLE FROM CRYPTO_DATA WHERE {latest}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    let kpi = &seen["kpis"]["total_market_cap"];
    assert!((kpi["value"].as_f64().unwrap() - total).abs() < 1.0, "{kpi} vs {total}");
    assert!(kpi["text"].as_str().unwrap().starts_with('$'), "{kpi}");
    assert_eq!(seen["kpis"]["coins"]["value"].as_f64(), Some(5.0), "{}", seen["kpis"]);
    assert_eq!(seen["kpis"]["snapshots"]["value"].as_f64(), Some(2.0), "{}", seen["kpis"]);

    let mut statement = connection
        .prepare(&format!(
            "SELECT name, dominance_percentage FROM CRYPTO_DATA WHERE {latest} ORDER BY dominance_percentage DESC"
        ))
        .unwrap();
    let expected: Vec<(String, f64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let shown: Vec<(String, f64, String)> = seen["charts"]["dominance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["label"].as_str().unwrap().to_owned(),
                s["value"].as_f64().unwrap(),
                s["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(shown.len(), expected.len(), "{shown:?}");
    for ((name, value), (label, shown_value, text)) in expected.iter().zip(&shown) {
        assert_eq!(name, label);
        assert!((value - shown_value).abs() < 1e-9, "{name}: {value} vs {shown_value}");
        if *value >= 1.0 {
            assert!(text.contains(&format!("{value:.1}%")), "{text} should show {value:.1}%");
        }
    }
    // Trends across the two snapshots are drawn.
    assert_eq!(seen["charts"]["history-market-cap"].as_array().map(Vec::len), Some(2), "{seen}");
}
