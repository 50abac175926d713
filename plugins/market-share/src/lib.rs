//! `market-share`: each coin's share of market capitalisation and of 24h volume, in percent.
//!
//! `dominance_percentage = market_cap / sum(market_cap) * 100` and
//! `volume_percentage = total_volume / sum(total_volume) * 100`, with the sums taken over the rows
//! that reach this plugin (those an earlier plugin kept), exactly as the original pipeline did.
//! With `basis = market` the denominators are instead the whole market's totals from CoinGecko's
//! `/global` endpoint, when the snapshot has them.

use crypto_etl_plugin_sdk::Numbers;
use crypto_etl_plugin_sdk::prelude::*;

/// Public so the benchmark can run the same logic compiled natively (`bench/chain`).
#[derive(Debug)]
pub struct MarketShare;

fn column_type(schema: &Schema, name: &str) -> Result<ColumnType, PluginError> {
    match schema.type_of(name) {
        Some(ty @ (ColumnType::Float64 | ColumnType::Int64)) => Ok(ty),
        Some(ty) => Err(PluginError::InvalidInput(format!("`{name}` is {ty:?}, not a number"))),
        None => Err(PluginError::InvalidInput(format!("the snapshot has no `{name}` column"))),
    }
}

/// Exact sum of an integer column (no rounding on the way), or a plain float sum.
fn total(input: &Input, name: &str) -> Result<f64, PluginError> {
    match input.int64(name) {
        Ok(values) => Ok(values.iter().flatten().map(i128::from).sum::<i128>() as f64),
        Err(_) => Ok(input.float64(name)?.iter().flatten().sum()),
    }
}

fn shares(values: Numbers<'_>, total: f64) -> impl Iterator<Item = Option<f64>> + '_ {
    values.iter().map(move |v| v.filter(|_| total != 0.0).map(|v| v / total * 100.0))
}

impl Plugin for MarketShare {
    fn info() -> PluginInfo {
        plugin_info!(
            "dominance_percentage and volume_percentage: each coin's share of market cap and 24h volume"
        )
    }

    fn plan(config: &Config, schema: &Schema) -> Result<Plan, PluginError> {
        let basis = config.choice("basis", &["snapshot", "market"])?;
        let of = if basis == "market" {
            "the whole market (CoinGecko /global)"
        } else {
            "the coins kept in this snapshot"
        };
        Ok(Plan::new()
            .reads("market_cap", column_type(schema, "market_cap")?)
            .reads("total_volume", column_type(schema, "total_volume")?)
            .writes(
                "dominance_percentage",
                ColumnType::Float64,
                &format!("market_cap as a percentage of the market cap of {of}"),
            )
            .writes(
                "volume_percentage",
                ColumnType::Float64,
                &format!("total_volume as a percentage of the 24h volume of {of}"),
            ))
    }

    fn transform(input: &Input) -> Result<Output, PluginError> {
        let context = input.context();
        let (cap_total, volume_total) = match input.config().get("basis") {
            Some("market") => match (context.market_total_cap, context.market_total_volume) {
                (Some(cap), Some(volume)) => (cap, volume),
                _ => {
                    return Err(PluginError::InvalidInput(
                        "basis = market needs the market totals of CoinGecko /global, and this snapshot has none"
                            .into(),
                    ));
                }
            },
            _ => (total(input, "market_cap")?, total(input, "total_volume")?),
        };
        if cap_total == 0.0 || volume_total == 0.0 {
            log(LogLevel::Warn, "a total is zero; the matching percentages are null");
        }
        let caps = input.numbers("market_cap")?;
        let volumes = input.numbers("total_volume")?;
        Ok(Output::new()
            .column(Column::float64("dominance_percentage", shares(caps, cap_total)))
            .column(Column::float64("volume_percentage", shares(volumes, volume_total))))
    }
}

export_plugin!(MarketShare);
