//! A plugin that misbehaves on purpose, in the way its `do` setting names, so the tests can show
//! that the host stops it with a named error and writes nothing.

use crypto_etl_plugin_sdk::prelude::*;

const BEHAVIOURS: [&str; 17] = [
    "panic",
    "spin",
    "memory",
    "short-column",
    "undeclared-column",
    "wrong-type",
    "bad-name",
    "reject-undeclared",
    "snoop",
    "plan-panic",
    "guest-error",
    "nan",
    "overwrite",
    "read-missing",
    "read-past-end",
    "scribble",
    "scavenge",
];

/// What `scribble` fills memory with and `scavenge` looks for.
const MARKER: u64 = 0x5ec2_e7c0_ffee_d00d;

struct Misbehave;

impl Plugin for Misbehave {
    fn info() -> PluginInfo {
        plugin_info!("Misbehaves on purpose (test plugin)")
    }

    fn plan(config: &Config, _schema: &Schema) -> Result<Plan, PluginError> {
        let behaviour = config.choice("do", &BEHAVIOURS)?;
        let plan = Plan::new().reads("id", ColumnType::Text);
        Ok(match behaviour {
            "plan-panic" => panic!("deliberate panic while planning"),
            "bad-name" => {
                plan.writes("x\"; DROP TABLE crypto_data; --", ColumnType::Float64, "evil")
            }
            "snoop" => plan.writes("observed", ColumnType::Text, "what the sandbox let through"),
            "overwrite" => plan.writes("id", ColumnType::Text, "clobbers id without saying so"),
            "read-missing" => plan.reads("no_such_column", ColumnType::Float64),
            "scavenge" => plan.writes("leftover", ColumnType::Float64, "marker words found"),
            _ => plan.writes("x", ColumnType::Float64, "a number"),
        })
    }

    fn transform(input: &Input) -> Result<Output, PluginError> {
        let rows = input.rows();
        let ones = || (0..rows).map(|_| Some(1.0));
        let behaviour = input.config().get("do").unwrap_or_default();
        Ok(match behaviour {
            "panic" => panic!("deliberate panic in transform"),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 8 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "short-column" => Output::new().column(Column::float64("x", ones().skip(1))),
            "undeclared-column" => Output::new()
                .column(Column::float64("x", ones()))
                .column(Column::float64("y", ones())),
            "wrong-type" => Output::new().column(Column::text("x", (0..rows).map(|_| Some("one")))),
            "reject-undeclared" => {
                let mut output = Output::new().column(Column::float64("x", ones()));
                output.reject(0, "not declared");
                output
            }
            "snoop" => {
                let files = std::fs::read_dir("/").map(|d| d.count().to_string());
                let env = std::env::vars().count();
                let net = std::net::TcpStream::connect("127.0.0.1:9");
                let clock = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as i64);
                let columns = input.column_names().collect::<Vec<_>>().join("+");
                let seen = format!(
                    "columns={columns} fs={} env={env} net={} clock={}",
                    files.map_or_else(|e| format!("denied ({e})"), |n| format!("{n} entries")),
                    net.map_or_else(|e| format!("denied ({e})"), |_| "connected".into()),
                    if clock.ok() == Some(input.context().fetch_time) { "frozen" } else { "real" },
                );
                log(LogLevel::Info, &seen);
                Output::new()
                    .column(Column::text("observed", (0..rows).map(|_| Some(seen.as_str()))))
            }
            "guest-error" => {
                return Err(PluginError::InvalidInput("no coins I like in this snapshot".into()));
            }
            "read-past-end" => read_past_end(rows),
            "scribble" => {
                // 16 MiB of markers, freed again: the bytes stay in this instance's memory.
                std::hint::black_box(vec![MARKER; 2 << 20]);
                Output::new().column(Column::float64("x", ones()))
            }
            "scavenge" => {
                let found = scavenge() as f64;
                Output::new().column(Column::float64("leftover", (0..rows).map(|_| Some(found))))
            }
            "nan" => Output::new().column(Column::float64("x", (0..rows).map(|_| Some(f64::NAN)))),
            _ => Output::new().column(Column::float64("x", ones())),
        })
    }
}

/// Grows memory by one 64 KiB page, so its end is not on a 2 MiB boundary (the unit the host may
/// back memory in), then reads the first byte past the end: WebAssembly says that traps, and it
/// must whatever the host's page size.
#[cfg(target_arch = "wasm32")]
fn read_past_end(rows: usize) -> Output {
    core::arch::wasm32::memory_grow(0, 1);
    let end = core::arch::wasm32::memory_size(0) * 65536;
    let end = std::ptr::with_exposed_provenance::<u8>(end);
    // SAFETY: none; reading outside memory is the point.
    let byte = unsafe { std::ptr::read_volatile(end) };
    Output::new().column(Column::float64("x", (0..rows).map(|_| Some(f64::from(byte)))))
}

#[cfg(not(target_arch = "wasm32"))]
fn read_past_end(_rows: usize) -> Output {
    unreachable!("this plugin only runs as WebAssembly")
}

/// Grows memory to 32 MiB, past what `scribble` used, and counts the [`MARKER`] words anywhere
/// in it: a plugin must find nothing an earlier one left behind.
#[cfg(target_arch = "wasm32")]
fn scavenge() -> usize {
    let pages = core::arch::wasm32::memory_size(0);
    core::arch::wasm32::memory_grow(0, 512_usize.saturating_sub(pages));
    let end = core::arch::wasm32::memory_size(0) * 65536;
    // Address 0 is memory too, but a null pointer to Rust.
    (8..end)
        .step_by(8)
        .filter(|&at| {
            // SAFETY: `at` is below the end of memory; whatever is there is a valid `u64`.
            let word =
                unsafe { std::ptr::read_volatile(std::ptr::with_exposed_provenance::<u64>(at)) };
            word == MARKER
        })
        .count()
}

#[cfg(not(target_arch = "wasm32"))]
fn scavenge() -> usize {
    unreachable!("this plugin only runs as WebAssembly")
}

export_plugin!(Misbehave);
