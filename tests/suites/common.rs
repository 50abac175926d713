//! Helpers shared by the suites.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// The `crypto-etl` binary under test.
pub fn crypto_etl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crypto-etl"));
    // One compiled-plugin cache for the whole test run, away from the user's.
    command.env("CRYPTO_ETL_CACHE_DIR", cache_dir()).env_remove("CRYPTO_ETL_LOG");
    command
}

pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// Runs the binary; returns its output, exit code, stdout and stderr.
pub fn run(args: &[&str]) -> (Output, i32, String, String) {
    let output = crypto_etl().args(args).output().expect("run crypto-etl");
    let code = output.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, code, stdout, stderr)
}

/// Runs the binary with extra environment variables; returns its exit code, stdout and stderr.
pub fn run_with_env(env: &[(&str, String)], args: &[&str]) -> (i32, String, String) {
    let output = crypto_etl()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .output()
        .expect("run crypto-etl");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The rows of a CSV file as maps from column name to text.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let headers: Vec<String> =
        reader.headers().expect("header").iter().map(str::to_owned).collect();
    let rows = reader
        .records()
        .map(|r| {
            let record = r.expect("record");
            headers.iter().cloned().zip(record.iter().map(str::to_owned)).collect()
        })
        .collect();
    (headers, rows)
}

/// Lines of the quarantine file, parsed.
pub fn read_quarantine(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("quarantine line is JSON"))
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The names of every entry of `dir`, sorted: to prove nothing (not even a temp file) was left.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Copies a plugin into `dir` and writes a manifest that runs `clean` and then it with `config`.
pub fn manifest_after_clean(dir: &Path, wasm: &str, config: &str) -> PathBuf {
    let bytes = std::fs::read(wasm).expect("read test plugin");
    let file = Path::new(wasm).file_name().expect("file name").to_string_lossy().into_owned();
    std::fs::create_dir_all(dir.join("plugins")).expect("mkdir");
    std::fs::write(dir.join("plugins").join(&file), &bytes).expect("copy plugin");
    let manifest = dir.join("pipeline.toml");
    let text = format!(
        "[[plugin]]\nbuiltin = \"clean\"\n\n[[plugin]]\npath = \"plugins/{file}\"\nsha256 = \"{}\"\nconfig = {{ {config} }}\n",
        sha256_hex(&bytes)
    );
    std::fs::write(&manifest, text).expect("write manifest");
    manifest
}
