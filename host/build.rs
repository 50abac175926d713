//! Compiles the default plugins to WebAssembly so the host can embed them (`plugin::builtin`).

use std::path::{Path, PathBuf};

fn main() {
    // Read when the script runs, not when it was compiled: a cached build script may come from a
    // checkout in another folder.
    let host = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"));
    let workspace = host.parent().expect("host/ sits inside the workspace");
    let packages = ["clean", "market-share"];
    let watch: Vec<_> = packages.iter().map(|p| workspace.join("plugins").join(p)).collect();
    let watch: Vec<&Path> = watch.iter().map(|p| p.as_path()).collect();
    let built = crypto_etl_wasm_build::build(workspace, &packages, &watch);
    for (package, path) in packages.iter().zip(built) {
        let var = format!("CRYPTO_ETL_BUILTIN_{}", package.to_uppercase().replace('-', "_"));
        println!("cargo:rustc-env={var}={}", path.display());
    }
}
