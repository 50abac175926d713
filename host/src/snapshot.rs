//! A snapshot's identity: when it was fetched, in the formats the original pipeline used.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::store::Key;

/// When a snapshot was fetched (UTC, whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FetchTime(DateTime<Utc>);

/// The format of fetch times in object keys and events: `2026-11-27T10-00-00Z`.
pub const KEY_FORMAT: &str = "%Y-%m-%dT%H-%M-%SZ";
/// Where raw snapshots live in a store.
pub const RAW_PREFIX: &str = "raw";
/// The original pipeline's name for a raw snapshot, before its fetch time.
const RAW_FILE_PREFIX: &str = "raw_crypto_data_";

/// The format of timestamps in the processed CSV: `2026-11-27T10:00:00`.
pub const CSV_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not a fetch time; write it as 2026-11-27T10-00-00Z (as in raw_crypto_data_<fetch_time>.json) or 2026-11-27T10:00:00Z"
)]
pub struct BadFetchTime(String);

impl FetchTime {
    pub fn now() -> Self {
        let since_epoch =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(0);
        Self::from_micros(seconds * 1_000_000).unwrap_or(Self(DateTime::UNIX_EPOCH))
    }

    pub fn from_micros(micros: i64) -> Option<Self> {
        DateTime::from_timestamp_micros(micros).map(Self)
    }

    /// Parses the key format (`2026-11-27T10-00-00Z`) or RFC 3339.
    pub fn parse(text: &str) -> Result<Self, BadFetchTime> {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, KEY_FORMAT) {
            return Ok(Self(naive.and_utc()));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|t| Self(t.with_timezone(&Utc)))
            .map_err(|_| BadFetchTime(text.to_owned()))
    }

    /// The fetch time in a raw object name such as `raw_crypto_data_2026-11-27T10-00-00Z.json`.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let stem = name.rsplit('/').next()?.strip_suffix(".json")?;
        let (_, time) = stem.rsplit_once('_')?;
        NaiveDateTime::parse_from_str(time, KEY_FORMAT).ok().map(|t| Self(t.and_utc()))
    }

    /// The fetch time of a raw snapshot object, `raw_crypto_data_<fetch_time>.json` exactly
    /// (not its `.meta.json` or the `/global` file beside it).
    pub fn from_raw_file_name(name: &str) -> Option<Self> {
        let time = name.strip_prefix(RAW_FILE_PREFIX)?.strip_suffix(".json")?;
        NaiveDateTime::parse_from_str(time, KEY_FORMAT).ok().map(|t| Self(t.and_utc()))
    }

    /// The UTC date, as in the `dt=` partition.
    pub fn date(&self) -> chrono::NaiveDate {
        self.0.date_naive()
    }

    pub fn micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// As in object keys: `2026-11-27T10-00-00Z`.
    pub fn key(&self) -> String {
        self.0.format(KEY_FORMAT).to_string()
    }
}

/// Where a snapshot's objects live in a store, below `raw/dt=<date>/`, with the original
/// pipeline's file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawKeys {
    /// The coins, as received: `raw_crypto_data_<fetch_time>.json`.
    pub coins: Key,
    /// What was fetched, when and from where: `raw_crypto_data_<fetch_time>.meta.json`.
    pub meta: Key,
    /// CoinGecko `/global`, when fetched: `global_crypto_data_<fetch_time>.json`.
    pub global: Key,
}

/// Where the transform's outputs for a snapshot live, below `processed/dt=<date>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedKeys {
    /// `processed_crypto_data_<fetch_time>.csv`, as the original pipeline named it.
    pub csv: Key,
    /// Rows set aside, with reasons: `processed_crypto_data_<fetch_time>.rejected.jsonl`.
    pub quarantine: Key,
    /// Column types, plugins and counts, for the load: `processed_crypto_data_<fetch_time>.schema.json`.
    pub schema: Key,
}

impl ProcessedKeys {
    /// The quarantine and schema keys that go with a processed CSV key.
    pub fn for_csv(csv: &Key) -> Option<Self> {
        let stem = csv.as_str().strip_suffix(".csv")?;
        Some(Self {
            csv: csv.clone(),
            quarantine: Key::new(&format!("{stem}.rejected.jsonl")).ok()?,
            schema: Key::new(&format!("{stem}.schema.json")).ok()?,
        })
    }
}

impl FetchTime {
    /// The keys of the transform's outputs for the snapshot fetched at this time.
    pub fn processed_keys(&self) -> ProcessedKeys {
        let csv =
            format!("{}/processed_crypto_data_{}.csv", self.partition("processed"), self.key());
        // Built from digits, letters and `-=_/.`: always a valid key with a `.csv` suffix.
        let csv = Key::new(&csv).unwrap_or_else(|e| unreachable!("{e}"));
        ProcessedKeys::for_csv(&csv).unwrap_or_else(|| unreachable!("{csv} ends in .csv"))
    }

    /// `<area>/dt=YYYY-MM-DD`: the date partition of this fetch time.
    fn partition(&self, area: &str) -> String {
        format!("{area}/dt={}", self.0.format("%Y-%m-%d"))
    }

    /// The keys of the snapshot fetched at this time.
    pub fn raw_keys(&self) -> RawKeys {
        let dir = self.partition(RAW_PREFIX);
        let time = self.key();
        // Made of digits, letters, `-`, `=` and `_` only: always valid keys.
        let key = |name: String| {
            Key::new(&format!("{dir}/{name}")).unwrap_or_else(|e| unreachable!("{e}"))
        };
        RawKeys {
            coins: key(format!("{RAW_FILE_PREFIX}{time}.json")),
            meta: key(format!("{RAW_FILE_PREFIX}{time}.meta.json")),
            global: key(format!("global_crypto_data_{time}.json")),
        }
    }
}

impl fmt::Display for FetchTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format(CSV_FORMAT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_original_formats() {
        let t = FetchTime::parse("2026-11-27T10-00-00Z").unwrap();
        assert_eq!(t.key(), "2026-11-27T10-00-00Z");
        assert_eq!(t.to_string(), "2026-11-27T10:00:00");
        assert_eq!(FetchTime::parse("2026-11-27T10:00:00Z").unwrap(), t);
        assert_eq!(
            FetchTime::from_file_name(
                "raw/dt=2026-11-27/raw_crypto_data_2026-11-27T10-00-00Z.json"
            ),
            Some(t)
        );
        assert_eq!(FetchTime::from_file_name("markets.json"), None);
        assert!(
            FetchTime::parse("yesterday").unwrap_err().to_string().contains("2026-11-27T10-00-00Z")
        );
    }

    #[test]
    fn processed_keys_sit_beside_each_other() {
        let keys = FetchTime::parse("2026-11-27T10-00-00Z").unwrap().processed_keys();
        assert_eq!(
            keys.csv.as_str(),
            "processed/dt=2026-11-27/processed_crypto_data_2026-11-27T10-00-00Z.csv"
        );
        assert_eq!(
            keys.schema.as_str(),
            "processed/dt=2026-11-27/processed_crypto_data_2026-11-27T10-00-00Z.schema.json"
        );
        assert_eq!(ProcessedKeys::for_csv(&keys.csv), Some(keys));
    }

    #[test]
    fn raw_keys_keep_the_original_names_under_date_partitions() {
        let keys = FetchTime::parse("2026-11-27T10-00-00Z").unwrap().raw_keys();
        assert_eq!(
            keys.coins.as_str(),
            "raw/dt=2026-11-27/raw_crypto_data_2026-11-27T10-00-00Z.json"
        );
        assert_eq!(
            keys.meta.as_str(),
            "raw/dt=2026-11-27/raw_crypto_data_2026-11-27T10-00-00Z.meta.json"
        );
        assert_eq!(
            keys.global.as_str(),
            "raw/dt=2026-11-27/global_crypto_data_2026-11-27T10-00-00Z.json"
        );
    }
}
