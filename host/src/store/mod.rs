//! Object storage for snapshots: a local folder or an S3 bucket, behind one small interface.
//!
//! Keys are `/`-separated relative paths, checked once by [`Key::new`] so nothing from outside
//! (an event, a manifest, a prefix on the command line) can reach above the store's root. Writes
//! are atomic in both stores: a reader sees the whole object or none of it.

mod local;
mod s3;

use std::fmt;
use std::path::PathBuf;

pub use local::LocalStore;
pub use s3::{S3Options, S3Store};

/// A checked object key: non-empty segments of `[A-Za-z0-9._=-]`, none of them `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key:?} is not a valid object key: {reason}")]
pub struct BadKey {
    pub key: String,
    pub reason: &'static str,
}

impl Key {
    pub fn new(key: &str) -> Result<Self, BadKey> {
        let bad = |reason| Err(BadKey { key: key.to_owned(), reason });
        if key.is_empty() {
            return bad("it is empty");
        }
        if key.len() > 1024 {
            return bad("it is longer than 1024 bytes");
        }
        for segment in key.split('/') {
            if segment.is_empty() {
                return bad("it has an empty segment (a leading, trailing or doubled `/`)");
            }
            if segment == "." || segment == ".." {
                return bad("it has a `.` or `..` segment");
            }
            if !segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '=' | '-'))
            {
                return bad("only letters, digits and . _ = - are allowed between slashes");
            }
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This key with `child` (itself a valid key) appended.
    pub fn join(&self, child: &Key) -> Key {
        Key(format!("{}/{}", self.0, child.0))
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a store is, as given on the command line: a folder, or `s3://bucket[/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Local(PathBuf),
    S3 { bucket: String, prefix: Option<Key> },
}

impl StoreUrl {
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let Some(rest) = text.strip_prefix("s3://") else {
            if text.is_empty() {
                return Err(StoreError::BadUrl { url: text.into(), reason: "it is empty".into() });
            }
            return Ok(Self::Local(PathBuf::from(text)));
        };
        let (bucket, prefix) = match rest.split_once('/') {
            Some((bucket, prefix)) => (bucket, prefix.trim_end_matches('/')),
            None => (rest, ""),
        };
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !valid_bucket {
            return Err(StoreError::BadUrl {
                url: text.into(),
                reason: format!("{bucket:?} is not a valid S3 bucket name"),
            });
        }
        let prefix = if prefix.is_empty() {
            None
        } else {
            Some(
                Key::new(prefix)
                    .map_err(|e| StoreError::BadUrl { url: text.into(), reason: e.to_string() })?,
            )
        };
        Ok(Self::S3 { bucket: bucket.into(), prefix })
    }
}

/// What went wrong talking to a store. Says which store and which key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{url:?} is not a store: {reason}; give a folder or s3://bucket[/prefix]")]
    BadUrl { url: String, reason: String },
    #[error(transparent)]
    BadKey(#[from] BadKey),
    #[error("{location} does not exist")]
    NotFound { location: String },
    #[error("{location} is not in the store {store}; point --store at the store that holds it")]
    Elsewhere { location: String, store: String },
    #[error("could not {action} {location}: {message}")]
    Io { action: &'static str, location: String, message: String, transient: bool },
}

impl StoreError {
    /// Whether trying again later may succeed (throttling, timeouts, 5xx, dropped connections).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Io { transient: true, .. })
    }
}

/// A place to keep snapshots.
#[derive(Debug, Clone)]
pub enum Store {
    Local(LocalStore),
    S3(S3Store),
}

impl Store {
    /// Opens the store at `url`. S3 credentials and region come from the usual AWS environment.
    pub async fn open(url: &StoreUrl, s3: &S3Options) -> Result<Self, StoreError> {
        Ok(match url {
            StoreUrl::Local(root) => Store::Local(LocalStore::new(root.clone())),
            StoreUrl::S3 { bucket, prefix } => {
                Store::S3(S3Store::from_env(bucket.clone(), prefix.clone(), s3).await)
            }
        })
    }

    /// Writes `bytes` at `key`, replacing what was there, atomically.
    pub async fn put(
        &self,
        key: &Key,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        match self {
            Store::Local(store) => store.put(key, bytes).await,
            Store::S3(store) => store.put(key, bytes, content_type).await,
        }
    }

    pub async fn get(&self, key: &Key) -> Result<Vec<u8>, StoreError> {
        match self {
            Store::Local(store) => store.get(key).await,
            Store::S3(store) => store.get(key).await,
        }
    }

    /// Every key below `prefix`, sorted.
    pub async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        match self {
            Store::Local(store) => store.list(prefix).await,
            Store::S3(store) => store.list(prefix).await,
        }
    }

    /// The store's `bucket_name` in events: the bucket, or the folder of a local store.
    pub fn bucket_name(&self) -> String {
        match self {
            Store::Local(store) => store.root().display().to_string(),
            Store::S3(store) => store.bucket().to_owned(),
        }
    }

    /// The `file_name` of `key` in events: the object's full key in the bucket.
    pub fn object_name(&self, key: &Key) -> String {
        match self {
            Store::Local(_) => key.to_string(),
            Store::S3(store) => store.object_key(key),
        }
    }

    /// The key of the object an event names with `bucket_name` and `file_name`.
    pub fn key_for_object(&self, bucket_name: &str, file_name: &str) -> Result<Key, StoreError> {
        let elsewhere = || StoreError::Elsewhere {
            location: format!("{bucket_name}/{file_name}"),
            store: self.describe(),
        };
        match self {
            Store::Local(store) => {
                let same = std::path::Path::new(bucket_name) == store.root();
                if !same {
                    return Err(elsewhere());
                }
                Ok(Key::new(file_name)?)
            }
            Store::S3(store) => {
                if bucket_name != store.bucket() {
                    return Err(elsewhere());
                }
                store.key_within_prefix(file_name).ok_or_else(elsewhere)?
            }
        }
    }

    /// The key of the object at `location` (`s3://bucket/key`, or a path below a local store).
    pub fn key_for_location(&self, location: &str) -> Result<Key, StoreError> {
        let elsewhere =
            || StoreError::Elsewhere { location: location.to_owned(), store: self.describe() };
        match self {
            Store::Local(store) => {
                let relative = std::path::Path::new(location)
                    .strip_prefix(store.root())
                    .map_err(|_| elsewhere())?;
                Ok(Key::new(relative.to_str().ok_or_else(elsewhere)?)?)
            }
            Store::S3(_) => {
                let rest = location.strip_prefix("s3://").ok_or_else(elsewhere)?;
                let (bucket, key) = rest.split_once('/').ok_or_else(elsewhere)?;
                self.key_for_object(bucket, key)
            }
        }
    }

    /// The store itself, for people: a folder or `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        match self {
            Store::Local(store) => store.root().display().to_string(),
            Store::S3(store) => store.describe(),
        }
    }

    /// Where `key` is, for people and events: a path, or `s3://bucket/key`.
    pub fn location(&self, key: &Key) -> String {
        match self {
            Store::Local(store) => store.path(key).display().to_string(),
            Store::S3(store) => store.location(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_below_the_root() {
        assert!(Key::new("raw/dt=2026-11-27/raw_crypto_data_2026-11-27T10-00-00Z.json").is_ok());
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "a/", "./a", "a\\b", "a b", "ä", "a\0b"] {
            assert!(Key::new(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn store_urls() {
        assert_eq!(StoreUrl::parse("data").unwrap(), StoreUrl::Local("data".into()));
        assert_eq!(
            StoreUrl::parse("s3://cm--raw-data").unwrap(),
            StoreUrl::S3 { bucket: "cm--raw-data".into(), prefix: None }
        );
        assert_eq!(
            StoreUrl::parse("s3://bucket/team/etl/").unwrap(),
            StoreUrl::S3 { bucket: "bucket".into(), prefix: Some(Key::new("team/etl").unwrap()) }
        );
        for bad in ["s3://", "s3://Bucket", "s3://b", "s3://bucket/../x", ""] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
