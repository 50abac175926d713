//! An HTTP double of the CoinGecko API on loopback (wiremock), serving the real responses in
//! shared/fixtures.

use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::coingecko_fixture;

/// The API root of `server`, as COINGECKO_BASE_URL takes it.
pub fn base_url(server: &MockServer) -> String {
    format!("{}/api/v3", server.uri())
}

/// A 200 with a fixture file as body.
pub fn fixture_response(name: &str) -> ResponseTemplate {
    let body = std::fs::read(coingecko_fixture(name)).expect("read fixture");
    ResponseTemplate::new(200).set_body_raw(body, "application/json")
}

/// A mock for page `page` of `/coins/markets`.
pub fn markets_page(page: u32) -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path("/api/v3/coins/markets"))
        .and(query_param("page", page.to_string()))
}

/// A mock for `/global`.
pub fn global() -> wiremock::MockBuilder {
    Mock::given(method("GET")).and(path("/api/v3/global"))
}

/// Serves a one-page snapshot: `markets` as page 1 of `/coins/markets`, and `global` as `/global`.
pub async fn serve_snapshot(server: &MockServer, markets: &str, global_fixture: &str) {
    markets_page(1).respond_with(fixture_response(markets)).mount(server).await;
    global().respond_with(fixture_response(global_fixture)).mount(server).await;
}
