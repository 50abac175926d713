//! The extract stage: the top N coins from CoinGecko `/coins/markets`, stored exactly as received.
//!
//! Pages are fetched in order (stopping early at a short page) and joined into one JSON array
//! whose elements are the bytes CoinGecko sent, so no number is re-formatted or rounded. Only when
//! every page arrived is anything stored: `/global` (optional), the metadata, and last the raw
//! snapshot itself, each written atomically. A failure part-way stores no snapshot.

pub mod coingecko;

use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

pub use coingecko::{ApiKey, ApiPlan, ClientConfig, CoinGecko, RetryNotice, RetryPolicy};

use crate::names::is_valid_currency;
use crate::snapshot::FetchTime;
use crate::store::{Store, StoreError};

/// CoinGecko's largest page.
pub const PAGE_SIZE: usize = 250;
/// The most coins one snapshot may ask for (40 pages).
pub const MAX_TOP: usize = 10_000;

/// Why an extract failed. Nothing was stored as a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("bad extract settings: {0}")]
    Config(String),
    #[error("CoinGecko refused the API key (HTTP {status}): {message}")]
    Unauthorized { status: u16, message: String },
    #[error("CoinGecko refused {url} (HTTP {status}): {message}")]
    Refused { url: String, status: u16, message: String },
    #[error("gave up on {what} after {attempts} attempt(s) in {:.1} s: {reason}", .elapsed.as_secs_f64())]
    GaveUp { what: String, attempts: usize, elapsed: Duration, reason: String },
    #[error("request to {url} failed: {message}")]
    Http { url: String, message: String },
    #[error("CoinGecko's answer for {what} is not {expected}: {found}")]
    UnexpectedBody { what: String, expected: &'static str, found: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ExtractError {
    /// Whether running the extract again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ExtractError::GaveUp { .. } => true,
            ExtractError::Store(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// What to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractRequest {
    /// How many coins, by market cap (the original fetched 500).
    pub top: usize,
    /// Quote currency, e.g. `usd`.
    pub currency: String,
    /// CoinGecko's `price_change_percentage`, e.g. `24h` or `1h,24h,7d`.
    pub price_change_percentage: String,
    /// Also fetch `/global` (whole-market totals).
    pub include_global: bool,
}

impl ExtractRequest {
    /// Checks the request before any network traffic.
    pub fn validate(&self) -> Result<(), ExtractError> {
        if self.top == 0 || self.top > MAX_TOP {
            return Err(ExtractError::Config(format!(
                "--top must be between 1 and {MAX_TOP}, not {}",
                self.top
            )));
        }
        if !is_valid_currency(&self.currency) {
            return Err(ExtractError::Config(format!(
                "currency {:?} is not a CoinGecko currency code such as usd or eur",
                self.currency
            )));
        }
        let changes_ok = !self.price_change_percentage.is_empty()
            && self
                .price_change_percentage
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == ',');
        if !changes_ok {
            return Err(ExtractError::Config(format!(
                "price change windows {:?} should look like 24h or 1h,24h,7d",
                self.price_change_percentage
            )));
        }
        Ok(())
    }

    fn per_page(&self) -> usize {
        self.top.min(PAGE_SIZE)
    }

    fn pages(&self) -> usize {
        self.top.div_ceil(self.per_page())
    }
}

/// Progress worth showing while an extract runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtractEvent {
    Page { page: usize, pages: usize, coins: usize },
    Retry(RetryNotice),
}

/// A snapshot in memory, before it is stored.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The coins as one JSON array of the elements exactly as received.
    pub coins_json: Vec<u8>,
    pub coins: usize,
    pub pages: usize,
    /// The `/coins/markets` URL of the first page (without the key, which travels in a header).
    pub source: String,
    /// `/global`, exactly as received, when asked for.
    pub global_json: Option<Vec<u8>>,
}

/// Fetches the coins (and `/global`) without storing anything.
pub async fn fetch(
    client: &CoinGecko,
    request: &ExtractRequest,
    on_event: &mut (dyn FnMut(ExtractEvent) + Send),
) -> Result<Fetched, ExtractError> {
    request.validate()?;
    let per_page = request.per_page();
    let pages = request.pages();
    let mut coins_json = Vec::with_capacity(request.top * 1200);
    coins_json.push(b'[');
    let mut coins = 0;
    let mut fetched_pages = 0;
    let mut source = String::new();
    for page in 1..=pages {
        let url = client.url(
            "coins/markets",
            &[
                ("vs_currency", request.currency.clone()),
                ("order", "market_cap_desc".into()),
                ("per_page", per_page.to_string()),
                ("page", page.to_string()),
                ("price_change_percentage", request.price_change_percentage.clone()),
            ],
        )?;
        if page == 1 {
            source = url.to_string();
        }
        let what = format!("page {page} of /coins/markets");
        let body =
            client.get(&url, &what, &mut |notice| on_event(ExtractEvent::Retry(notice))).await?;
        let elements: Vec<&RawValue> =
            serde_json::from_slice(&body).map_err(|_| ExtractError::UnexpectedBody {
                what: what.clone(),
                expected: "a JSON array of coins",
                found: coingecko::api_message(&body),
            })?;
        if let Some(bad) = elements.iter().position(|e| !e.get().starts_with('{')) {
            return Err(ExtractError::UnexpectedBody {
                what,
                expected: "a JSON array of coins",
                found: format!("element {bad} is {}", elements[bad].get()),
            });
        }
        if page == 1 && elements.is_empty() {
            return Err(ExtractError::UnexpectedBody {
                what,
                expected: "a non-empty list of coins",
                found: "an empty array".into(),
            });
        }
        for element in elements.iter().take(request.top - coins) {
            if coins > 0 {
                coins_json.push(b',');
            }
            coins_json.extend_from_slice(element.get().as_bytes());
            coins += 1;
        }
        fetched_pages = page;
        on_event(ExtractEvent::Page { page, pages, coins });
        if elements.len() < per_page || coins >= request.top {
            break;
        }
    }
    coins_json.push(b']');

    let global_json = if request.include_global {
        let url = client.url("global", &[])?;
        let what = "/global".to_owned();
        let body =
            client.get(&url, &what, &mut |notice| on_event(ExtractEvent::Retry(notice))).await?;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if value.pointer("/data/total_market_cap").is_none() {
            return Err(ExtractError::UnexpectedBody {
                what,
                expected: "market totals (data.total_market_cap)",
                found: coingecko::api_message(&body),
            });
        }
        Some(body)
    } else {
        None
    };
    Ok(Fetched { coins_json, coins, pages: fetched_pages, source, global_json })
}

/// What an extract stored: a superset of the original Lambda's output event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Extracted {
    pub status: &'static str,
    /// Where the raw snapshot is: `s3://bucket/key` or a local path.
    pub file_path: String,
    /// `2026-11-27T10-00-00Z`
    pub fetch_time: String,
    pub coins: usize,
    pub pages: usize,
    pub currency: String,
    /// SHA-256 of the raw snapshot's bytes.
    pub sha256: String,
    pub meta_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_path: Option<String>,
}

/// Fetches a snapshot and stores it under `fetch_time`'s keys.
pub async fn extract(
    client: &CoinGecko,
    store: &Store,
    request: &ExtractRequest,
    fetch_time: FetchTime,
    on_event: &mut (dyn FnMut(ExtractEvent) + Send),
) -> Result<Extracted, ExtractError> {
    let fetched = fetch(client, request, on_event).await?;
    store_snapshot(store, fetched, request, fetch_time).await
}

/// Stores a saved `/coins/markets` response (a file) as the snapshot fetched at `fetch_time`,
/// as if it had just been extracted: for runs without network, and for replaying history.
pub async fn import(
    store: &Store,
    bytes: Vec<u8>,
    origin: &str,
    currency: &str,
    fetch_time: FetchTime,
) -> Result<Extracted, ExtractError> {
    let coins = serde_json::from_slice::<Vec<&RawValue>>(&bytes)
        .map_err(|_| ExtractError::UnexpectedBody {
            what: origin.to_owned(),
            expected: "a JSON array of coins",
            found: coingecko::api_message(&bytes),
        })?
        .len();
    let request = ExtractRequest {
        top: coins,
        currency: currency.to_owned(),
        price_change_percentage: "24h".into(),
        include_global: false,
    };
    let fetched = Fetched {
        coins_json: bytes,
        coins,
        pages: 0,
        source: origin.to_owned(),
        global_json: None,
    };
    store_snapshot(store, fetched, &request, fetch_time).await
}

async fn store_snapshot(
    store: &Store,
    fetched: Fetched,
    request: &ExtractRequest,
    fetch_time: FetchTime,
) -> Result<Extracted, ExtractError> {
    let keys = fetch_time.raw_keys();
    let sha256 = hex::encode(Sha256::digest(&fetched.coins_json));
    let global_path = match fetched.global_json {
        Some(global) => {
            store.put(&keys.global, global, "application/json").await?;
            Some(store.location(&keys.global))
        }
        None => None,
    };
    let meta = serde_json::json!({
        "fetch_time": fetch_time.key(),
        "currency": request.currency,
        "top": request.top,
        "coins": fetched.coins,
        "pages": fetched.pages,
        "source": fetched.source,
        "price_change_percentage": request.price_change_percentage,
        "sha256": sha256,
        "global": global_path,
        "extractor": concat!("crypto-etl ", env!("CARGO_PKG_VERSION")),
    });
    let meta_bytes = serde_json::to_vec_pretty(&meta).unwrap_or_default();
    store.put(&keys.meta, meta_bytes, "application/json").await?;
    // Last: the snapshot exists only once everything about it does.
    store.put(&keys.coins, fetched.coins_json, "application/json").await?;
    Ok(Extracted {
        status: "success",
        file_path: store.location(&keys.coins),
        fetch_time: fetch_time.key(),
        coins: fetched.coins,
        pages: fetched.pages,
        currency: request.currency.clone(),
        sha256,
        meta_path: store.location(&keys.meta),
        global_path,
    })
}
