//! `crypto-etl report`

use std::path::PathBuf;

use clap::Args;
use crypto_etl::load::Warehouse;
use crypto_etl::report::{ReportError, gather, render};

use super::run::WarehouseArgs;
use super::{Code, Failure};

const EXAMPLES: &str = "\
Examples:
  # After `crypto-etl run`: the page for data/crypto.duckdb
  crypto-etl report

  # Another warehouse file, written elsewhere
  crypto-etl report --warehouse duckdb:/srv/crypto.duckdb --out /srv/www/crypto.html

The page is one self-contained file (styles, script and data inside): open it in any browser,
offline. For Snowflake, point Looker Studio or another BI tool at the CRYPTO_DATA table and the
CRYPTO_DATA_LATEST view (see docs/warehouse.md).";

/// Write an HTML page about the loaded snapshots: totals, top coins, dominance, volume share,
/// 24h movers, and how they moved over time.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ReportArgs {
    /// The warehouse to read (a DuckDB one).
    #[command(flatten)]
    warehouse: WarehouseArgs,

    /// Where to write the page.
    #[arg(long, value_name = "FILE", default_value = "data/report.html")]
    out: PathBuf,
}

pub fn run(args: ReportArgs, quiet: bool) -> Result<(), Failure> {
    let not_duckdb = || {
        Failure::new(Code::BadInput, "the report reads a DuckDB warehouse, not Snowflake").hint(
            "for Snowflake, point a BI tool at CRYPTO_DATA and CRYPTO_DATA_LATEST (docs/warehouse.md)",
        )
    };
    if args.warehouse.is_snowflake() {
        return Err(not_duckdb());
    }
    let Warehouse::DuckDb(duckdb) = args.warehouse.open()? else { return Err(not_duckdb()) };
    let data = gather(duckdb.path(), duckdb.table()).map_err(|e| match e {
        ReportError::Query(_) => Failure::new(Code::Internal, e.to_string()),
        _ => Failure::new(Code::BadInput, e.to_string()),
    })?;
    let page = render(&data);
    let mut staged = crypto_etl::output::Staged::default();
    staged
        .write(&args.out, |out| std::io::Write::write_all(out, page.as_bytes()))
        .and_then(|()| staged.commit())
        .map_err(|e| Failure::new(Code::Output, e.to_string()))?;
    if !quiet {
        println!(
            "report     {} ({} coins in snapshot {}, {} snapshot(s) in all)",
            args.out.display(),
            data.latest["coins"],
            data.latest["snapshot_id"].as_str().unwrap_or_default(),
            data.history.len()
        );
    }
    Ok(())
}
