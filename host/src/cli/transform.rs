//! `crypto-etl transform`

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use crypto_etl::pipeline::{Pipeline, PipelineError};
use crypto_etl::snapshot::FetchTime;
use crypto_etl::transform::{FileRequest, Report, TransformError, fetch_time_for, transform_file};

use super::{Code, Failure, RuntimeArgs};

const EXAMPLES: &str = "\
Examples:
  # The default pipeline (clean + market-share) over a saved response
  crypto-etl transform --input samples/coins-markets.json --output data/processed.csv

  # Reproduce the original Python pipeline's numbers
  crypto-etl transform --input raw.json --output old.csv --pipeline seed-compat \\
      --fetch-time 2026-11-27T10-00-00Z

  # Your own chain of plugins, as a machine-readable report
  crypto-etl transform --input raw.json --output out.csv --pipeline pipeline.toml --json";

/// Clean a raw /coins/markets snapshot and add derived fields with the plugin pipeline.
///
/// Writes the processed CSV and, beside it, `<output>.rejected.jsonl` with every row that was
/// set aside and why. Both appear together or not at all: if anything fails, nothing is written
/// and the raw snapshot is left as it was.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct TransformArgs {
    /// The raw snapshot: a JSON array as returned by CoinGecko /coins/markets.
    #[arg(long, value_name = "RAW.json")]
    input: PathBuf,

    /// Where to write the processed CSV.
    #[arg(long, value_name = "OUT.csv")]
    output: PathBuf,

    /// `default`, `seed-compat` (the original pipeline's exact rules) or a pipeline manifest.
    #[arg(long, value_name = "NAME|FILE", default_value = "default")]
    pipeline: String,

    /// When the snapshot was fetched, e.g. 2026-11-27T10-00-00Z
    /// [default: from a raw_crypto_data_<time>.json name, else now].
    #[arg(long, value_name = "TIME", value_parser = FetchTime::parse)]
    fetch_time: Option<FetchTime>,

    /// Quote currency of the snapshot's prices.
    #[arg(long, default_value = "usd", value_parser = super::currency)]
    currency: String,

    /// Print the report as JSON on stdout instead of a summary.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn run(args: TransformArgs, quiet: bool) -> Result<(), Failure> {
    let pipeline = Pipeline::resolve(&args.pipeline).map_err(|e| {
        Failure::new(Code::Pipeline, e.to_string()).hint(format!(
            "--pipeline takes {} or the path of a pipeline manifest",
            Pipeline::BUILTIN.join(", ")
        ))
    })?;
    let fetch_time = fetch_time_for(&args.input, args.fetch_time).unwrap_or_else(|| {
        tracing::info!("no --fetch-time and none in the file name; using the current time");
        FetchTime::now()
    });
    let runtime = args.runtime.runtime()?;
    let request = FileRequest {
        input: args.input,
        output: args.output,
        pipeline,
        fetch_time,
        currency: args.currency,
    };
    let report = transform_file(&runtime, &request).map_err(|e| failure(&e))?;
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::new(Code::Internal, e.to_string()))?;
        println!("{json}");
    } else if !quiet {
        // A closed pipe (`| head`) is the reader's choice, not a failure of the transform.
        if let Err(e) = print_summary(&report, &mut std::io::stdout().lock())
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(Failure::new(Code::Output, format!("could not print the summary: {e}")));
        }
    }
    Ok(())
}

pub fn failure(error: &TransformError) -> Failure {
    let untouched = "nothing was written and the raw snapshot is untouched";
    match error {
        TransformError::Read { .. } => {
            Failure::new(Code::BadInput, error.to_string()).hint("check the --input path")
        }
        TransformError::Ingest(_) | TransformError::Empty => {
            Failure::new(Code::BadInput, error.to_string()).hint(format!(
                "{untouched}; fetch the snapshot again or pass a /coins/markets response"
            ))
        }
        TransformError::Pipeline(PipelineError::HashMismatch { .. }) => {
            Failure::new(Code::Pipeline, error.to_string()).hint(format!(
                "{untouched}; publish the plugin again or correct `sha256` in the manifest"
            ))
        }
        TransformError::Pipeline(_) | TransformError::Plugin(_) => {
            Failure::new(Code::Pipeline, error.to_string()).hint(format!(
                "{untouched}; fix the plugin or its configuration, or leave it out of the pipeline"
            ))
        }
        TransformError::Store(_) => Failure::new(Code::Output, error.to_string())
            .hint("check the store and its credentials; the raw snapshot is untouched"),
        TransformError::Write(_) => Failure::new(Code::Output, error.to_string()).hint(
            "check that the output folder is writable and has space; no partial file was left",
        ),
    }
}

fn print_summary(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "transformed {} coins from {} with pipeline `{}` (fetch time {})",
        report.rows_in,
        report.input.display(),
        report.pipeline,
        report.fetch_time
    )?;
    writeln!(out, "  kept     {:>7}  -> {}", report.rows_out, report.output.display())?;
    writeln!(out, "  rejected {:>7}  -> {}", report.rows_rejected, report.quarantine.display())?;
    for plugin in &report.plugins {
        writeln!(
            out,
            "  plugin   {} {}: {} in, {} rejected, {:.1} ms",
            plugin.name,
            plugin.version,
            plugin.rows_in,
            plugin.rejected,
            plugin.elapsed.as_secs_f64() * 1e3
        )?;
    }
    for warning in &report.warnings {
        writeln!(out, "  warning  {warning}")?;
    }
    Ok(())
}
