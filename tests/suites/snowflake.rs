//! The load into Snowflake, end to end against `fakesnow` on loopback: the transform writes to a
//! real S3-compatible server, and the Snowflake stage points at that server's folder, so the
//! production `COPY INTO ... FROM @stage` runs unchanged.

use std::path::Path;

use crypto_etl_test_support::s3::S3Server;
use crypto_etl_test_support::snowflake::{ACCOUNT, FakeSnowflake, USER};
use crypto_etl_test_support::{plugins, sample};
use snowflake_connector_rs::{AuthConfig, Client, ClientConfig, EndpointConfig, Session};

use crate::common::{run_with_env, sha256_hex};

const BUCKET: &str = "crypto-etl";
const PASSWORD: &str = "correct horse battery staple";
const T1: &str = "2026-11-27T10-00-00Z";
const T2: &str = "2026-11-27T11-00-00Z";

async fn admin(snowflake: &FakeSnowflake) -> Session {
    let config = ClientConfig::new(USER, ACCOUNT, AuthConfig::password(PASSWORD))
        .with_endpoint(EndpointConfig::custom_base_url(snowflake.url().parse().unwrap()));
    Client::new(config).unwrap().create_session().await.unwrap()
}

async fn count(session: &Session, sql: &str) -> i64 {
    let rows: Vec<(i64,)> =
        session.query_as(sql.to_owned()).await.unwrap().collect().await.unwrap();
    rows[0].0
}

struct Env {
    vars: Vec<(&'static str, String)>,
}

impl Env {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        run_with_env(&self.vars, args)
    }

    fn run_snapshot(&self, time: &str, pipeline: &str) -> (i32, String, String) {
        let sample = sample("coins-markets.json");
        self.run(&[
            "run",
            "--source",
            sample.to_str().unwrap(),
            "--store",
            &format!("s3://{BUCKET}"),
            "--warehouse",
            "snowflake",
            "--fetch-time",
            time,
            "--pipeline",
            pipeline,
        ])
    }
}

fn manifest_with_price_range(dir: &Path) -> String {
    let wasm = std::fs::read(plugins::PRICE_RANGE).unwrap();
    std::fs::write(dir.join("price-range.wasm"), &wasm).unwrap();
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            "[[plugin]]\nbuiltin = \"clean\"\n[[plugin]]\nbuiltin = \"market-share\"\n\
             [[plugin]]\npath = \"price-range.wasm\"\nsha256 = \"{}\"\n",
            sha256_hex(&wasm)
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_load_into_snowflake_once_each_and_bad_files_load_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"), &[BUCKET]).await;
    let snowflake = FakeSnowflake::start(PASSWORD).await;
    let bucket = dir.path().join("s3").join(BUCKET);

    // What an administrator sets up once: the database and the stage over the bucket.
    let session = admin(&snowflake).await;
    for sql in [
        "CREATE DATABASE IF NOT EXISTS CRYPTO_ETL_DB".to_owned(),
        "CREATE SCHEMA IF NOT EXISTS CRYPTO_ETL_DB.PUBLIC".to_owned(),
        format!(
            "CREATE STAGE CRYPTO_ETL_DB.PUBLIC.CRYPTO_STAGE URL = 'file://{}/'",
            bucket.display()
        ),
    ] {
        session.query(sql).await.unwrap();
    }
    let mut vars = s3.env();
    vars.extend(snowflake.env());
    let env = Env { vars };
    let table = "CRYPTO_ETL_DB.PUBLIC.CRYPTO_DATA";

    // First load creates the table; the same snapshot again leaves one copy.
    for attempt in 0..2 {
        let (code, stdout, stderr) = env.run_snapshot(T1, "default");
        assert_eq!(code, 0, "{stderr}\n{}", snowflake.output());
        assert!(stdout.contains("loaded 5 rows"), "{stdout}");
        assert!(stdout.contains("snowflake:CRYPTO_ETL_DB.PUBLIC.CRYPTO_DATA"), "{stdout}");
        if attempt == 1 {
            assert!(stdout.contains("replacing the 5 rows"), "{stdout}");
        }
    }
    assert_eq!(count(&session, &format!("SELECT count(*) FROM {table}")).await, 5);
    assert_eq!(count(&session, &format!("SELECT count(DISTINCT \"ID\") FROM {table}")).await, 5);
    assert_eq!(
        count(
            &session,
            &format!("SELECT count(*) FROM {table}_LOAD_HISTORY WHERE \"ROWS_LOADED\" = 5")
        )
        .await,
        2
    );
    // Both percentages, over the kept coins, Ethereum (null max_supply) among them.
    let rows: Vec<(f64, f64)> = session
        .query_as(format!(
            "SELECT sum(\"DOMINANCE_PERCENTAGE\"), sum(\"VOLUME_PERCENTAGE\") FROM {table}"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!((rows[0].0 - 100.0).abs() < 1e-9 && (rows[0].1 - 100.0).abs() < 1e-9, "{rows:?}");
    assert_eq!(
        count(
            &session,
            &format!(
                "SELECT count(*) FROM {table} WHERE \"ID\" = 'ethereum' AND \"MAX_SUPPLY\" IS NULL"
            )
        )
        .await,
        1
    );

    // A plugin added between loads adds its column; older rows read null.
    let manifest = manifest_with_price_range(dir.path());
    let (code, _, stderr) = env.run_snapshot(T2, &manifest);
    assert_eq!(code, 0, "{stderr}\n{}", snowflake.output());
    assert_eq!(count(&session, &format!("SELECT count(*) FROM {table}")).await, 10);
    assert_eq!(
        count(&session, &format!("SELECT count(*) FROM {table} WHERE \"PRICE_RANGE_24H_PERCENTAGE\" IS NOT NULL AND \"SNAPSHOT_ID\" = 'usd:{T2}'")).await,
        count(&session, &format!("SELECT count(*) FROM {table} WHERE \"HIGH_24H\" IS NOT NULL AND \"LOW_24H\" IS NOT NULL AND \"SNAPSHOT_ID\" = 'usd:{T2}'")).await,
    );
    assert_eq!(
        count(&session, &format!("SELECT count(*) FROM {table} WHERE \"PRICE_RANGE_24H_PERCENTAGE\" IS NULL AND \"SNAPSHOT_ID\" = 'usd:{T1}'")).await,
        5
    );
    assert_eq!(count(&session, &format!("SELECT count(*) FROM {table}_LATEST")).await, 5);

    // A CSV row Snowflake rejects: the whole file is refused and the table keeps what it had.
    let csv_key = format!("processed/dt=2026-11-27/processed_crypto_data_{T2}.csv");
    let csv_path = bucket.join(&csv_key);
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let price = header.iter().position(|h| *h == "current_price").unwrap();
    let mut fields: Vec<String> = lines[2].split(',').map(str::to_owned).collect();
    fields[price] = "not-a-price".into();
    lines[2] = fields.join(",");
    std::fs::write(&csv_path, lines.join("\n") + "\n").unwrap();
    let event = format!("{{\"bucket_name\": \"{BUCKET}\", \"file_name\": \"{csv_key}\"}}");
    let (code, _, stderr) = env.run(&[
        "load",
        "--event",
        &event,
        "--store",
        &format!("s3://{BUCKET}"),
        "--warehouse",
        "snowflake",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("nothing of it was loaded"), "{stderr}");
    assert_eq!(count(&session, &format!("SELECT count(*) FROM {table}")).await, 10);
    assert_eq!(
        count(
            &session,
            &format!("SELECT count(*) FROM {table} WHERE \"SNAPSHOT_ID\" = 'usd:{T2}'")
        )
        .await,
        5
    );

    // Bad credentials: a clear error that names the user, never the password.
    let mut vars = env.vars.clone();
    vars.retain(|(k, _)| *k != "SNOWFLAKE_PASSWORD");
    vars.push(("SNOWFLAKE_PASSWORD", "wrong-password-123".into()));
    let (code, _, stderr) = Env { vars }.run_snapshot(T1, "default");
    assert_ne!(code, 0);
    assert!(stderr.contains("refused to sign in") && stderr.contains(USER), "{stderr}");
    assert!(!stderr.contains("wrong-password-123"), "the password leaked: {stderr}");
}
