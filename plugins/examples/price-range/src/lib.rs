//! An example to copy: one derived field in one short file.
//!
//! `price_range_24h_percentage = (high_24h - low_24h) / current_price * 100`: how far the price
//! swung in the last 24 hours, relative to where it is now. Null when an input is null or the
//! price is zero.

use crypto_etl_plugin_sdk::prelude::*;

struct PriceRange;

impl Plugin for PriceRange {
    fn info() -> PluginInfo {
        plugin_info!("price_range_24h_percentage: the 24h high-low range as a percentage of price")
    }

    fn plan(_config: &Config, _schema: &Schema) -> Result<Plan, PluginError> {
        Ok(Plan::new()
            .reads("current_price", ColumnType::Float64)
            .reads("high_24h", ColumnType::Float64)
            .reads("low_24h", ColumnType::Float64)
            .writes(
                "price_range_24h_percentage",
                ColumnType::Float64,
                "(high_24h - low_24h) / current_price * 100",
            ))
    }

    fn transform(input: &Input) -> Result<Output, PluginError> {
        let price = input.float64("current_price")?;
        let high = input.float64("high_24h")?;
        let low = input.float64("low_24h")?;
        let range =
            (0..input.rows()).map(|row| match (price.get(row), high.get(row), low.get(row)) {
                (Some(p), Some(h), Some(l)) if p != 0.0 => Some((h - l) / p * 100.0),
                _ => None,
            });
        Ok(Output::new().column(Column::float64("price_range_24h_percentage", range)))
    }
}

export_plugin!(PriceRange);
