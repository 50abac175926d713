//! Real CoinGecko responses (shared/fixtures) through the default pipeline.

use std::collections::HashMap;
use std::path::Path;

use crypto_etl::pipeline::Pipeline;
use crypto_etl::plugin::{Limits, Runtime};
use crypto_etl::snapshot::FetchTime;
use crypto_etl::transform::{FileRequest, transform_file};
use crypto_etl_test_support::markets_fixtures;
use serde_json::Value;

use crate::common::{cache_dir, read_csv, read_quarantine};

/// The ids the default pipeline must keep, worked out independently of the host: identity and
/// size valid, and of duplicate ids the best-ranked.
fn expected_ids(raw: &[Value]) -> Vec<String> {
    let text = |c: &Value, k: &str| c[k].as_str().is_some_and(|s| !s.trim().is_empty());
    let number = |c: &Value, k: &str| c[k].as_f64().is_some_and(|v| v.is_finite() && v >= 0.0);
    let valid: Vec<&Value> = raw
        .iter()
        .filter(|c| ["id", "symbol", "name"].iter().all(|k| text(c, k)))
        .filter(|c| ["current_price", "market_cap", "total_volume"].iter().all(|k| number(c, k)))
        .collect();
    let mut best: HashMap<&str, i64> = HashMap::new();
    for c in &valid {
        let rank = c["market_cap_rank"].as_i64().unwrap_or(i64::MAX);
        let entry = best.entry(c["id"].as_str().unwrap()).or_insert(rank);
        *entry = (*entry).min(rank);
    }
    let mut seen = std::collections::HashSet::new();
    valid
        .iter()
        .filter(|c| {
            let id = c["id"].as_str().unwrap();
            c["market_cap_rank"].as_i64().unwrap_or(i64::MAX) == best[id] && seen.insert(id)
        })
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

fn sum(rows: &[HashMap<String, String>], column: &str) -> f64 {
    rows.iter()
        .map(|r| r[column].parse::<f64>().unwrap_or_else(|_| panic!("{column}: {:?}", r[column])))
        .sum()
}

#[test]
fn every_real_snapshot_keeps_every_valid_coin_and_shares_sum_to_100() {
    let runtime = Runtime::new(Limits::default(), Some(cache_dir())).unwrap();
    for fixture in markets_fixtures() {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        let raw: Vec<Value> = serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("processed.csv");
        let request = FileRequest {
            input: fixture.clone(),
            output: output.clone(),
            pipeline: Pipeline::default_pipeline(),
            fetch_time: FetchTime::parse("2026-11-27T10-00-00Z").unwrap(),
            currency: "usd".into(),
        };
        let report = transform_file(&runtime, &request).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (headers, rows) = read_csv(&output);

        let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str()).collect();
        let expected = expected_ids(&raw);
        assert_eq!(ids, expected, "{name}: kept coins");
        assert!(
            ids.contains(&"ethereum"),
            "{name}: Ethereum must be kept although its max_supply is null"
        );
        assert_eq!(report.rows_in, raw.len(), "{name}");
        assert_eq!(report.rows_out + report.rows_rejected, raw.len(), "{name}");
        assert_eq!(
            read_quarantine(&dir.path().join("processed.rejected.jsonl")).len(),
            report.rows_rejected
        );

        assert!((sum(&rows, "dominance_percentage") - 100.0).abs() < 1e-9, "{name}: dominance");
        assert!((sum(&rows, "volume_percentage") - 100.0).abs() < 1e-9, "{name}: volume");
        for dropped in ["image", "roi", "sparkline_in_7d"] {
            assert!(!headers.iter().any(|h| h == dropped), "{name}: {dropped} should be dropped");
        }
        let bitcoin = rows.iter().find(|r| r["id"] == "bitcoin").unwrap();
        assert_eq!(bitcoin["fetch_time"], "2026-11-27T10:00:00");
        let original = raw.iter().find(|c| c["id"] == "bitcoin").unwrap();
        assert_eq!(
            bitcoin["ath_date"],
            original["ath_date"].as_str().unwrap()[..19],
            "{name}: ath_date"
        );
        assert_eq!(
            bitcoin["market_cap"],
            original["market_cap"].to_string(),
            "{name}: exact market cap"
        );
    }
}

#[test]
fn a_large_mapped_snapshot_keeps_the_right_coins() {
    // Over 8 MiB of real coins, each copy of the fixtures with its own ids. A file this size
    // takes the large-snapshot path end to end: mapped, cut into chunks parsed in parallel, its
    // pages let go of as the chunks read them (ingest's and raw's unit tests check those steps).
    let coins: Vec<Value> = markets_fixtures()
        .iter()
        .flat_map(|f| serde_json::from_slice::<Vec<Value>>(&std::fs::read(f).unwrap()).unwrap())
        .collect();
    let copies = (9 << 20) / serde_json::to_vec(&coins).unwrap().len() + 1;
    let raw: Vec<Value> = (0..copies)
        .flat_map(|copy| {
            coins.iter().cloned().map(move |mut coin| {
                if let Some(id) = coin["id"].as_str() {
                    coin["id"] = Value::from(format!("{id}-{copy}"));
                }
                coin
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("large.json");
    std::fs::write(&input, serde_json::to_vec(&raw).unwrap()).unwrap();
    let output = dir.path().join("processed.csv");
    let runtime = Runtime::new(Limits::default(), Some(cache_dir())).unwrap();
    let request = FileRequest {
        input,
        output: output.clone(),
        pipeline: Pipeline::default_pipeline(),
        fetch_time: FetchTime::parse("2026-11-27T10-00-00Z").unwrap(),
        currency: "usd".into(),
    };
    let report = transform_file(&runtime, &request).unwrap();
    let (_, rows) = read_csv(&output);

    assert_eq!(report.rows_in, raw.len());
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, expected_ids(&raw));
    assert!((sum(&rows, "dominance_percentage") - 100.0).abs() < 1e-6);
}

#[test]
fn the_original_rules_would_have_lost_many_of_these_coins() {
    // What the fix is about: on the 2022 snapshot, dropna() over all columns drops coins such as
    // Ethereum; the default pipeline keeps all 250.
    let fixture = crypto_etl_test_support::coingecko_fixture("markets-2022-10-16-250.json");
    let raw: Vec<Value> = serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    let without_nulls = raw
        .iter()
        .filter(|c| {
            c.as_object().unwrap().iter().all(|(k, v)| k == "image" || k == "roi" || !v.is_null())
        })
        .count();
    assert!(without_nulls < 200, "{without_nulls}");
    assert_eq!(expected_ids(&raw).len(), 250);
}

#[test]
fn integers_above_two_to_the_53_are_reported_not_silently_rounded() {
    let fixture = crypto_etl_test_support::coingecko_fixture("markets-2022-10-16-250.json");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let (_, code, stdout, stderr) = crate::common::run(&[
        "transform",
        "--input",
        fixture.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--fetch-time",
        "2022-10-16T09-30-00Z",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("warning  `circulating_supply`: 1 integer(s) above 2^53"), "{stdout}");
    assert!(Path::new(&out).exists());
}
