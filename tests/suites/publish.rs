//! Plugins shipped through the store: `plugin publish` checks a component against the stored
//! chain and adds it, the next transform runs it with no rebuild, and bytes that do not match
//! their sha256 are refused.

use std::path::Path;

use crypto_etl_test_support::s3::S3Server;
use crypto_etl_test_support::{plugins, sample};

use crate::common::{read_csv, run_with_env, sha256_hex};

const BUCKET: &str = "crypto-etl";

/// Runs the binary as a machine whose plugin cache is `cache`.
fn run(env: &[(&'static str, String)], cache: &Path, args: &[&str]) -> (i32, String, String) {
    let mut env = env.to_vec();
    env.push(("CRYPTO_ETL_CACHE_DIR", cache.display().to_string()));
    run_with_env(&env, args)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_plugin_reaches_the_next_transform_and_tampered_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"), &[BUCKET]).await;
    let env = s3.env();
    let bucket = dir.path().join("s3").join(BUCKET);
    let cache = dir.path().join("cache");
    let store = format!("s3://{BUCKET}");
    let manifest = bucket.join("plugins").join("pipeline.toml");
    let duckdb = format!("duckdb:{}", dir.path().join("crypto.duckdb").display());
    let sample = sample("coins-markets.json");
    let sample = sample.to_str().unwrap();
    // A transform with the store's pipeline, as the Lambda runs it, on a machine of its own.
    let run_stored = |machine: &str, time: &str| {
        run(
            &env,
            &dir.path().join(machine),
            &[
                "run",
                "--source",
                sample,
                "--store",
                &store,
                "--pipeline",
                "stored",
                "--warehouse",
                &duckdb,
                "--fetch-time",
                time,
            ],
        )
    };

    // A plugin that fails on the reference snapshot is not published: nothing is uploaded.
    let (code, _, stderr) = run(
        &env,
        &cache,
        &["plugin", "publish", plugins::MISBEHAVE, "--store", &store, "--config", "do=panic"],
    );
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("nothing was published") && stderr.contains("panic"), "{stderr}");
    assert!(!bucket.join("plugins").exists(), "nothing may be uploaded");

    // Before any publish, the store runs the built-in default.
    let (code, stdout, stderr) = run(&env, &cache, &["plugin", "list", "--store", &store]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("built-in default"), "{stdout}");

    // Publish the example plugin: checked, uploaded by content, manifest replaced.
    let (code, stdout, stderr) =
        run(&env, &cache, &["plugin", "publish", plugins::PRICE_RANGE, "--store", &store]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("clean -> market-share -> price-range"), "{stdout}");
    let sha = sha256_hex(&std::fs::read(plugins::PRICE_RANGE).unwrap());
    let object = bucket.join("plugins").join(format!("{sha}.wasm"));
    assert!(object.exists(), "the plugin is stored under its sha256");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains(&sha), "{text}");
    let (code, stdout, _) = run(&env, &cache, &["plugin", "list", "--store", &store]);
    assert_eq!(code, 0);
    assert!(stdout.contains("price-range"), "{stdout}");

    // The next run with the stored pipeline (what the Lambda runs) has the new column.
    let (code, stdout, stderr) = run_stored("another-machine", "2026-11-27T10-00-00Z");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("5 kept"), "{stdout}");
    let csv = bucket.join("processed/dt=2026-11-27/processed_crypto_data_2026-11-27T10-00-00Z.csv");
    let (headers, rows) = read_csv(&csv);
    assert!(headers.contains(&"price_range_24h_percentage".to_owned()), "{headers:?}");
    // Filled wherever the 24h high and low are known (one sample coin has neither).
    for row in &rows {
        let known = !row["high_24h"].is_empty() && !row["low_24h"].is_empty();
        assert_eq!(!row["price_range_24h_percentage"].is_empty(), known, "{row:?}");
    }

    // Someone swaps the object in the bucket: a machine without a verified copy refuses it,
    // and writes nothing.
    crate::extract::test_client(&s3)
        .put_object()
        .bucket(BUCKET)
        .key(format!("plugins/{sha}.wasm"))
        .body(std::fs::read(plugins::NOT_A_PLUGIN).unwrap().into())
        .send()
        .await
        .unwrap();
    let (code, _, stderr) = run_stored("fresh-machine", "2026-11-27T11-00-00Z");
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("sha256") && stderr.contains(&sha), "{stderr}");
    assert!(
        !bucket
            .join("processed/dt=2026-11-27/processed_crypto_data_2026-11-27T11-00-00Z.csv")
            .exists()
    );
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), text, "the manifest is untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn publishing_keeps_the_names_of_a_hand_written_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"), &[BUCKET]).await;
    let env = s3.env();
    let store = format!("s3://{BUCKET}");
    let client = crate::extract::test_client(&s3);
    let wasm = std::fs::read(plugins::PRICE_RANGE).unwrap();
    let manifest = format!(
        "[[plugin]]\nbuiltin = \"clean\"\n[[plugin]]\nbuiltin = \"market-share\"\n\
         [[plugin]]\npath = \"team/price-range.wasm\"\nsha256 = \"{}\"\n",
        sha256_hex(&wasm)
    );
    for (key, body) in
        [("plugins/team/price-range.wasm", wasm), ("plugins/pipeline.toml", manifest.into_bytes())]
    {
        client.put_object().bucket(BUCKET).key(key).body(body.into()).send().await.unwrap();
    }

    // Another plugin published after it: the hand-written entry keeps its object's name.
    let (code, stdout, stderr) = run(
        &env,
        &dir.path().join("cache"),
        &["plugin", "publish", plugins::MISBEHAVE, "--store", &store],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("clean -> market-share -> price-range -> misbehave"), "{stdout}");
    let text =
        std::fs::read_to_string(dir.path().join("s3").join(BUCKET).join("plugins/pipeline.toml"))
            .unwrap();
    assert!(text.contains("path = \"team/price-range.wasm\""), "{text}");

    // And a machine that has never seen it runs the whole stored chain.
    let (code, stdout, stderr) =
        run(&env, &dir.path().join("other-machine"), &["plugin", "list", "--store", &store]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("price-range") && stdout.contains("misbehave"), "{stdout}");
}
