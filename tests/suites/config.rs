//! The optional configuration file: defaults for the environment, which flags override.

use crypto_etl_test_support::sample;

use crate::common::crypto_etl;

#[test]
fn crypto_etl_toml_sets_defaults_that_flags_override() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("crypto-etl.toml"),
        "store = \"from-file\"\nwarehouse = \"duckdb:from-file.duckdb\"\n",
    )
    .unwrap();
    let source = sample("coins-markets.json");
    let run = |extra: &[&str]| {
        crypto_etl()
            .current_dir(dir.path())
            .args([
                "run",
                "--source",
                source.to_str().unwrap(),
                "--fetch-time",
                "2026-11-27T10-00-00Z",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let output = run(&[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("from-file/raw/dt=2026-11-27").is_dir());
    assert!(dir.path().join("from-file.duckdb").is_file());

    let output = run(&["--store", "from-flag"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("from-flag/raw/dt=2026-11-27").is_dir());

    // A secret in the file is refused before anything runs.
    std::fs::write(dir.path().join("bad.toml"), "[snowflake]\npassword = \"hunter2\"\n").unwrap();
    let output = run(&["--config-file", "bad.toml"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("secret") && !stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn vv_shows_the_timed_phases_and_library_debug_waits_for_vvv() {
    let dir = tempfile::tempdir().unwrap();
    let source = sample("coins-markets.json");
    let output = dir.path().join("out.csv");
    let debug_lines = |verbosity: &str| {
        let run = crypto_etl()
            .args([verbosity, "transform", "--input", source.to_str().unwrap()])
            .args(["--output", output.to_str().unwrap(), "--fetch-time", "2026-11-27T10-00-00Z"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(run.status.success(), "{stderr}");
        stderr.lines().filter(|l| l.contains("DEBUG")).map(str::to_owned).collect::<Vec<_>>()
    };
    let ours = debug_lines("-vv");
    assert!(ours.iter().any(|l| l.contains("plugin chain ran")), "{ours:#?}");
    // wasmtime's own debug lines (loading or compiling the plugins) only from -vvv on.
    let everything = debug_lines("-vvv");
    assert!(everything.len() > ours.len(), "-vvv added nothing to {ours:#?}");
}
