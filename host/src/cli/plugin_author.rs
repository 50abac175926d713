//! The plugin author's loop: `plugin new` to start, `plugin test` to see what a plugin does.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crypto_etl::batch::{Batch, Value};
use crypto_etl::names::{is_valid_column_name, is_valid_plugin_name};
use crypto_etl::pipeline::{Pipeline, Source, Step};
use crypto_etl::plugin::{SnapshotContext, TransformPlugin};
use crypto_etl::snapshot::FetchTime;

use super::{Code, Failure, RuntimeArgs};

const CARGO_TOML: &str = include_str!("../plugin/scaffold/Cargo.toml.in");
const LIB_RS: &str = include_str!("../plugin/scaffold/lib.rs.in");

/// Creates the crate for plugin `name`.
pub fn new(name: String, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> Result<(), Failure> {
    if !is_valid_plugin_name(&name) {
        return Err(Failure::new(
            Code::BadInput,
            format!(
                "{name:?} is not a plugin name: lower-case letters, digits and -, starting with a letter (e.g. supply-ratio)"
            ),
        ));
    }
    let column = name.replace('-', "_");
    if !is_valid_column_name(&column) {
        return Err(Failure::new(Code::BadInput, format!("{column:?} is not a column name")));
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Failure::new(
            Code::BadInput,
            format!("{} already exists and is not empty", dir.display()),
        )
        .hint("choose another --dir, or remove it"));
    }
    let sdk = match sdk {
        Some(sdk) => sdk,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("plugins").join("sdk"),
    };
    let sdk = sdk.canonicalize().map_err(|e| {
        Failure::new(Code::BadInput, format!("the plugin SDK is not at {}: {e}", sdk.display()))
            .hint("pass --sdk with the path of crypto-etl's plugins/sdk")
    })?;
    let type_name: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    let fill = |template: &str| {
        template
            .replace("{{name}}", &name)
            .replace("{{crate}}", &column)
            .replace("{{column}}", &column)
            .replace("{{type}}", &type_name)
            .replace("{{sdk}}", &sdk.display().to_string().replace('\\', "/"))
    };
    let write = |path: PathBuf, text: String| {
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| {
                Failure::new(Code::Output, format!("could not write {}: {e}", path.display()))
            })
    };
    write(dir.join("Cargo.toml"), fill(CARGO_TOML))?;
    write(dir.join("src").join("lib.rs"), fill(LIB_RS))?;
    write(dir.join(".gitignore"), "/target\n".into())?;
    let wasm = format!("target/wasm32-wasip2/release/{column}.wasm");
    println!("created    {} (plugin {name}, column {column})", dir.display());
    println!();
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  # edit compute() in src/lib.rs, then:");
    println!("  cargo test");
    println!("  cargo build --release --target wasm32-wasip2");
    println!("  crypto-etl plugin test {wasm} --input RAW.json");
    Ok(())
}

/// Runs the default chain and then the plugin, and reports what the plugin did.
pub fn test(
    wasm: &Path,
    input: &Path,
    config: Vec<(String, String)>,
    rows: usize,
    runtime_args: &RuntimeArgs,
) -> Result<(), Failure> {
    let runtime = runtime_args.runtime()?;
    let bytes = std::fs::read(wasm).map_err(|e| {
        Failure::new(Code::BadInput, format!("could not read {}: {e}", wasm.display()))
            .hint("build it first: cargo build --release --target wasm32-wasip2")
    })?;
    let started = Instant::now();
    let plugin = runtime
        .load(&bytes, &wasm.display().to_string())
        .map_err(|e| Failure::new(Code::Pipeline, e.to_string()))?;
    let load_time = started.elapsed();
    let info = plugin.info().clone();
    let sha256 = plugin.sha256().to_owned();
    let raw = std::fs::read(input).map_err(|e| {
        Failure::new(Code::BadInput, format!("could not read {}: {e}", input.display()))
    })?;

    // The chain as production would run it: the default plugins, then this one.
    let mut pipeline = Pipeline::default_pipeline();
    pipeline.name = format!("default + {}", info.name);
    pipeline.steps.push(Step { source: Source::File { path: wasm.to_owned(), sha256 }, config });

    let fetch_time =
        crypto_etl::transform::fetch_time_for(input, None).unwrap_or_else(FetchTime::now);
    let context = SnapshotContext {
        fetch_time: fetch_time.micros(),
        currency: "usd".into(),
        market_total_cap: None,
        market_total_volume: None,
    };
    let transformed = crypto_etl::transform::transform(&runtime, raw, &pipeline, &context)
        .map_err(|e| {
            Failure::new(Code::Pipeline, e.to_string()).hint(
                "production would do the same: the run would stop and nothing would be written",
            )
        })?;
    let report = transformed.stages.last().expect("the plugin ran");
    let plan = transformed.plans.last().expect("the plugin's plan");

    let mut out = String::new();
    let _ = writeln!(out, "plugin     {} {}  ({})", info.name, info.version, info.description);
    let _ = writeln!(
        out,
        "loaded     {:.1} ms (compiled or read from the cache)",
        load_time.as_secs_f64() * 1e3
    );
    let reads: Vec<String> =
        plan.reads.iter().map(|f| format!("{} ({:?})", f.name, f.column_type)).collect();
    let _ = writeln!(
        out,
        "reads      {}",
        if reads.is_empty() { "nothing".into() } else { reads.join(", ") }
    );
    for write in &plan.writes {
        let _ = writeln!(
            out,
            "writes     {} ({:?}){}: {}",
            write.name,
            write.column_type,
            if write.replaces { ", replacing the existing column" } else { "" },
            write.description
        );
    }
    if !plan.removes.is_empty() {
        let _ = writeln!(out, "removes    {}", plan.removes.join(", "));
    }
    let _ = writeln!(
        out,
        "ran        {:.2} ms on {} rows, {} of memory at peak; limits: {} ms, {} MiB memory, {} MiB output",
        report.elapsed.as_secs_f64() * 1e3,
        report.rows_in,
        report
            .peak_memory
            .map_or("?".to_owned(), |bytes| format!("{:.1} MiB", bytes as f64 / 1048576.0)),
        runtime.limits().deadline.as_millis(),
        runtime.limits().memory >> 20,
        runtime.limits().output >> 20,
    );
    let stage_label = format!("{}@{}", info.name, info.version);
    let rejected: Vec<_> = transformed.rejected.iter().filter(|r| r.stage == stage_label).collect();
    let _ = writeln!(out, "rejected   {} rows", rejected.len());
    for row in rejected.iter().take(rows) {
        let id = match row.values.get("id") {
            Some(crypto_etl::batch::Value::Text(id)) => id,
            _ => "?",
        };
        let _ = writeln!(out, "  row {:>5} {:<24} {}", row.source_row, id, row.reason);
    }
    let _ = writeln!(out);
    let mut shown: Vec<String> = ["id", "symbol"]
        .iter()
        .filter(|c| transformed.batch.column(c).is_some())
        .map(|c| c.to_string())
        .collect();
    shown.extend(plan.writes.iter().map(|w| w.name.clone()));
    out.push_str(&table(&transformed.batch, &shown, rows));
    let _ = writeln!(
        out,
        "({} of {} rows shown)",
        rows.min(transformed.batch.rows()),
        transformed.batch.rows()
    );
    print!("{out}");
    Ok(())
}

/// The first `rows` rows of `columns` as an aligned text table.
fn table(batch: &Batch, columns: &[String], rows: usize) -> String {
    let cells: Vec<Vec<String>> = (0..rows.min(batch.rows()))
        .map(|row| {
            columns
                .iter()
                .map(|name| match batch.column(name).map(|c| c.data.value(row)) {
                    None | Some(Value::Null) => "null".to_owned(),
                    Some(Value::Float64(v)) => format!("{v:.6}"),
                    Some(Value::Int64(v)) => v.to_string(),
                    Some(Value::Text(v)) => v.chars().take(40).collect(),
                    Some(Value::Boolean(v)) => v.to_string(),
                    Some(Value::Timestamp(v)) => FetchTime::from_micros(v)
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| v.to_string()),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, name)| cells.iter().map(|r| r[i].len()).chain([name.len()]).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    let line = |values: Vec<&str>| -> String {
        let padded: Vec<String> =
            values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}", w = *w)).collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    text.push_str(&line(columns.iter().map(String::as_str).collect()));
    text.push_str(&line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for row in &cells {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}
