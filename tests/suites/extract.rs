//! `crypto-etl extract` against an HTTP double serving real CoinGecko responses, storing into a
//! folder and into a real S3-compatible server. Nothing here touches the internet.

use std::path::Path;
use std::time::{Duration, Instant};

use crypto_etl::store::{Key, S3Store};
use crypto_etl_test_support::coingecko::{self, base_url, fixture_response, markets_page};
use crypto_etl_test_support::coingecko_fixture;
use crypto_etl_test_support::s3::{self, S3Server};
use serde_json::Value;
use serde_json::value::RawValue;
use wiremock::matchers::{header, query_param};
use wiremock::{MockServer, ResponseTemplate};

use crate::common::{crypto_etl, entries};

const FETCH_TIME: &str = "2026-11-27T10-00-00Z";
const RAW_KEY: &str = "raw/dt=2026-11-27/raw_crypto_data_2026-11-27T10-00-00Z.json";

/// Runs `extract` against `server` into `store`, off the async runtime (the doubles live on it).
async fn extract(
    server: &MockServer,
    store: &str,
    extra: &[&str],
    env: Vec<(&'static str, String)>,
) -> (i32, Value, String) {
    let mut command = crypto_etl();
    command
        .args(["extract", "--store", store, "--fetch-time", FETCH_TIME, "--min-interval-ms", "0"])
        .args(extra)
        .env("COINGECKO_BASE_URL", base_url(server))
        .env_remove("COINGECKO_API_KEY")
        .env_remove("COINGECKO_API_PLAN")
        .envs(env);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run crypto-etl"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let event = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        output.status.code().unwrap_or(-1),
        event,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn raw_elements(bytes: &[u8]) -> Vec<String> {
    let elements: Vec<&RawValue> = serde_json::from_slice(bytes).expect("a JSON array");
    elements.iter().map(|e| e.get().to_owned()).collect()
}

fn fixture_elements(name: &str) -> Vec<String> {
    raw_elements(&std::fs::read(coingecko_fixture(name)).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_the_500_coin_snapshot_exactly_as_received() {
    let server = MockServer::start().await;
    for (page, fixture) in [(1, "markets-2024-12-19-250.json"), (2, "markets-2022-10-16-250.json")]
    {
        markets_page(page)
            .and(query_param("vs_currency", "usd"))
            .and(query_param("order", "market_cap_desc"))
            .and(query_param("per_page", "250"))
            .and(query_param("price_change_percentage", "24h"))
            .and(header("x-cg-demo-api-key", "CG-test-key"))
            .respond_with(fixture_response(fixture))
            .expect(1)
            .mount(&server)
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    let (code, event, stderr) =
        extract(&server, store, &[], vec![("COINGECKO_API_KEY", "CG-test-key".into())]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("CG-test-key"), "the key leaked: {stderr}");

    let raw_path = dir.path().join(RAW_KEY);
    assert_eq!(event["status"], "success");
    assert_eq!(event["file_path"], raw_path.to_str().unwrap());
    assert_eq!(event["fetch_time"], FETCH_TIME);
    assert_eq!(event["coins"], 500);
    assert_eq!(event["pages"], 2);

    // Every coin exactly as CoinGecko sent it: same bytes per element, nothing re-formatted.
    let stored = raw_elements(&std::fs::read(&raw_path).unwrap());
    let mut expected = fixture_elements("markets-2024-12-19-250.json");
    expected.extend(fixture_elements("markets-2022-10-16-250.json"));
    assert_eq!(stored, expected);
    assert!(
        stored.iter().any(|c| c.contains("\"circulating_supply\": 159278394658793760")),
        "big integer intact"
    );

    let meta: Value =
        serde_json::from_slice(&std::fs::read(raw_path.with_extension("meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["coins"], 500);
    assert!(!meta["source"].as_str().unwrap().contains("CG-test-key"));
    assert!(meta["source"].as_str().unwrap().contains("vs_currency=usd"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_page_ends_the_fetch_early() {
    let server = MockServer::start().await;
    markets_page(1)
        .respond_with(fixture_response("markets-2024-12-19-250.json"))
        .expect(1)
        .mount(&server)
        .await;
    markets_page(2)
        .respond_with(fixture_response("markets-2025-03-19-100.json"))
        .expect(1)
        .mount(&server)
        .await;
    markets_page(3).respond_with(ResponseTemplate::new(500)).expect(0).mount(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, event, stderr) =
        extract(&server, dir.path().to_str().unwrap(), &["--top", "750"], vec![]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(event["coins"], 350);
    assert_eq!(event["pages"], 2);
}

/// Page 1 fails once with `first`, then succeeds; returns the run's duration and stderr.
async fn recovers_from(first: ResponseTemplate, extra: &[&str]) -> (Duration, String) {
    let server = MockServer::start().await;
    markets_page(1)
        .respond_with(first)
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    markets_page(1)
        .respond_with(fixture_response("markets-2025-03-19-100.json"))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (code, event, stderr) = extract(
        &server,
        dir.path().to_str().unwrap(),
        &[&["--top", "100"], extra].concat(),
        vec![],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(event["coins"], 100);
    assert!(dir.path().join(RAW_KEY).exists());
    (started.elapsed(), stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_are_waited_out_as_retry_after_says() {
    let body = std::fs::read(coingecko_fixture("error-429-rate-limit-2022-09-29.json")).unwrap();
    let limited = |after: &str| {
        ResponseTemplate::new(429)
            .insert_header("retry-after", after)
            .set_body_raw(body.clone(), "application/json")
    };

    let (took, stderr) = recovers_from(limited("1"), &[]).await;
    assert!(took >= Duration::from_secs(1), "Retry-After: 1 was not honoured ({took:?})");
    assert!(
        stderr.contains(
            "rate limited (HTTP 429; asked to wait 1 s): You've exceeded the Rate Limit."
        ),
        "{stderr}"
    );

    // `Retry-After: 0` still waits the backoff floor (1 s), never a hot loop.
    let (took, stderr) = recovers_from(limited("0"), &[]).await;
    assert!(took >= Duration::from_secs(1), "no floor under Retry-After: 0 ({took:?})");
    assert!(stderr.contains("retrying in 1.0 s"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_and_hangs_are_retried() {
    let (_, stderr) =
        recovers_from(ResponseTemplate::new(503).set_body_string("upstream busy"), &[]).await;
    assert!(stderr.contains("HTTP 503 Service Unavailable: upstream busy"), "{stderr}");

    let hang = ResponseTemplate::new(200).set_delay(Duration::from_secs(5));
    let (_, stderr) = recovers_from(hang, &["--request-timeout", "1"]).await;
    assert!(stderr.contains("no answer within 1 s"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_are_bounded() {
    let server = MockServer::start().await;
    markets_page(1).respond_with(ResponseTemplate::new(502)).expect(3).mount(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = extract(
        &server,
        dir.path().to_str().unwrap(),
        &["--top", "100", "--max-attempts", "3"],
        vec![],
    )
    .await;
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("gave up on page 1 of /coins/markets after 3 attempt(s)"), "{stderr}");
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_keys_and_bad_bodies_fail_at_once_with_coingeckos_words() {
    let server = MockServer::start().await;
    let missing_key = r#"{"status":{"timestamp":"2026-11-27T10:00:00Z","error_code":10002,"error_message":"API Key Missing"}}"#;
    markets_page(1)
        .respond_with(ResponseTemplate::new(401).set_body_string(missing_key))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = extract(&server, dir.path().to_str().unwrap(), &[], vec![]).await;
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("CoinGecko refused the API key (HTTP 401): API Key Missing"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: no snapshot was stored; check COINGECKO_API_KEY"), "{stderr}");

    // The rate-limit error object, served with a 200: not a list of coins.
    let server = MockServer::start().await;
    markets_page(1)
        .respond_with(fixture_response("error-429-rate-limit-2022-09-29.json"))
        .expect(1)
        .mount(&server)
        .await;
    let (code, _, stderr) = extract(&server, dir.path().to_str().unwrap(), &[], vec![]).await;
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("answer for page 1 of /coins/markets is not a JSON array of coins: You've exceeded the Rate Limit."),
        "{stderr}"
    );
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_after_some_pages_stores_nothing() {
    let server = MockServer::start().await;
    markets_page(1)
        .respond_with(fixture_response("markets-2024-12-19-250.json"))
        .mount(&server)
        .await;
    markets_page(2)
        .respond_with(ResponseTemplate::new(403).set_body_string("{\"error\":\"plan limit\"}"))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = extract(&server, dir.path().to_str().unwrap(), &[], vec![]).await;
    assert_eq!(code, 6, "{stderr}");
    assert_eq!(entries(dir.path()), Vec::<String>::new(), "a partial snapshot was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn global_totals_are_stored_beside_the_snapshot() {
    let server = MockServer::start().await;
    markets_page(1)
        .respond_with(fixture_response("markets-2025-03-19-100.json"))
        .mount(&server)
        .await;
    coingecko::global()
        .respond_with(fixture_response("global-2026-09-12.json"))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, event, stderr) =
        extract(&server, dir.path().to_str().unwrap(), &["--top", "100", "--global"], vec![]).await;
    assert_eq!(code, 0, "{stderr}");
    let global = Path::new(event["global_path"].as_str().unwrap());
    assert_eq!(
        std::fs::read(global).unwrap(),
        std::fs::read(coingecko_fixture("global-2026-09-12.json")).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_into_an_s3_compatible_server() {
    let server = MockServer::start().await;
    markets_page(1)
        .respond_with(fixture_response("markets-2025-03-19-100.json"))
        .mount(&server)
        .await;
    let root = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(root.path(), &["cm--raw-data"]).await;
    let (code, event, stderr) =
        extract(&server, "s3://cm--raw-data/snapshots", &["--top", "100"], s3.env()).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(event["file_path"], format!("s3://cm--raw-data/snapshots/{RAW_KEY}"));

    // The object is a plain file on the server's disk, with the coins exactly as served.
    let on_disk = root.path().join("cm--raw-data/snapshots").join(RAW_KEY);
    assert_eq!(
        raw_elements(&std::fs::read(&on_disk).unwrap()),
        fixture_elements("markets-2025-03-19-100.json")
    );

    // And it reads back through the S3 API byte for byte.
    let store =
        S3Store::new(test_client(&s3), "cm--raw-data".into(), Some(Key::new("snapshots").unwrap()));
    let key = Key::new(RAW_KEY).unwrap();
    assert_eq!(store.get(&key).await.unwrap(), std::fs::read(&on_disk).unwrap());
    let listed = store.list(&Key::new("raw").unwrap()).await.unwrap();
    assert!(listed.contains(&key), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_store_is_a_clear_error() {
    let server = MockServer::start().await;
    markets_page(1)
        .respond_with(fixture_response("markets-2025-03-19-100.json"))
        .mount(&server)
        .await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let env = vec![
        ("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY.into()),
        ("AWS_REGION", s3::REGION.into()),
        ("AWS_MAX_ATTEMPTS", "1".into()),
        ("CRYPTO_ETL_S3_ENDPOINT", format!("http://{closed}")),
        ("CRYPTO_ETL_S3_PATH_STYLE", "true".into()),
    ];
    let (code, _, stderr) = extract(&server, "s3://cm--raw-data", &["--top", "100"], env).await;
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("could not write s3://cm--raw-data/raw/dt=2026-11-27/"), "{stderr}");
    assert!(stderr.to_lowercase().contains("connect"), "{stderr}");
}

pub(crate) fn test_client(server: &S3Server) -> aws_sdk_s3::Client {
    let credentials =
        aws_sdk_s3::config::Credentials::new(s3::ACCESS_KEY, s3::SECRET_KEY, None, None, "test");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(s3::REGION))
        .credentials_provider(credentials)
        .endpoint_url(server.endpoint())
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread")]
async fn pro_keys_go_in_the_pro_header() {
    let server = MockServer::start().await;
    markets_page(1)
        .and(header("x-cg-pro-api-key", "CG-pro"))
        .respond_with(fixture_response("markets-2025-03-19-100.json"))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![("COINGECKO_API_KEY", "CG-pro".into()), ("COINGECKO_API_PLAN", "pro".into())];
    let (code, event, stderr) =
        extract(&server, dir.path().to_str().unwrap(), &["--top", "100"], env).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(event["coins"], 100);
}
