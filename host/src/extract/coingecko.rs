//! A CoinGecko API client that survives rate limits and flaky servers.
//!
//! Every request is paced to stay within the plan's rate limit, and retried when the failure is
//! transient: HTTP 429 waits as `Retry-After` says (seconds or an HTTP date; never less than a
//! floor, so `0` is not a hot loop), 5xx, timeouts and dropped connections back off exponentially
//! with jitter. Attempts and total time are bounded. A 401/403, another 4xx, or a body that is not
//! what the endpoint returns fails at once with CoinGecko's own message.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

use super::ExtractError;

/// Which CoinGecko API the key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiPlan {
    /// The public API with a free demo key (or none): `x-cg-demo-api-key` on api.coingecko.com.
    Demo,
    /// A paid plan: `x-cg-pro-api-key` on pro-api.coingecko.com.
    Pro,
}

impl std::str::FromStr for ApiPlan {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "demo" => Ok(ApiPlan::Demo),
            "pro" => Ok(ApiPlan::Pro),
            other => Err(format!("{other:?} is not a CoinGecko API plan; use demo or pro")),
        }
    }
}

impl ApiPlan {
    pub fn default_base_url(self) -> &'static str {
        match self {
            ApiPlan::Demo => "https://api.coingecko.com/api/v3",
            ApiPlan::Pro => "https://pro-api.coingecko.com/api/v3",
        }
    }

    fn key_header(self) -> &'static str {
        match self {
            ApiPlan::Demo => "x-cg-demo-api-key",
            ApiPlan::Pro => "x-cg-pro-api-key",
        }
    }

    /// Time between requests that keeps a run within the plan's published rate limit.
    pub fn default_interval(self, has_key: bool) -> Duration {
        match (self, has_key) {
            (ApiPlan::Pro, _) => Duration::from_millis(125), // 500 calls/min
            (ApiPlan::Demo, true) => Duration::from_millis(2_100), // 30 calls/min
            (ApiPlan::Demo, false) => Duration::from_secs(6), // keyless: about 10 calls/min
        }
    }
}

/// An API key, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> Self {
        Self(key)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// When to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: usize,
    /// Time one request may take, retries and waits included.
    pub budget: Duration,
    /// Shortest wait between attempts (also the floor under `Retry-After: 0`).
    pub min_backoff: Duration,
    /// Longest wait between attempts when the server does not say.
    pub max_backoff: Duration,
    /// Time one HTTP exchange may take.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            budget: Duration::from_secs(180),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// How to reach CoinGecko.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub plan: ApiPlan,
    pub api_key: Option<ApiKey>,
    /// API root, e.g. `https://api.coingecko.com/api/v3`.
    pub base_url: String,
    pub retry: RetryPolicy,
    /// Least time between two requests.
    pub min_interval: Duration,
}

/// Something worth telling an operator while a request is under way.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryNotice {
    /// What was being fetched, e.g. `page 2`.
    pub what: String,
    /// The attempt that failed (1 = the first).
    pub attempt: usize,
    pub reason: String,
    pub wait: Duration,
}

/// Why one attempt failed, and whether another may succeed.
#[derive(Debug)]
enum Attempt {
    Retry { reason: String, retry_after: Option<Duration> },
    Fatal(ExtractError),
}

/// A CoinGecko client, built once and reused for every request of a process.
#[derive(Debug)]
pub struct CoinGecko {
    http: reqwest::Client,
    config: ClientConfig,
    last_request: tokio::sync::Mutex<Option<Instant>>,
}

impl CoinGecko {
    pub fn new(config: ClientConfig) -> Result<Self, ExtractError> {
        let mut headers = HeaderMap::new();
        if let Some(ApiKey(key)) = &config.api_key {
            let mut value = HeaderValue::from_str(key).map_err(|_| {
                ExtractError::Config("COINGECKO_API_KEY has characters a header cannot hold".into())
            })?;
            value.set_sensitive(true);
            headers.insert(config.plan.key_header(), value);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("crypto-etl/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(config.retry.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ExtractError::Config(format!("could not set up the HTTP client: {e}")))?;
        Ok(Self { http, config, last_request: tokio::sync::Mutex::new(None) })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The URL of `path` with `query` (no key: keys travel in a header).
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> Result<reqwest::Url, ExtractError> {
        let base = self.config.base_url.trim_end_matches('/');
        reqwest::Url::parse_with_params(&format!("{base}/{path}"), query)
            .map_err(|e| ExtractError::Config(format!("{base:?} is not a usable API root: {e}")))
    }

    /// GETs `url`, retrying what is transient; `what` names the request in messages.
    pub async fn get(
        &self,
        url: &reqwest::Url,
        what: &str,
        notify: &mut (dyn FnMut(RetryNotice) + Send),
    ) -> Result<Vec<u8>, ExtractError> {
        let policy = self.config.retry;
        let started = Instant::now();
        // Shared with the retry closures; atomics keep the future `Send` (Lambda needs it).
        let attempts = AtomicUsize::new(0);
        let out_of_time = Mutex::new(None::<Duration>);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_backoff)
            .with_max_delay(policy.max_backoff)
            .with_max_times(policy.max_attempts.saturating_sub(1))
            .with_jitter();
        let result = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt(url)
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e| matches!(e, Attempt::Retry { .. }))
        .adjust(|e, backoff| {
            let backoff = backoff?;
            let wait = match e {
                Attempt::Retry { retry_after: Some(asked), .. } => (*asked).max(policy.min_backoff),
                _ => backoff,
            };
            if started.elapsed() + wait > policy.budget {
                *out_of_time.lock().unwrap_or_else(|e| e.into_inner()) = Some(wait);
                return None;
            }
            Some(wait)
        })
        .notify(|e, wait| {
            if let Attempt::Retry { reason, .. } = e {
                let attempt = attempts.load(Ordering::Relaxed);
                notify(RetryNotice {
                    what: what.to_owned(),
                    attempt,
                    reason: reason.clone(),
                    wait,
                });
            }
        })
        .await;
        match result {
            Ok(body) => Ok(body),
            Err(Attempt::Fatal(error)) => Err(error),
            Err(Attempt::Retry { reason, .. }) => Err(ExtractError::GaveUp {
                what: what.to_owned(),
                attempts: attempts.load(Ordering::Relaxed),
                elapsed: started.elapsed(),
                reason: match *out_of_time.lock().unwrap_or_else(|e| e.into_inner()) {
                    Some(wait) => format!(
                        "{reason}; waiting {} s more would pass the time budget of {} s",
                        wait.as_secs(),
                        policy.budget.as_secs()
                    ),
                    None => reason,
                },
            }),
        }
    }

    /// Waits until the pacing interval since the previous request has passed.
    async fn pace(&self) {
        let mut last = self.last_request.lock().await;
        if let Some(previous) = *last {
            let due = previous + self.config.min_interval;
            tokio::time::sleep_until(due.into()).await;
        }
        *last = Some(Instant::now());
    }

    async fn attempt(&self, url: &reqwest::Url) -> Result<Vec<u8>, Attempt> {
        self.pace().await;
        let timeout = self.config.retry.request_timeout;
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                Attempt::Retry {
                    reason: format!("no answer within {} s", timeout.as_secs_f32()),
                    retry_after: None,
                }
            } else if e.is_connect() || e.is_request() || e.is_body() {
                Attempt::Retry {
                    reason: format!("connection failed: {}", error_chain(&e)),
                    retry_after: None,
                }
            } else {
                Attempt::Fatal(ExtractError::Http {
                    url: url.to_string(),
                    message: error_chain(&e),
                })
            }
        };
        let response = self.http.get(url.clone()).send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.bytes().await.map_err(transport)?.to_vec();
        if status.is_success() {
            return Ok(body);
        }
        let message = api_message(&body);
        if status == StatusCode::TOO_MANY_REQUESTS {
            let asked = match retry_after {
                Some(d) => format!("; asked to wait {} s", d.as_secs()),
                None => String::new(),
            };
            return Err(Attempt::Retry {
                reason: format!("rate limited (HTTP 429{asked}): {message}"),
                retry_after,
            });
        }
        if status.is_server_error() {
            return Err(Attempt::Retry {
                reason: format!("HTTP {status}: {message}"),
                retry_after,
            });
        }
        Err(Attempt::Fatal(if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            ExtractError::Unauthorized { status: status.as_u16(), message }
        } else {
            ExtractError::Refused { url: url.to_string(), status: status.as_u16(), message }
        }))
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

/// CoinGecko's own words from an error body, or the start of the body.
pub(crate) fn api_message(body: &[u8]) -> String {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = json.as_ref().and_then(|v| {
        v.pointer("/status/error_message")
            .or_else(|| v.get("error"))
            .and_then(|m| m.as_str().map(str::to_owned).or_else(|| Some(m.to_string())))
    });
    from_json.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        match text.char_indices().nth(200) {
            Some((end, _)) => format!("{}…", &text[..end]),
            None if text.is_empty() => "(empty body)".into(),
            None => text.to_owned(),
        }
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_dates() {
        assert_eq!(parse_retry_after("119"), Some(Duration::from_secs(119)));
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let parsed = parse_retry_after(&soon).unwrap();
        assert!(
            parsed > Duration::from_secs(27) && parsed <= Duration::from_secs(30),
            "{parsed:?}"
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn error_bodies_say_what_coingecko_said() {
        let body =
            br#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit."}}"#;
        assert_eq!(api_message(body), "You've exceeded the Rate Limit.");
        assert_eq!(api_message(br#"{"error":"coin not found"}"#), "coin not found");
        assert_eq!(api_message(b"<html>bad gateway</html>"), "<html>bad gateway</html>");
        assert_eq!(api_message(b""), "(empty body)");
    }

    #[test]
    fn api_keys_are_never_printed() {
        let key = ApiKey::new("CG-secret".into());
        assert!(!format!("{key:?}").contains("secret"));
    }
}
