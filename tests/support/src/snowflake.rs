//! A Snowflake stand-in on loopback: `fakesnow` (PyPI, Snowflake's SQL run on DuckDB) in server
//! mode, behind `tests/support/fakesnow/bridge.py`, which bridges what fakesnow and the Rust
//! client disagree on (see its docstring). Started by the test itself with the Python named by
//! `CRYPTO_ETL_PYTHON`, which scripts/test points at a virtual environment holding
//! `tests/support/fakesnow/requirements.txt`. Stops when dropped.
//!
//! Any user and account sign in; the password must be the one the server was started with, and
//! a wrong one is refused as Snowflake refuses it (code 390100). Each server is its own process
//! with its own in-memory databases, so tests that start their own do not see each other's
//! tables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

/// The account to sign in with (fakesnow accepts any).
pub const ACCOUNT: &str = "fakesnow";
/// The user to sign in with (fakesnow accepts any).
pub const USER: &str = "crypto_etl_test";

/// What the bridge prints on stdout once it accepts connections, before its address.
const READY: &str = "listening on ";

/// Importing fakesnow (DuckDB, pyarrow, sqlglot) takes a few seconds, more on a busy machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);

/// Tells apart the scratch folders of the servers one test process starts.
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// A running fakesnow server; the process is killed, and its scratch folder removed, when this
/// is dropped.
#[derive(Debug)]
pub struct FakeSnowflake {
    addr: SocketAddr,
    password: String,
    output: Arc<Mutex<String>>,
    child: Child,
    /// Held open: the bridge runs with `--watch-stdin`, so it exits by itself when this test
    /// process ends without dropping us (a crash, an abort), instead of lingering.
    _stdin: Option<ChildStdin>,
    /// The bridge's working folder and TMPDIR (fakesnow makes a folder for internal stages in
    /// the temporary folder at import and never removes it).
    scratch: PathBuf,
}

impl FakeSnowflake {
    /// Starts a server on a free loopback port whose only password is `password`, with its
    /// databases in memory, and waits until it accepts connections.
    ///
    /// Panics, with the server's output, if it cannot start.
    pub async fn start(password: &str) -> Self {
        Self::launch(password, None).await
    }

    /// As [`FakeSnowflake::start`], but keeps each database as a file `<dir>/<NAME>.db`, so its
    /// tables can be inspected after the test (or outlive the server).
    pub async fn start_with_db_path(password: &str, dir: &Path) -> Self {
        Self::launch(password, Some(dir)).await
    }

    async fn launch(password: &str, db_path: Option<&Path>) -> Self {
        let python = std::env::var_os("CRYPTO_ETL_PYTHON").unwrap_or_else(|| {
            panic!(
                "CRYPTO_ETL_PYTHON is not set; the Snowflake tests need a Python with {} \
                 installed (scripts/test sets one up and exports CRYPTO_ETL_PYTHON)",
                requirements().display()
            )
        });
        let bridge = bridge();
        let scratch = std::env::temp_dir().join(format!(
            "crypto-etl-fakesnow-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&scratch)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", scratch.display()));
        let mut command = Command::new(&python);
        command
            .arg(&bridge)
            .args(["--port", "0", "--password", password, "--watch-stdin"])
            .current_dir(&scratch)
            .env("TMPDIR", &scratch)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Also when a test gives up on `start` halfway (a timeout drops the future).
            .kill_on_drop(true);
        if let Some(dir) = db_path {
            command.arg("--db-path").arg(dir);
        }
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run CRYPTO_ETL_PYTHON={} {}: {e}",
                Path::new(&python).display(),
                bridge.display()
            )
        });

        let output = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = oneshot::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let stdout_task = tokio::spawn(watch_stdout(stdout, ready_tx, Arc::clone(&output)));
        let stderr_task = tokio::spawn(collect(stderr, Arc::clone(&output)));

        let failure = match tokio::time::timeout(STARTUP_TIMEOUT, ready_rx).await {
            Ok(Ok(addr)) => {
                return Self {
                    addr,
                    password: password.to_owned(),
                    output,
                    _stdin: child.stdin.take(),
                    child,
                    scratch,
                };
            }
            // stdout closed before the ready line: the bridge exited.
            Ok(Err(_)) => match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                Ok(Ok(status)) => format!("exited ({status}) before it was ready"),
                _ => "closed its output before it was ready".to_owned(),
            },
            Err(_) => {
                let _ = child.kill().await;
                format!("was not ready within {} s", STARTUP_TIMEOUT.as_secs())
            }
        };
        // Its output is complete once both pipes are closed.
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            let _ = stdout_task.await;
            let _ = stderr_task.await;
        })
        .await;
        let _ = std::fs::remove_dir_all(&scratch);
        let output = output.lock().map(|o| o.clone()).unwrap_or_default();
        panic!(
            "the fakesnow bridge ({} {}) {failure}; its output:\n{output}",
            Path::new(&python).display(),
            bridge.display()
        );
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, for `EndpointConfig::custom_base_url`: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The password it accepts.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The environment a `crypto-etl` process needs to load into this server (the
    /// `SNOWFLAKE_*` settings of host/src/load/snowflake.rs).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SNOWFLAKE_ACCOUNT", ACCOUNT.into()),
            ("SNOWFLAKE_USER", USER.into()),
            ("SNOWFLAKE_PASSWORD", self.password.clone()),
            ("SNOWFLAKE_ENDPOINT", self.url()),
        ]
    }

    /// What the server has printed so far (requests, the SQL fakesnow ran and its errors), to
    /// show when a test fails.
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

impl Drop for FakeSnowflake {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// `tests/support/fakesnow/bridge.py`.
pub fn bridge() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fakesnow").join("bridge.py")
}

/// The Python packages the bridge needs.
pub fn requirements() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fakesnow").join("requirements.txt")
}

/// Copies the bridge's stdout into `output` and sends the address of its ready line.
async fn watch_stdout(
    stdout: impl AsyncRead + Unpin,
    ready: oneshot::Sender<SocketAddr>,
    output: Arc<Mutex<String>>,
) {
    let mut ready = Some(ready);
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    while matches!(reader.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if let Some(addr) = text.strip_prefix(READY).and_then(|a| a.parse().ok())
            && let Some(ready) = ready.take()
        {
            let _ = ready.send(addr);
        }
        append(&output, text);
        line.clear();
    }
}

/// Copies the bridge's stderr into `output` (which also keeps the pipe from filling up).
async fn collect(stderr: impl AsyncRead + Unpin, output: Arc<Mutex<String>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    // Byte lines rather than `lines()`: a traceback with a stray non-UTF-8 byte must not end it.
    while matches!(reader.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
        append(&output, String::from_utf8_lossy(&line).trim_end_matches('\n'));
        line.clear();
    }
}

fn append(output: &Mutex<String>, line: &str) {
    if let Ok(mut output) = output.lock() {
        output.push_str(line);
        output.push('\n');
    }
}
