//! `crypto-etl extract`

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Args;
use crypto_etl::extract::{
    ApiKey, ApiPlan, ClientConfig, CoinGecko, ExtractError, ExtractEvent, ExtractRequest,
    Extracted, RetryPolicy, extract,
};
use crypto_etl::snapshot::FetchTime;
use crypto_etl::store::Store;
use indicatif::{ProgressBar, ProgressStyle};

use super::{Code, Failure, StoreArgs};

const EXAMPLES: &str = "\
Examples:
  # The top 500 coins in USD into ./data (the original pipeline's request)
  crypto-etl extract

  # The top 100 in EUR with 1h/24h/7d changes and market totals, into S3
  crypto-etl extract --top 100 --currency eur --price-change 1h,24h,7d --global \\
      --store s3://my-bucket/crypto

  # Against a proxy or a recorded API
  COINGECKO_BASE_URL=http://127.0.0.1:8080/api/v3 crypto-etl extract --store /tmp/snapshots";

/// Fetch the top coins from CoinGecko and store the raw snapshot exactly as received.
///
/// Stores raw/dt=<date>/raw_crypto_data_<fetch_time>.json (and its .meta.json, and /global with
/// --global) in the store, then prints the event the next stage takes: status, file_path,
/// fetch_time and counts. Rate limits (429) and server errors are retried; if a page still
/// fails, nothing is stored.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ExtractArgs {
    #[command(flatten)]
    source: SourceArgs,

    /// The snapshot's fetch time [default: now].
    #[arg(long, value_name = "TIME", value_parser = FetchTime::parse)]
    fetch_time: Option<FetchTime>,

    #[command(flatten)]
    store: StoreArgs,
}

/// What to fetch from CoinGecko and how, shared by `extract` and `run`.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// How many coins, by market cap.
    #[arg(long, default_value_t = 500)]
    top: usize,

    /// Quote currency.
    #[arg(long, default_value = "usd", value_parser = super::currency)]
    pub currency: String,

    /// Price change windows CoinGecko adds (its price_change_percentage parameter).
    #[arg(long, value_name = "WINDOWS", default_value = "24h")]
    price_change: String,

    /// Also fetch /global (whole-market totals), stored beside the snapshot.
    #[arg(long)]
    global: bool,

    /// CoinGecko API key (sent in a header, never logged).
    #[arg(long, env = "COINGECKO_API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// Which API the key belongs to.
    #[arg(long, value_name = "demo|pro", env = "COINGECKO_API_PLAN", default_value = "demo")]
    api_plan: ApiPlan,

    /// API root [default: the plan's public host].
    #[arg(long, value_name = "URL", env = "COINGECKO_BASE_URL")]
    base_url: Option<String>,

    /// Attempts per request before giving up.
    #[arg(long, default_value_t = 5)]
    max_attempts: usize,

    /// Time one request may take with all its retries, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    time_budget: u64,

    /// Time one HTTP exchange may take, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    request_timeout: u64,

    /// Least time between requests, in milliseconds [default: the plan's rate limit].
    #[arg(long, value_name = "MS")]
    min_interval_ms: Option<u64>,
}

impl SourceArgs {
    fn client(&self) -> Result<CoinGecko, Failure> {
        let api_key = self.api_key.clone().filter(|k| !k.is_empty()).map(ApiKey::new);
        let config = ClientConfig {
            plan: self.api_plan,
            base_url: self
                .base_url
                .clone()
                .unwrap_or_else(|| self.api_plan.default_base_url().to_owned()),
            min_interval: self
                .min_interval_ms
                .map(Duration::from_millis)
                .unwrap_or_else(|| self.api_plan.default_interval(api_key.is_some())),
            api_key,
            retry: RetryPolicy {
                max_attempts: self.max_attempts.max(1),
                budget: Duration::from_secs(self.time_budget),
                request_timeout: Duration::from_secs(self.request_timeout),
                ..RetryPolicy::default()
            },
        };
        CoinGecko::new(config).map_err(failure)
    }

    fn request(&self) -> ExtractRequest {
        ExtractRequest {
            top: self.top,
            currency: self.currency.clone(),
            price_change_percentage: self.price_change.clone(),
            include_global: self.global,
        }
    }

    /// Fetches and stores a snapshot, showing progress on a terminal.
    pub async fn extract(
        &self,
        store: &Store,
        fetch_time: FetchTime,
        quiet: bool,
    ) -> Result<Extracted, Failure> {
        let client = self.client()?;
        let request = self.request();
        let progress = if !quiet && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(request.top as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} fetching {pos}/{len} coins {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut on_event = |event: ExtractEvent| match event {
            ExtractEvent::Page { page, pages, coins } => {
                progress.set_position(coins as u64);
                progress.set_message(format!("(page {page} of up to {pages})"));
            }
            ExtractEvent::Retry(notice) => {
                let line = format!(
                    "{} failed (attempt {}): {}; retrying in {:.1} s",
                    notice.what,
                    notice.attempt,
                    notice.reason,
                    notice.wait.as_secs_f64()
                );
                progress.suspend(|| tracing::warn!("{line}"));
            }
        };
        let extracted =
            extract(&client, store, &request, fetch_time, &mut on_event).await.map_err(failure);
        progress.finish_and_clear();
        extracted
    }
}

pub fn run(args: ExtractArgs, quiet: bool) -> Result<(), Failure> {
    let fetch_time = args.fetch_time.unwrap_or_else(FetchTime::now);
    let runtime = super::tokio_runtime()?;
    let extracted = runtime.block_on(async {
        let store = args.store.open().await?;
        args.source.extract(&store, fetch_time, quiet).await
    })?;
    let json = serde_json::to_string_pretty(&extracted)
        .map_err(|e| Failure::new(Code::Internal, e.to_string()))?;
    let _ = writeln!(std::io::stdout().lock(), "{json}");
    Ok(())
}

pub fn failure(error: ExtractError) -> Failure {
    let nothing = "no snapshot was stored";
    match &error {
        ExtractError::Config(_) => Failure::new(Code::BadInput, error.to_string()),
        ExtractError::Unauthorized { .. } => Failure::new(Code::Source, error.to_string()).hint(format!(
            "{nothing}; check COINGECKO_API_KEY and COINGECKO_API_PLAN (demo keys go to the public API, pro keys to pro-api)"
        )),
        ExtractError::GaveUp { .. } | ExtractError::Http { .. } => Failure::new(Code::Source, error.to_string())
            .hint(format!("{nothing}; CoinGecko or the network is struggling: try again later, or raise --max-attempts / --time-budget")),
        ExtractError::Refused { .. } | ExtractError::UnexpectedBody { .. } => {
            Failure::new(Code::Source, error.to_string()).hint(format!("{nothing}; check --currency, --price-change and the API root"))
        }
        ExtractError::Store(_) => Failure::new(Code::Output, error.to_string())
            .hint("check the --store location and its credentials; no partial snapshot was left"),
    }
}
