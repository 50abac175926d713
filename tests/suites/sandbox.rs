//! Hostile plugins: each is stopped with an error naming it, its version and what it did, the
//! host survives, and no output (not even a temporary file) is left behind.

use std::path::Path;

use crypto_etl::batch::{Batch, ColumnData};
use crypto_etl::pipeline::{Chain, Pipeline, Stage};
use crypto_etl::plugin::{Limits, Runtime, SnapshotContext, TransformPlugin};
use crypto_etl::snapshot::FetchTime;
use crypto_etl_test_support::{plugins, sample};

use crate::common::{cache_dir, entries, manifest_after_clean, read_csv, run, sha256_hex};

/// Runs `transform` over the sample with `manifest`; returns exit code and stderr, and checks
/// that the output folder holds nothing new.
fn transform_with(dir: &Path, manifest: &Path) -> (i32, String) {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let input = sample("coins-markets.json");
    let (_, code, _, stderr) = run(&[
        "transform",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.join("processed.csv").to_str().unwrap(),
        "--pipeline",
        manifest.to_str().unwrap(),
        "--fetch-time",
        "2026-11-27T10-00-00Z",
        "--plugin-deadline-ms",
        "500",
        "--plugin-memory-mib",
        "64",
    ]);
    if code != 0 {
        assert_eq!(entries(&out), Vec::<String>::new(), "a failed run left files behind");
    }
    (code, stderr)
}

fn misbehaving(behaviour: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        manifest_after_clean(dir.path(), plugins::MISBEHAVE, &format!("do = \"{behaviour}\""));
    transform_with(dir.path(), &manifest)
}

#[test]
fn every_kind_of_misbehaviour_is_stopped_and_named() {
    let cases = [
        ("panic", "crashed (trap: "),
        ("panic", "deliberate panic in transform"),
        ("plan-panic", "deliberate panic while planning"),
        ("spin", "ran past its deadline of 500 ms and was stopped"),
        ("memory", "tried to use more than 64 MiB of memory and was stopped"),
        ("read-past-end", "out of bounds memory access"),
        ("short-column", "returned invalid output: column `x`: has 4 values for 5 rows"),
        ("undeclared-column", "returned invalid output: column `y` is not in its plan's writes"),
        (
            "wrong-type",
            "returned invalid output: column `x` is text, but the plan declares float64",
        ),
        ("reject-undeclared", "rejected 1 rows, but its plan says it drops none"),
        ("nan", "write null instead of NaN or infinity"),
        ("guest-error", "refused the input: no coins I like in this snapshot"),
        ("bad-name", "has an invalid plan: writes column \"x\\\"; DROP TABLE crypto_data; --\""),
        ("overwrite", "writes `id`, which already exists; declare it as a replacement"),
        ("read-missing", "reads `no_such_column`, which the batch does not have"),
        ("dance", "refused its configuration: `do` = \"dance\" is not one of"),
    ];
    for (behaviour, expected) in cases {
        let (code, stderr) = misbehaving(behaviour);
        assert_eq!(code, 4, "{behaviour}: exit code; stderr: {stderr}");
        assert!(
            stderr.contains("plugin `misbehave` 0.1.0"),
            "{behaviour}: plugin not named: {stderr}"
        );
        assert!(stderr.contains(expected), "{behaviour}: expected {expected:?} in: {stderr}");
        assert!(stderr.contains("nothing was written"), "{behaviour}: {stderr}");
    }
}

#[test]
fn the_sandbox_grants_no_files_environment_network_or_clock() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_after_clean(dir.path(), plugins::MISBEHAVE, "do = \"snoop\"");
    let (code, stderr) = transform_with(dir.path(), &manifest);
    assert_eq!(code, 0, "{stderr}");
    let (_, rows) = read_csv(&dir.path().join("out/processed.csv"));
    let observed = &rows[0]["observed"];
    // It declared one read, so it got one column, not the whole batch.
    assert!(observed.starts_with("columns=id fs=denied"), "{observed}");
    assert!(observed.contains(" env=0 "), "{observed}");
    assert!(observed.contains(" net=denied"), "{observed}");
    assert!(observed.ends_with(" clock=frozen"), "{observed}");
}

#[test]
fn a_plugin_finds_nothing_an_earlier_plugin_left_in_memory() {
    // One runtime reuses a finished instance's memory for the next: every byte must be cleared.
    let runtime = Runtime::new(Limits::default(), Some(cache_dir())).unwrap();
    let (batch, context) = sample_batch();
    let rows: Vec<usize> = (0..batch.rows()).collect();
    let wasm = std::fs::read(plugins::MISBEHAVE).unwrap();
    let run = |behaviour: &str| {
        let plugin = runtime.load(&wasm, "misbehave.wasm").unwrap();
        let stage =
            Stage { plugin: Box::new(plugin), config: vec![("do".into(), behaviour.into())] };
        let chain = Chain::plan(vec![stage], &batch.schema()).unwrap();
        chain.run(batch.clone(), rows.clone(), &context).unwrap().batch
    };
    let scribbled = run("scribble");
    assert!(scribbled.column("x").is_some());
    let scavenged = run("scavenge");
    let Some(ColumnData::Float64 { values, .. }) = scavenged.column("leftover").map(|c| &c.data)
    else {
        panic!("no `leftover` column: {scavenged:?}");
    };
    assert_eq!(values[0], 0.0, "the second plugin found the first one's marker words");
}

#[test]
fn components_that_are_not_plugins_of_this_interface_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_after_clean(dir.path(), plugins::NOT_A_PLUGIN, "");
    let (code, stderr) = transform_with(dir.path(), &manifest);
    assert_eq!(code, 4);
    assert!(
        stderr.contains(
            "is not a crypto-etl plugin: it does not export `crypto-etl:plugin/transformer`"
        ),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_after_clean(dir.path(), plugins::FUTURE_INTERFACE, "");
    let (code, stderr) = transform_with(dir.path(), &manifest);
    assert_eq!(code, 4);
    assert!(
        stderr
            .contains("implements crypto-etl plugin interface 0.2.0, but this host accepts 0.1.0"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let junk = b"this is not WebAssembly";
    std::fs::write(dir.path().join("junk.wasm"), junk).unwrap();
    let manifest = dir.path().join("pipeline.toml");
    let text = format!("[[plugin]]\npath = \"junk.wasm\"\nsha256 = \"{}\"\n", sha256_hex(junk));
    std::fs::write(&manifest, text).unwrap();
    let (code, stderr) = transform_with(dir.path(), &manifest);
    assert_eq!(code, 4);
    assert!(stderr.contains("junk.wasm is not a WebAssembly component"), "{stderr}");
}

#[test]
fn a_plugin_whose_bytes_do_not_match_the_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_after_clean(dir.path(), plugins::PRICE_RANGE, "");
    // Tamper with the plugin after the manifest vouched for it.
    let plugin = dir.path().join("plugins/price_range.wasm");
    let mut bytes = std::fs::read(&plugin).unwrap();
    bytes.extend_from_slice(b"\0tampered");
    std::fs::write(&plugin, &bytes).unwrap();
    let (code, stderr) = transform_with(dir.path(), &manifest);
    assert_eq!(code, 4);
    assert!(
        stderr.contains(&format!("has sha256 {}, but the manifest expects", sha256_hex(&bytes))),
        "{stderr}"
    );
}

#[test]
fn the_example_plugin_adds_its_column_after_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_after_clean(dir.path(), plugins::PRICE_RANGE, "");
    let (code, stderr) = transform_with(dir.path(), &manifest);
    assert_eq!(code, 0, "{stderr}");
    let (headers, rows) = read_csv(&dir.path().join("out/processed.csv"));
    assert_eq!(headers.last().map(String::as_str), Some("price_range_24h_percentage"));
    let bitcoin = rows.iter().find(|r| r["id"] == "bitcoin").unwrap();
    let expected = (92010.0 - 89875.25) / 91234.5 * 100.0;
    let got: f64 = bitcoin["price_range_24h_percentage"].parse().unwrap();
    assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
    // The stale coin has no 24h range: null, not zero.
    let stale = rows.iter().find(|r| r["id"] == "stale-coin").unwrap();
    assert_eq!(stale["price_range_24h_percentage"], "");
}

/// The sample snapshot as a batch, and a context for it.
fn sample_batch() -> (Batch, SnapshotContext) {
    let raw = std::fs::read(sample("coins-markets.json")).unwrap();
    let batch = crypto_etl::ingest::ingest(&raw).unwrap().batch;
    let context = SnapshotContext {
        fetch_time: FetchTime::parse("2026-11-27T10-00-00Z").unwrap().micros(),
        currency: "usd".into(),
        market_total_cap: None,
        market_total_volume: None,
    };
    (batch, context)
}

#[test]
fn the_host_keeps_working_after_a_plugin_is_stopped() {
    let runtime = Runtime::new(
        Limits { deadline: std::time::Duration::from_millis(200), ..Limits::default() },
        Some(cache_dir()),
    )
    .unwrap();
    let (batch, context) = sample_batch();
    let wasm = std::fs::read(plugins::MISBEHAVE).unwrap();
    let spinner = runtime.load(&wasm, "misbehave.wasm").unwrap();
    assert_eq!(spinner.info().name, "misbehave");
    let stage = Stage { plugin: Box::new(spinner), config: vec![("do".into(), "spin".into())] };
    let chain = Chain::plan(vec![stage], &batch.schema()).unwrap();
    let rows: Vec<usize> = (0..batch.rows()).collect();
    let err = chain.run(batch.clone(), rows.clone(), &context).unwrap_err();
    assert!(err.to_string().contains("ran past its deadline of 200 ms"), "{err}");

    // Same runtime, same engine: the default pipeline still runs, twice (fresh store per call).
    for _ in 0..2 {
        let stages = Pipeline::default_pipeline().load(&runtime).unwrap();
        let chain = Chain::plan(stages, &batch.schema()).unwrap();
        let run = chain.run(batch.clone(), rows.clone(), &context).unwrap();
        assert_eq!(run.batch.rows(), 5);
    }
}

/// What runs alongside the plugins sees every row of exactly the columns no plugin touches,
/// and the chain's result, rejected rows and their values included, is the one it gives alone.
#[test]
fn running_beside_the_chain_changes_nothing_it_returns() {
    let runtime = Runtime::new(Limits::default(), Some(cache_dir())).unwrap();
    let (batch, context) = sample_batch();
    let rows: Vec<usize> = (0..batch.rows()).map(|r| r + 100).collect();
    for pipeline in ["default", "seed-compat"] {
        let pipeline = Pipeline::resolve(pipeline).unwrap();
        let chain = Chain::plan(pipeline.load(&runtime).unwrap(), &batch.schema()).unwrap();
        let alone = chain.run(batch.clone(), rows.clone(), &context).unwrap();
        let (beside, seen) = chain
            .run_alongside(batch.clone(), rows.clone(), &context, |untouched, _| {
                let names: Vec<String> =
                    untouched.columns().iter().map(|c| c.name.clone()).collect();
                let whole = untouched.columns().iter().all(|c| c.data.len() == batch.rows());
                (names, untouched.rows(), whole)
            })
            .unwrap();
        assert!(!alone.rejected.is_empty(), "the sample should lose rows to {}", pipeline.name);
        assert_eq!(beside.batch, alone.batch);
        assert_eq!(beside.rejected, alone.rejected);
        assert_eq!(beside.source_rows, alone.source_rows);
        let (names, seen_rows, whole) = seen;
        assert_eq!((seen_rows, whole), (batch.rows(), true));
        assert_eq!(names, chain.untouched());
        if pipeline.name == "default" {
            for name in ["high_24h", "ath", "circulating_supply"] {
                assert!(names.iter().any(|n| n == name), "{name} is untouched: {names:?}");
            }
            for name in ["id", "market_cap", "ath_date", "image"] {
                assert!(!names.iter().any(|n| n == name), "{name} is touched: {names:?}");
            }
        } else {
            // seed-compat reads every column for its null and duplicate checks.
            assert_eq!(names, Vec::<String>::new());
        }
    }
}
