//! Inputs that are not clean snapshots: refused with a message that says what and where, or,
//! for bad rows, kept in quarantine with a reason while the rest goes through.

use std::path::Path;

use crypto_etl_test_support::coingecko_fixture;

use crate::common::{entries, read_csv, read_quarantine, run};

fn transform(input: &Path, out_dir: &Path) -> (i32, String, String) {
    let output = out_dir.join("processed.csv");
    let (_, code, stdout, stderr) = run(&[
        "transform",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--fetch-time",
        "2026-11-27T10-00-00Z",
    ]);
    (code, stdout, stderr)
}

fn refused(content: &[u8], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("raw.json");
    std::fs::write(&input, content).unwrap();
    let out = dir.path().join("out");
    let (code, _, stderr) = transform(&input, &out);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains(expected), "expected {expected:?} in {stderr}");
    assert!(
        stderr.contains("hint: nothing was written and the raw snapshot is untouched"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&input).unwrap(), content, "the raw input changed");
    assert_eq!(entries(&out), Vec::<String>::new());
}

#[test]
fn unusable_inputs_are_refused_with_what_and_where() {
    refused(
        b"[{\"id\": \"bitcoin\",\n \"current_price\": 1,,}]",
        "malformed JSON at line 2, column",
    );
    refused(b"[]", "the raw snapshot holds no coins (an empty array)");
    refused(b"[{\"id\": \"a\"}]\n\xff\xfe", "not UTF-8 text: invalid byte at offset 14 (line 2)");
    refused(b"{\"data\": []}", "expected a JSON array of coins, found an object with keys data");
    let rate_limited =
        std::fs::read(coingecko_fixture("error-429-rate-limit-2022-09-29.json")).unwrap();
    refused(
        &rate_limited,
        "CoinGecko returned an error instead of coins: You've exceeded the Rate Limit.",
    );
    refused(&rate_limited, "(error code 429)");
}

#[test]
fn bad_rows_go_to_quarantine_with_reasons_and_the_rest_is_kept() {
    let coin = |id: &str, price: &str, cap: &str, rank: u32| {
        format!(
            r#"{{"id": "{id}", "symbol": "x", "name": "X {id}", "current_price": {price},
               "market_cap": {cap}, "market_cap_rank": {rank}, "total_volume": 10}}"#
        )
    };
    let raw = format!(
        "[{}, {}, {}, {}, {}]",
        coin("good", "1.5", "1000", 1),
        coin("wrong-type", "\"1.5\"", "1000", 2),
        coin("dup", "2.0", "500", 9),
        coin("dup", "2.0", "600", 3),
        coin("no-cap", "2.0", "null", 4),
    );
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("raw.json");
    std::fs::write(&input, raw).unwrap();
    let (code, stdout, stderr) = transform(&input, dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("kept           2"), "{stdout}");

    let (_, rows) = read_csv(&dir.path().join("processed.csv"));
    let kept: Vec<(&str, &str)> =
        rows.iter().map(|r| (r["id"].as_str(), r["market_cap"].as_str())).collect();
    assert_eq!(kept, vec![("good", "1000"), ("dup", "600")]);

    let quarantine = read_quarantine(&dir.path().join("processed.rejected.jsonl"));
    let reasons: Vec<(u64, &str, &str)> = quarantine
        .iter()
        .map(|q| {
            (
                q["source_row"].as_u64().unwrap(),
                q["stage"].as_str().unwrap(),
                q["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (1, "ingest", "`current_price`: expected a number, found the string \"1.5\""),
            (2, "clean@0.1.1", "duplicate id `dup`: the row with market_cap_rank 3 is kept"),
            (4, "clean@0.1.1", "`market_cap` is null"),
        ]
    );
    assert_eq!(quarantine[1]["values"]["market_cap"], 500);
}

#[test]
fn a_broken_manifest_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pipeline.toml");
    std::fs::write(&manifest, "[[plugin]]\nbuiltin = \"clean\"\nsha265 = \"typo\"\n").unwrap();
    let (_, code, _, stderr) = run(&[
        "transform",
        "--input",
        crypto_etl_test_support::sample("coins-markets.json").to_str().unwrap(),
        "--output",
        dir.path().join("out.csv").to_str().unwrap(),
        "--pipeline",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("unknown field `sha265`"), "{stderr}");
    assert!(!dir.path().join("out.csv").exists());
}
