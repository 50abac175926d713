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
        Ok(values) => Ok(match values.without_nulls() {
            Some(slice) => slice.iter().map(|&v| i128::from(v)).sum::<i128>(),
            None => values.iter().flatten().map(i128::from).sum::<i128>(),
        } as f64),
        Err(_) => Ok(input.float64(name)?.iter().flatten().sum()),
    }
}

/// Each value's share of `total` in percent, null where the value is or `total` is zero.
fn shares(name: &str, values: Numbers<'_>, total: f64) -> Column {
    let share = |v: f64| v / total * 100.0;
    // The usual case, a column without nulls, in one plain loop over a slice.
    if total != 0.0 {
        let shares: Option<Vec<f64>> = match values {
            Numbers::Float(v) => v.without_nulls().map(|s| s.iter().map(|&v| share(v)).collect()),
            Numbers::Int(v) => {
                v.without_nulls().map(|s| s.iter().map(|&v| share(v as f64)).collect())
            }
        };
        if let Some(shares) = shares {
            return Column::float64_values(name, shares);
        }
    }
    Column::float64(name, values.iter().map(|v| v.filter(|_| total != 0.0).map(share)))
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
        Ok(Output::new().column(shares("dominance_percentage", caps, cap_total)).column(shares(
            "volume_percentage",
            volumes,
            volume_total,
        )))
    }
}

export_plugin!(MarketShare);

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_etl_plugin_sdk::bindings::crypto_etl::plugin::types as wire;

    /// `dominance_percentage` for a `market_cap` column (and a `total_volume` of ones).
    fn dominance(market_cap: Column, rows: u32) -> Option<Vec<Option<f64>>> {
        let volume = Column::float64("total_volume", (0..rows).map(|_| Some(1.0)));
        let batch = wire::Batch {
            row_count: rows,
            columns: vec![market_cap.into_wire(), volume.into_wire()],
        };
        let context = SnapshotContext {
            fetch_time: 0,
            currency: "usd".into(),
            market_total_cap: None,
            market_total_volume: None,
        };
        let input = Input::new(Config::new(Vec::new()), batch, context);
        let output = MarketShare::transform(&input).ok()?.into_wire();
        let column = output.columns.into_iter().find(|c| c.name == "dominance_percentage")?;
        let wire::ColumnData::Float64(c) = column.data else { return None };
        let valid = |row: usize| c.valid.get(row).is_none_or(|v| *v != 0);
        Some(c.values.iter().enumerate().map(|(row, v)| valid(row).then_some(*v)).collect())
    }

    #[test]
    fn shares_are_the_same_with_and_without_nulls_and_for_integers() {
        // (A zero total logs a warning through the host, which a native test has not got.)
        let caps = [Some(1.0), Some(3.0)];
        let expected = Some(vec![Some(25.0), Some(75.0)]);
        assert_eq!(dominance(Column::float64("market_cap", caps), 2), expected);
        assert_eq!(dominance(Column::int64("market_cap", [Some(1), Some(3)]), 2), expected);
        assert_eq!(
            dominance(Column::float64("market_cap", [Some(1.0), None, Some(3.0)]), 3),
            Some(vec![Some(25.0), None, Some(75.0)])
        );
        assert_eq!(
            dominance(Column::int64("market_cap", [Some(1), None, Some(3)]), 3),
            Some(vec![Some(25.0), None, Some(75.0)])
        );
    }
}
