//! Builds the test plugins (and the example plugin) so tests can load them by path.

use std::path::{Path, PathBuf};

fn main() {
    // Read when the script runs, not when it was compiled: a cached build script may come from a
    // checkout in another folder.
    let support = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"));
    let support = support.as_path();
    let workspace =
        support.parent().and_then(Path::parent).expect("tests/support is two levels deep");
    let plugins = [
        ("misbehave", workspace.join("tests/plugins/misbehave")),
        ("not-a-plugin", workspace.join("tests/plugins/not-a-plugin")),
        ("future-interface", workspace.join("tests/plugins/future-interface")),
        ("price-range", workspace.join("plugins/examples/price-range")),
    ];
    let names: Vec<&str> = plugins.iter().map(|(n, _)| *n).collect();
    let watch: Vec<&Path> = plugins.iter().map(|(_, p)| p.as_path()).collect();
    let built = crypto_etl_wasm_build::build(workspace, &names, &watch);
    for (name, path) in names.iter().zip(built) {
        let var = format!("TEST_PLUGIN_{}", name.to_uppercase().replace('-', "_"));
        println!("cargo:rustc-env={var}={}", path.display());
    }
    println!("cargo:rustc-env=CRYPTO_ETL_WORKSPACE={}", workspace.display());
}
