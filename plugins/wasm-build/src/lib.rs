//! Compiles plugin crates of this workspace to `wasm32-wasip2` components from a build script.
//!
//! The host embeds the default plugins and the test crate needs its test plugins, so both build
//! scripts call [`build`]. It runs a nested `cargo build --release --target wasm32-wasip2` with its
//! own target directory (so it never waits on the lock the outer build holds), installs the
//! target through rustup when it is missing, and tells cargo to re-run when plugin sources change.
//!
//! Each component is copied into the calling build script's `OUT_DIR` and used from there.
//! Watching the nested build's own files instead made every build after a plugin change run the
//! script again (and so compile the host again, minutes in release): cargo takes a watched file
//! written while the script runs as changed since that run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every plugin is compiled for.
pub const TARGET: &str = "wasm32-wasip2";

/// Builds `packages` (names of workspace crates) and returns the path of each package's `.wasm`
/// in `OUT_DIR`, in order.
///
/// `workspace` is the workspace root; `watch` are extra paths whose changes should trigger a
/// rebuild (the WIT folder, the SDK, and the workspace's manifest and lockfile, whose profiles
/// and versions the nested build uses too, are always watched). Panics with a readable message
/// on failure, which is how a build script reports errors.
pub fn build(workspace: &Path, packages: &[&str], watch: &[&Path]) -> Vec<PathBuf> {
    let always = ["wit", "plugins/sdk", "Cargo.toml", "Cargo.lock"].map(|p| workspace.join(p));
    for path in always {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for path in watch {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    ensure_target_installed();

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm-plugins");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for package in packages {
        command.args(["--package", package]);
    }
    // Settings meant for the outer (native) build must not leak into the wasm one.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        command.env_remove(var);
    }
    let status = command.status().unwrap_or_else(|e| panic!("could not run cargo: {e}"));
    assert!(status.success(), "building plugins {packages:?} for {TARGET} failed (see above)");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("called from a build script"));
    packages
        .iter()
        .map(|package| {
            let file = format!("{}.wasm", package.replace('-', "_"));
            let built = target_dir.join(TARGET).join("release").join(&file);
            assert!(built.exists(), "cargo built {package} but {} is missing", built.display());
            let copy = out_dir.join(&file);
            std::fs::copy(&built, &copy).unwrap_or_else(|e| {
                panic!("could not copy {} to {}: {e}", built.display(), copy.display())
            });
            copy
        })
        .collect()
}

/// Adds the wasm target through rustup when the toolchain lacks it, or explains how to.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let installed = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .is_some_and(|dir| dir.exists());
    if installed {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (plugins compile to it)");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        added,
        "the {TARGET} target is missing and `rustup target add {TARGET}` failed; install it and build again"
    );
}
