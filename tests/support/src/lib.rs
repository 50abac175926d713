//! Shared by the integration tests: where things are, and the test plugins built to wasm.

use std::path::{Path, PathBuf};

pub mod coingecko;
pub mod lambda;
pub mod s3;
pub mod snowflake;

/// Test plugin components, built by this crate's build script.
pub mod plugins {
    /// Misbehaves as its `do` setting says (see tests/plugins/misbehave).
    pub const MISBEHAVE: &str = env!("TEST_PLUGIN_MISBEHAVE");
    /// A component that is not a plugin.
    pub const NOT_A_PLUGIN: &str = env!("TEST_PLUGIN_NOT_A_PLUGIN");
    /// A plugin of interface version 0.2.0, which no host accepts yet.
    pub const FUTURE_INTERFACE: &str = env!("TEST_PLUGIN_FUTURE_INTERFACE");
    /// The example plugin of plugins/examples.
    pub const PRICE_RANGE: &str = env!("TEST_PLUGIN_PRICE_RANGE");
}

/// The workspace root.
pub fn workspace() -> &'static Path {
    Path::new(env!("CRYPTO_ETL_WORKSPACE"))
}

/// `shared/` beside the checkout (override with `CRYPTO_ETL_SHARED`).
pub fn shared() -> PathBuf {
    std::env::var_os("CRYPTO_ETL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("..").join("shared"))
}

/// The real CoinGecko responses, read in place.
pub fn coingecko_fixture(name: &str) -> PathBuf {
    let path = shared().join("fixtures").join("coingecko").join(name);
    assert!(
        path.exists(),
        "fixture {} is missing; is shared/ beside the checkout?",
        path.display()
    );
    path
}

/// Every `/coins/markets` fixture.
pub fn markets_fixtures() -> Vec<PathBuf> {
    let dir = shared().join("fixtures").join("coingecko");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.starts_with("markets-") && name.ends_with(".json")
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no markets-*.json fixtures in {}", dir.display());
    found
}

/// The project's own hand-written samples.
pub fn sample(name: &str) -> PathBuf {
    workspace().join("samples").join(name)
}

/// The Python that has the reference tools' requirements (`CRYPTO_ETL_PYTHON`, set by
/// scripts/test to its virtual environment; `python3` otherwise).
pub fn python() -> String {
    std::env::var("CRYPTO_ETL_PYTHON").unwrap_or_else(|_| "python3".into())
}
