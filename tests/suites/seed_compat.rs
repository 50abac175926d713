//! `seed-compat` reproduces the original Python transform: same rows, same values, checked
//! against a pandas run of the original steps (tests/reference/original_transform.py).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crypto_etl_test_support::{markets_fixtures, python, workspace};
use serde_json::Value;

use crate::common::{read_csv, run};

const FETCH_TIME: &str = "2026-11-27T10-00-00Z";

fn pandas_reference(input: &Path, output: &Path) {
    let script = workspace().join("tests/reference/original_transform.py");
    let result = Command::new(python())
        .arg(&script)
        .args([input.as_os_str(), output.as_os_str()])
        .arg(FETCH_TIME)
        .output()
        .unwrap_or_else(|e| {
            panic!("could not start {} (set CRYPTO_ETL_PYTHON or run scripts/test): {e}", python())
        });
    assert!(
        result.status.success(),
        "the pandas reference failed (scripts/test installs tests/reference/requirements.txt):\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

fn numbers_match(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

fn json_match(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            numbers_match(x.as_f64().unwrap(), y.as_f64().unwrap())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_match(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_match(v, w)))
        }
        _ => a == b,
    }
}

fn cells_match(ours: &str, theirs: &str) -> bool {
    if let (Ok(a), Ok(b)) = (ours.parse::<f64>(), theirs.parse::<f64>()) {
        return numbers_match(a, b);
    }
    if ours.starts_with(['{', '['])
        && let (Ok(a), Ok(b)) =
            (serde_json::from_str::<Value>(ours), serde_json::from_str::<Value>(theirs))
    {
        return json_match(&a, &b);
    }
    ours == theirs
}

fn compare(
    name: &str,
    ours: (Vec<String>, Vec<HashMap<String, String>>),
    theirs: (Vec<String>, Vec<HashMap<String, String>>),
) {
    assert_eq!(ours.0, theirs.0, "{name}: columns");
    let ids =
        |rows: &[HashMap<String, String>]| rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&ours.1), ids(&theirs.1), "{name}: rows kept");
    for (row, (a, b)) in ours.1.iter().zip(&theirs.1).enumerate() {
        for column in &ours.0 {
            assert!(
                cells_match(&a[column], &b[column]),
                "{name}: row {row} ({}) column {column}: ours {:?}, pandas {:?}",
                a["id"],
                a[column],
                b[column]
            );
        }
    }
}

#[test]
fn seed_compat_matches_the_original_pandas_transform() {
    for fixture in markets_fixtures() {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.csv");
        let theirs = dir.path().join("pandas.csv");
        let (_, code, _, stderr) = run(&[
            "transform",
            "--input",
            fixture.to_str().unwrap(),
            "--output",
            ours.to_str().unwrap(),
            "--pipeline",
            "seed-compat",
            "--fetch-time",
            FETCH_TIME,
        ]);
        assert_eq!(code, 0, "{name}: {stderr}");
        pandas_reference(&fixture, &theirs);
        let (ours, theirs) = (read_csv(&ours), read_csv(&theirs));
        assert!(!ours.1.is_empty(), "{name}: seed-compat kept nothing");
        compare(&name, ours, theirs);
    }
}

#[test]
fn seed_compat_loses_what_the_original_lost_and_the_default_keeps_it() {
    let fixture = crypto_etl_test_support::coingecko_fixture("markets-2023-05-13-250.json");
    let dir = tempfile::tempdir().unwrap();
    for pipeline in ["seed-compat", "default"] {
        let out = dir.path().join(format!("{pipeline}.csv"));
        let (_, code, _, stderr) = run(&[
            "transform",
            "--input",
            fixture.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--pipeline",
            pipeline,
            "--fetch-time",
            FETCH_TIME,
        ]);
        assert_eq!(code, 0, "{stderr}");
        let (_, rows) = read_csv(&out);
        let has_ethereum = rows.iter().any(|r| r["id"] == "ethereum");
        assert_eq!(has_ethereum, pipeline == "default", "{pipeline}: Ethereum kept?");
    }
    let quarantine = crate::common::read_quarantine(&dir.path().join("seed-compat.rejected.jsonl"));
    let ethereum = quarantine.iter().find(|q| q["values"]["id"] == "ethereum").unwrap();
    assert!(ethereum["reason"].as_str().unwrap().contains("null in: max_supply"), "{ethereum}");
}
