//! `crypto-etl report`: a self-contained HTML page about the snapshots in the embedded
//! warehouse: market totals, top coins, dominance and volume share, 24h movers, and how totals
//! and dominance moved across snapshots.
//!
//! The page is one file with its styles, script and data inside (no network needed to view it).
//! The data is gathered here with SQL and handed to `template.html` as one JSON object.

use std::collections::HashSet;
use std::path::Path;

use duckdb::{Connection, OptionalExt, params_from_iter};
use serde::Serialize;
use serde_json::{Value, json};

use crate::load::TableName;

const TEMPLATE: &str = include_str!("template.html");
const MARKER: &str = "/*REPORT_DATA*/null";

/// How many coins the top list, the share charts and the mover lists show.
const TOP: usize = 20;
const SHARES: usize = 9;
const MOVERS: usize = 10;
/// Coins whose dominance is followed across snapshots.
const FOLLOWED: usize = 3;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "there is no warehouse at {0}; run the pipeline first (crypto-etl run --source samples/coins-markets.json)"
    )]
    NoWarehouse(String),
    #[error("{0} has no loaded snapshots yet; run the pipeline first")]
    Empty(String),
    #[error("could not read the warehouse: {0}")]
    Query(#[from] duckdb::Error),
}

/// What the page shows.
#[derive(Debug, Serialize)]
pub struct ReportData {
    pub title: String,
    pub generated_at: String,
    pub source: String,
    pub currency: String,
    pub latest: Value,
    pub top_coins: Vec<Value>,
    pub dominance: Vec<Value>,
    pub volume_share: Vec<Value>,
    pub movers_up: Vec<Value>,
    pub movers_down: Vec<Value>,
    pub history: Vec<Value>,
}

/// Reads the report's data from the DuckDB file at `path`.
pub fn gather(path: &Path, table: &TableName) -> Result<ReportData, ReportError> {
    let source = format!("duckdb:{}", path.display());
    if !path.exists() {
        return Err(ReportError::NoWarehouse(path.display().to_string()));
    }
    let connection = Connection::open_with_flags(
        path,
        duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?,
    )?;
    let columns: HashSet<String> = {
        let mut statement = connection
            .prepare("SELECT column_name FROM information_schema.columns WHERE table_name = ?")?;
        statement
            .query_map([table.as_str()], |row| row.get::<_, String>(0))?
            .collect::<Result<_, _>>()?
    };
    if columns.is_empty() {
        return Err(ReportError::Empty(source));
    }
    let history_table = quote(&format!("{}_LOAD_HISTORY", table.as_str()));
    let table_sql = quote(table.as_str());
    // A column the pipeline did not produce reads as null.
    let col = |name: &str| {
        if columns.contains(name) { quote(name) } else { "NULL".to_owned() }
    };

    let latest_id: Option<String> = connection
        .query_row(
            &format!(
                "SELECT snapshot_id FROM {history_table}
                 ORDER BY split_part(snapshot_id, ':', 2) DESC, finished_at DESC LIMIT 1"
            ),
            [],
            |row| row.get(0),
        )
        .optional()?;
    let latest_id = latest_id.ok_or_else(|| ReportError::Empty(source.clone()))?;
    let currency = latest_id.split(':').next().unwrap_or("usd").to_owned();

    let (coins, total_cap, total_volume): (i64, Option<f64>, Option<f64>) = connection.query_row(
        &format!(
            "SELECT count(*), sum({cap})::DOUBLE, sum({volume})::DOUBLE FROM {table_sql} WHERE snapshot_id = ?",
            cap = col("market_cap"),
            volume = col("total_volume")
        ),
        [&latest_id],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let rejected: Option<i64> = connection
        .query_row(
            &format!(
                "SELECT rows_rejected FROM {history_table} WHERE snapshot_id = ? ORDER BY finished_at DESC LIMIT 1"
            ),
            [&latest_id],
            |row| row.get(0),
        )
        .optional()?;

    let coin_fields = format!(
        "{rank}::BIGINT, {id}::VARCHAR, {symbol}::VARCHAR, {name}::VARCHAR, {price}::DOUBLE, {cap}::DOUBLE,
         {volume}::DOUBLE, {change}::DOUBLE, {dominance}::DOUBLE, {share}::DOUBLE",
        rank = col("market_cap_rank"),
        id = col("id"),
        symbol = col("symbol"),
        name = col("name"),
        price = col("current_price"),
        cap = col("market_cap"),
        volume = col("total_volume"),
        change = col("price_change_percentage_24h"),
        dominance = col("dominance_percentage"),
        share = col("volume_percentage"),
    );
    let coins_where = |order: &str,
                       filter: &str,
                       limit: usize|
     -> Result<Vec<Value>, ReportError> {
        let sql = format!(
            "SELECT {coin_fields} FROM {table_sql} WHERE snapshot_id = ? {filter} ORDER BY {order} LIMIT {limit}"
        );
        let mut statement = connection.prepare(&sql)?;
        let rows = statement.query_map([&latest_id], |row| {
            Ok(json!({
                "rank": row.get::<_, Option<i64>>(0)?,
                "id": row.get::<_, Option<String>>(1)?,
                "symbol": row.get::<_, Option<String>>(2)?,
                "name": row.get::<_, Option<String>>(3)?,
                "price": row.get::<_, Option<f64>>(4)?,
                "market_cap": row.get::<_, Option<f64>>(5)?,
                "total_volume": row.get::<_, Option<f64>>(6)?,
                "change_24h_pct": row.get::<_, Option<f64>>(7)?,
                "dominance_percentage": row.get::<_, Option<f64>>(8)?,
                "volume_percentage": row.get::<_, Option<f64>>(9)?,
            }))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let top_coins = coins_where(&format!("{} DESC NULLS LAST", col("market_cap")), "", TOP)?;
    let change = col("price_change_percentage_24h");
    let movers_up = coins_where(&format!("{change} DESC"), &format!("AND {change} > 0"), MOVERS)?;
    let movers_down = coins_where(&format!("{change} ASC"), &format!("AND {change} < 0"), MOVERS)?;

    let shares = |column: &str| -> Result<Vec<Value>, ReportError> {
        if !columns.contains(column) {
            return Ok(Vec::new());
        }
        let share = quote(column);
        let mut statement = connection.prepare(&format!(
            "SELECT {name}::VARCHAR, {share}::DOUBLE FROM {table_sql}
             WHERE snapshot_id = ? AND {share} IS NOT NULL ORDER BY {share} DESC LIMIT {SHARES}",
            name = col("name"),
        ))?;
        let mut slices: Vec<(String, f64)> = statement
            .query_map([&latest_id], |row| {
                Ok((row.get::<_, Option<String>>(0)?.unwrap_or_default(), row.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let total: f64 = connection.query_row(
            &format!(
                "SELECT coalesce(sum({share}), 0)::DOUBLE FROM {table_sql} WHERE snapshot_id = ?"
            ),
            [&latest_id],
            |row| row.get(0),
        )?;
        let shown: f64 = slices.iter().map(|(_, v)| v).sum();
        if total - shown > 1e-9 {
            slices.push(("Other".into(), total - shown));
        }
        Ok(slices
            .into_iter()
            .map(|(label, value)| json!({"label": label, "value": value}))
            .collect())
    };
    let dominance = shares("dominance_percentage")?;
    let volume_share = shares("volume_percentage")?;

    // Across snapshots: totals, and the dominance of the latest snapshot's biggest coins.
    let followed: Vec<String> = top_coins
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .take(FOLLOWED)
        .collect();
    // Totals in different currencies do not share an axis: the latest snapshot's currency only.
    let mut dominance_by_snapshot: std::collections::HashMap<String, Vec<Value>> =
        std::collections::HashMap::new();
    if columns.contains("dominance_percentage") && !followed.is_empty() {
        let placeholders = vec!["?"; followed.len()].join(", ");
        let mut statement = connection.prepare(&format!(
            "SELECT snapshot_id, {name}::VARCHAR, {share}::DOUBLE FROM {table_sql}
             WHERE currency = ? AND {id} IN ({placeholders})",
            name = col("name"),
            share = quote("dominance_percentage"),
            id = col("id"),
        ))?;
        let values: Vec<&str> =
            std::iter::once(currency.as_str()).chain(followed.iter().map(String::as_str)).collect();
        let rows = statement.query_map(params_from_iter(values), |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<f64>>(2)?,
            ))
        })?;
        for row in rows {
            let (snapshot, label, value) = row?;
            dominance_by_snapshot
                .entry(snapshot)
                .or_default()
                .push(json!({"label": label, "value": value}));
        }
    }
    let mut statement = connection.prepare(&format!(
        "SELECT snapshot_id, count(*), sum({cap})::DOUBLE, sum({volume})::DOUBLE FROM {table_sql}
         WHERE currency = ? GROUP BY snapshot_id ORDER BY split_part(snapshot_id, ':', 2)",
        cap = col("market_cap"),
        volume = col("total_volume"),
    ))?;
    let history = statement
        .query_map([&currency], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<f64>>(2)?,
                row.get::<_, Option<f64>>(3)?,
            ))
        })?
        .map(|row| {
            let (snapshot, coins, cap, volume) = row?;
            Ok(json!({
                "fetch_time": display_time(&snapshot),
                "coins": coins,
                "total_market_cap": cap,
                "total_volume": volume,
                "dominance": dominance_by_snapshot.remove(&snapshot).unwrap_or_default(),
                "snapshot_id": snapshot,
            }))
        })
        .collect::<Result<Vec<Value>, duckdb::Error>>()?;

    Ok(ReportData {
        title: "Crypto market snapshot".into(),
        generated_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        source,
        currency,
        latest: json!({
            "snapshot_id": latest_id,
            "fetch_time": display_time(&latest_id),
            "coins": coins,
            "rejected": rejected,
            "total_market_cap": total_cap,
            "total_volume": total_volume,
        }),
        top_coins,
        dominance,
        volume_share,
        movers_up,
        movers_down,
        history,
    })
}

/// The page for `data`.
pub fn render(data: &ReportData) -> String {
    // Inside a <script> element, `</script` or `<!--` in a coin's name could end or corrupt it;
    // `\u003c` is the same character to JSON and never markup.
    let json =
        serde_json::to_string(data).unwrap_or_else(|_| "null".into()).replace('<', "\\u003c");
    TEMPLATE.replacen(MARKER, &json, 1)
}

/// `usd:2026-11-27T10-00-00Z` -> `2026-11-27T10:00:00`
fn display_time(snapshot_id: &str) -> String {
    let time = snapshot_id.split_once(':').map_or(snapshot_id, |(_, t)| t);
    crate::snapshot::FetchTime::parse(time)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| time.to_owned())
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_has_its_marker_and_data_cannot_close_the_script() {
        assert_eq!(TEMPLATE.matches(MARKER).count(), 1);
        let data = ReportData {
            title: "</script><script>alert(1)</script>".into(),
            generated_at: String::new(),
            source: String::new(),
            currency: "usd".into(),
            latest: Value::Null,
            top_coins: vec![],
            dominance: vec![],
            volume_share: vec![],
            movers_up: vec![],
            movers_down: vec![],
            history: vec![],
        };
        let page = render(&data);
        assert!(!page.contains("</script><script>alert"));
        assert!(page.contains("\\u003c/script>\\u003cscript>alert(1)"));
        assert_eq!(display_time("usd:2026-11-27T10-00-00Z"), "2026-11-27T10:00:00");
    }
}
