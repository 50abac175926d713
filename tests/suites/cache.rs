//! Compiled plugins are cached on disk by content hash and engine, reused across processes, and
//! a damaged cache entry is recompiled rather than trusted.

use crypto_etl::plugin::{Limits, Runtime, TransformPlugin};
use crypto_etl_test_support::plugins;

use crate::common::{entries, sha256_hex};

#[test]
fn compiled_plugins_are_reused_and_damaged_entries_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(plugins::PRICE_RANGE).unwrap();
    let sha = sha256_hex(&wasm);
    let load = || {
        let runtime = Runtime::new(Limits::default(), Some(dir.path().to_owned())).unwrap();
        let plugin = runtime.load(&wasm, "price_range.wasm").unwrap();
        assert_eq!(plugin.info().name, "price-range");
        assert_eq!(plugin.sha256(), sha);
    };

    load();
    let files = entries(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with(&format!("{sha}-")) && files[0].ends_with(".cwasm"), "{files:?}");
    let entry = dir.path().join(&files[0]);
    let written = std::fs::metadata(&entry).unwrap().modified().unwrap();

    // A second process finds it and does not compile again (the entry is not rewritten).
    std::thread::sleep(std::time::Duration::from_millis(20));
    load();
    assert_eq!(std::fs::metadata(&entry).unwrap().modified().unwrap(), written);

    // A damaged entry is not trusted: the plugin is compiled again and the entry replaced.
    std::fs::write(&entry, b"garbage").unwrap();
    load();
    assert!(std::fs::metadata(&entry).unwrap().len() > 1000);
    assert_eq!(entries(dir.path()).len(), 1);
}
