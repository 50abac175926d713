//! The plugin author's loop, end to end: `plugin new`, the crate's own tests, a build to a
//! wasm32-wasip2 component, and `plugin test` showing the new column.

use std::path::{Path, PathBuf};
use std::process::Command;

use crypto_etl_test_support::{sample, workspace};

use crate::common::run;

/// The toolchain the workspace pins (rust-toolchain.toml), for crates created outside it.
fn toolchain() -> String {
    let text = std::fs::read_to_string(workspace().join("rust-toolchain.toml")).unwrap();
    let line = text.lines().find(|l| l.trim_start().starts_with("channel")).unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

fn cargo(dir: &Path, args: &[&str]) {
    // Shares compiled dependencies with the build of the bundled plugins.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("..").join("wasm-plugins");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTUP_TOOLCHAIN", toolchain())
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .unwrap();
    assert!(status.success(), "cargo {args:?} in {}", dir.display());
}

#[test]
fn from_plugin_new_to_a_new_column_in_plugin_test() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir: PathBuf = dir.path().join("supply-ratio");
    let (_, code, stdout, stderr) =
        run(&["plugin", "new", "supply-ratio", "--dir", crate_dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("cargo build --release --target wasm32-wasip2"), "{stdout}");

    // The crate builds as it is, and its own test passes.
    cargo(&crate_dir, &["test", "--quiet"]);
    cargo(&crate_dir, &["build", "--release", "--target", "wasm32-wasip2", "--quiet"]);
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("..").join("wasm-plugins");
    let wasm = target.join("wasm32-wasip2/release/supply_ratio.wasm");
    assert!(wasm.exists(), "{}", wasm.display());

    let (_, code, stdout, stderr) = run(&[
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--input",
        sample("coins-markets.json").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("plugin     supply-ratio 0.1.0"), "{stdout}");
    assert!(stdout.contains("reads      current_price (Float64), market_cap (Int64)"), "{stdout}");
    assert!(stdout.contains("writes     supply_ratio (Float64)"), "{stdout}");
    assert!(stdout.contains("rejected   0 rows"), "{stdout}");
    // The table: a header with the new column, and bitcoin's value computed.
    let header = stdout.lines().find(|l| l.starts_with("id ")).expect("a table");
    assert!(header.contains("supply_ratio"), "{stdout}");
    let bitcoin = stdout.lines().find(|l| l.starts_with("bitcoin ")).expect("bitcoin's row");
    let value: f64 = bitcoin.split_whitespace().last().unwrap().parse().unwrap();
    assert!(value > 0.0, "{bitcoin}");

    // A plugin that panics is reported as production would report it.
    let (_, code, _, stderr) = run(&[
        "plugin",
        "test",
        crypto_etl_test_support::plugins::MISBEHAVE,
        "--input",
        sample("coins-markets.json").to_str().unwrap(),
        "--config",
        "do=panic",
    ]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("misbehave") && stderr.contains("panic"), "{stderr}");
}
