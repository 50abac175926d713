//! `clean`: decides which coins of a snapshot are fit to load, and says why the others are not.
//!
//! Two modes, chosen with the `mode` key:
//!
//! - `default`: a coin is kept when what identifies and sizes it is valid: `id`, `symbol` and
//!   `name` are non-empty, `current_price`, `market_cap` and `total_volume` are finite and not
//!   negative. Nulls anywhere else are fine (Ethereum has no `max_supply`). Of several rows with the
//!   same `id`, the best `market_cap_rank` is kept. `drop` (default `image,roi,sparkline_in_7d`)
//!   lists columns to remove.
//! - `seed-compat`: the original Python pipeline's rules, for teams that must reproduce its
//!   numbers: remove `image` and `roi`, drop every row with a null in any column, drop rows that
//!   duplicate an earlier row in every column.
//!
//! Both modes parse `ath_date`, `atl_date` and `last_updated` into timestamps and add `fetch_time`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::OnceLock;

use chrono::Timelike;
use crypto_etl_plugin_sdk::prelude::*;
use crypto_etl_plugin_sdk::{Texts, Values};
use foldhash::SharedSeed;
use foldhash::quality::{FoldHasher, SeedableRandomState};

/// Text columns that hold RFC 3339 instants and become timestamps.
const TIMESTAMP_COLUMNS: [&str; 3] = ["ath_date", "atl_date", "last_updated"];
const IDENTITY: [&str; 3] = ["id", "symbol", "name"];
const SIZE: [&str; 3] = ["current_price", "market_cap", "total_volume"];
const DEFAULT_DROP: &str = "image,roi,sparkline_in_7d";
const SEED_COMPAT_DROP: [&str; 2] = ["image", "roi"];

/// Public so the benchmark can run the same logic compiled natively (`bench/chain`).
#[derive(Debug)]
pub struct Clean;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Default,
    SeedCompat,
}

fn mode(config: &Config) -> Result<Mode, PluginError> {
    Ok(match config.choice("mode", &["default", "seed-compat"])? {
        "seed-compat" => Mode::SeedCompat,
        _ => Mode::Default,
    })
}

fn is_number(ty: ColumnType) -> bool {
    matches!(ty, ColumnType::Float64 | ColumnType::Int64)
}

impl Plugin for Clean {
    fn info() -> PluginInfo {
        plugin_info!(
            "Keeps coins whose identity and size are valid, drops duplicate ids (best rank wins), \
             parses timestamps and adds fetch_time; mode=seed-compat applies the original pipeline's rules"
        )
    }

    fn plan(config: &Config, schema: &Schema) -> Result<Plan, PluginError> {
        let mode = mode(config)?;
        let drop = config.get("drop").unwrap_or(DEFAULT_DROP);
        let mut plan = Plan::new().drops_rows();
        let removed: Vec<&str> = match mode {
            Mode::Default => drop.split(',').map(str::trim).filter(|c| !c.is_empty()).collect(),
            Mode::SeedCompat => SEED_COMPAT_DROP.to_vec(),
        };
        for name in removed.iter().filter(|c| schema.contains(c)) {
            plan = plan.removes(name);
        }
        match mode {
            Mode::Default => {
                for name in IDENTITY {
                    require(schema, name)?;
                    plan = plan.reads(name, ColumnType::Text);
                }
                for name in SIZE {
                    let ty = require(schema, name)?;
                    if !is_number(ty) {
                        return Err(PluginError::InvalidInput(format!(
                            "column `{name}` should be numeric but is {ty:?}"
                        )));
                    }
                    plan = plan.reads(name, ty);
                }
                if schema.type_of("market_cap_rank") == Some(ColumnType::Int64) {
                    plan = plan.reads("market_cap_rank", ColumnType::Int64);
                }
            }
            Mode::SeedCompat => {
                // Every remaining column takes part in the null and duplicate checks.
                for column in schema.columns() {
                    if !removed.contains(&column.name.as_str()) {
                        plan = plan.reads(&column.name, column.type_);
                    }
                }
            }
        }
        for name in TIMESTAMP_COLUMNS {
            if schema.type_of(name) == Some(ColumnType::Text) {
                if mode == Mode::Default {
                    plan = plan.reads(name, ColumnType::Text);
                }
                plan = plan.replaces(
                    name,
                    ColumnType::Timestamp,
                    &format!("`{name}` from CoinGecko, UTC"),
                );
            }
        }
        Ok(plan.writes("fetch_time", ColumnType::Timestamp, "When the snapshot was fetched, UTC"))
    }

    fn transform(input: &Input) -> Result<Output, PluginError> {
        let mode = mode(input.config())?;
        let rows = input.rows();
        let mut output = Output::new();
        let mut rejected = vec![false; rows];
        let mut reject = |output: &mut Output, row: usize, reason: String| {
            if !rejected[row] {
                rejected[row] = true;
                output.reject(row, reason);
            }
        };

        match mode {
            Mode::Default => check_identity_and_size(input, &mut output, &mut reject)?,
            Mode::SeedCompat => drop_nulls_and_duplicate_rows(input, &mut output, &mut reject)?,
        }

        let mut parsed = Vec::new();
        for name in TIMESTAMP_COLUMNS {
            let Ok(texts) = input.text(name) else { continue };
            let mut last_date = LastDate::default();
            let values = texts.iter().enumerate().map(|(row, text)| {
                text.map(|text| parse_timestamp(text, &mut last_date))?
                    .map_err(|err| reject(&mut output, row, format!("`{name}` {err}")))
                    .ok()
            });
            parsed.push(Column::timestamp(name, values));
        }
        if mode == Mode::Default {
            drop_duplicate_ids(input, &mut output, &mut reject)?;
        }
        for column in parsed {
            output = output.column(column);
        }
        let fetch_time = input.context().fetch_time;
        Ok(output.column(Column::timestamp("fetch_time", (0..rows).map(|_| Some(fetch_time)))))
    }
}

fn require(schema: &Schema, name: &str) -> Result<ColumnType, PluginError> {
    schema.type_of(name).ok_or_else(|| {
        PluginError::InvalidInput(format!(
            "the snapshot has no `{name}` column; is it a CoinGecko /coins/markets response?"
        ))
    })
}

/// Microseconds since the epoch of an RFC 3339 instant such as `2021-11-10T14:24:11.849Z`.
/// `last_date` carries what the column's previous timestamp left (see [`LastDate`]).
///
/// Inlined into the column's loop, with the general parser out of line: compiled to WebAssembly,
/// every call also checks the stack and the deadline, three times a row.
#[inline(always)]
fn parse_timestamp(text: &str, last_date: &mut LastDate) -> Result<i64, String> {
    match parse_utc(text.as_bytes(), last_date) {
        Some(micros) => Ok(micros),
        None => parse_rfc3339(text),
    }
}

/// Any RFC 3339 instant, by chrono's general parser, or why the text is not one.
#[cold]
#[inline(never)]
fn parse_rfc3339(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("{text:?} is not an RFC 3339 timestamp ({e})"))
}

/// The shape CoinGecko sends, `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, scanned without chrono's general
/// RFC 3339 parser, which was half of this plugin's work: three timestamps a coin. `None` for
/// anything else (offsets, lower-case `t` or `z`, a space, a leap second, more than nine fraction
/// digits, an invalid date or time), which the general parser then accepts or explains. A test
/// holds the two to the same result.
#[inline(always)]
fn parse_utc(text: &[u8], last_date: &mut LastDate) -> Option<i64> {
    /// Where the digits of `HH:MM:SS` are, after the date.
    const TIME_DIGITS: [usize; 6] = [11, 12, 14, 15, 17, 18];
    let (head, rest) = text.split_first_chunk::<19>()?;
    let fraction = rest.strip_suffix(b"Z")?;
    if [head[10], head[13], head[16]] != *b"T::" {
        return None;
    }
    let midnight = last_date.midnight(head.first_chunk()?)?;
    let mut d = [0u32; 6];
    for (value, at) in d.iter_mut().zip(TIME_DIGITS) {
        *value = digit(head[at])?;
    }
    let micros = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            // Nanoseconds truncated to microseconds, as `timestamp_micros` does. Six steps
            // whatever the length, so that the compiler unrolls them (a sandboxed loop pays a
            // deadline check per iteration); missing digits count as zeros.
            let mut micros = 0;
            for i in 0..6 {
                let value = match digits.get(i) {
                    Some(&b) => digit(b)?,
                    None => 0,
                };
                micros = micros * 10 + value;
            }
            for &b in digits.get(6..).unwrap_or_default() {
                digit(b)?;
            }
            micros
        }
        _ => return None,
    };
    // chrono checks the time (no leap second here).
    let pair = |i: usize| d[i] * 10 + d[i + 1];
    let time = chrono::NaiveTime::from_hms_micro_opt(pair(0), pair(2), pair(4), micros)?;
    Some(midnight + i64::from(time.num_seconds_from_midnight()) * 1_000_000 + i64::from(micros))
}

/// The date `YYYY-MM-DD` a column's previous timestamp had, and its midnight in microseconds
/// since the epoch. The timestamps of a column mostly come in runs of one date (nearly every
/// `last_updated` of a snapshot is on the day it was fetched), and then chrono's date check and
/// calendar arithmetic, most of the work left in a timestamp, run once a run instead of once a
/// row.
#[derive(Debug, Default)]
struct LastDate(Option<([u8; 10], i64)>);

impl LastDate {
    /// Midnight UTC of `date` in microseconds since the epoch, `None` when it is not a valid
    /// date of that exact shape.
    #[inline(always)]
    fn midnight(&mut self, date: &[u8; 10]) -> Option<i64> {
        if let Some((last, midnight)) = self.0
            && last == *date
        {
            return Some(midnight);
        }
        self.convert(date)
    }

    /// [`Self::midnight`] for a date other than the last one, kept out of the row loop.
    #[inline(never)]
    fn convert(&mut self, date: &[u8; 10]) -> Option<i64> {
        if [date[4], date[7]] != *b"--" {
            return None;
        }
        let mut d = [0u32; 8];
        for (value, at) in d.iter_mut().zip([0, 1, 2, 3, 5, 6, 8, 9]) {
            *value = digit(date[at])?;
        }
        let pair = |i: usize| d[i] * 10 + d[i + 1];
        // chrono checks the date and does the calendar arithmetic.
        let date_of =
            chrono::NaiveDate::from_ymd_opt((pair(0) * 100 + pair(2)) as i32, pair(4), pair(6))?;
        let midnight = date_of.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_micros();
        self.0 = Some((*date, midnight));
        Some(midnight)
    }
}

/// Whether `text` is empty or only white space (what `trim().is_empty()` says, without
/// scanning from both ends). Nearly every value starts with a visible ASCII character, which
/// answers without entering the loop (as WebAssembly, a loop entered checks the deadline).
fn is_blank(text: &str) -> bool {
    match text.as_bytes().first() {
        Some(b) if b.is_ascii_graphic() => false,
        _ => text.chars().all(char::is_whitespace),
    }
}

fn digit(byte: u8) -> Option<u32> {
    let value = byte.wrapping_sub(b'0');
    (value < 10).then_some(u32::from(value))
}

fn check_identity_and_size(
    input: &Input,
    output: &mut Output,
    reject: &mut impl FnMut(&mut Output, usize, String),
) -> Result<(), PluginError> {
    for name in IDENTITY {
        for (row, value) in input.text(name)?.iter().enumerate() {
            match value {
                None => reject(output, row, format!("`{name}` is null")),
                Some(v) if is_blank(v) => reject(output, row, format!("`{name}` is empty")),
                Some(_) => {}
            }
        }
    }
    for name in SIZE {
        for (row, value) in input.numbers(name)?.iter().enumerate() {
            match value {
                None => reject(output, row, format!("`{name}` is null")),
                Some(v) if !v.is_finite() => {
                    reject(output, row, format!("`{name}` is {v}, not a finite number"))
                }
                Some(v) if v < 0.0 => reject(output, row, format!("`{name}` is negative ({v})")),
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// Of rows sharing an `id`, keeps the one with the best (lowest) `market_cap_rank`; a missing rank
/// counts as worst, and ties keep the earlier row.
fn drop_duplicate_ids(
    input: &Input,
    output: &mut Output,
    reject: &mut impl FnMut(&mut Output, usize, String),
) -> Result<(), PluginError> {
    let ids = input.text("id")?;
    let ranks = input.int64("market_cap_rank").ok();
    let rank = |row: usize| ranks.and_then(|r| r.get(row)).unwrap_or(i64::MAX);
    let mut best: HashMap<ByBytes<&str>, usize, _> =
        HashMap::with_capacity_and_hasher(ids.len(), keyed());
    let mut losers = Vec::new();
    for (row, id) in ids.iter().enumerate() {
        let Some(id) = id.filter(|id| !is_blank(id)) else { continue };
        match best.entry(ByBytes(id)) {
            Entry::Vacant(slot) => {
                slot.insert(row);
            }
            Entry::Occupied(mut slot) => {
                let kept = *slot.get();
                if rank(row) < rank(kept) {
                    losers.push((kept, id, row));
                    slot.insert(row);
                } else {
                    losers.push((row, id, kept));
                }
            }
        }
    }
    for (row, id, _) in losers {
        let winner = best[&ByBytes(id)];
        let reason = match ranks.and_then(|r| r.get(winner)) {
            Some(r) => format!("duplicate id `{id}`: the row with market_cap_rank {r} is kept"),
            None => format!("duplicate id `{id}`: an earlier row with this id is kept"),
        };
        reject(output, row, reason);
    }
    Ok(())
}

/// A hash key that hashes its bytes and nothing else: a coin id, or a whole row's hash. `str`'s
/// and `u64`'s own `Hash` go through foldhash's 128-bit buffer (`str` adds a terminator byte, so
/// that strings hashed one after another stay apart, which a key of one value does not need:
/// foldhash mixes the length in), and WebAssembly emulates each shift into that buffer with a
/// call (`__ashlti3`).
#[derive(Clone, Copy, PartialEq, Eq)]
struct ByBytes<T>(T);

impl<T: AsRef<[u8]>> Hash for ByBytes<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_ref());
    }
}

/// The hashing for values from outside (ids, whole rows): foldhash, several times faster than
/// std's SipHash as WebAssembly, keyed from the system's random source (WASI's, in the sandbox)
/// so that values crafted to collide cannot be prepared in advance. foldhash's own seeding leans
/// on address randomisation, which a WebAssembly instance does not have.
fn keyed() -> SeedableRandomState {
    static SHARED: OnceLock<SharedSeed> = OnceLock::new();
    let random = || std::hash::RandomState::new().build_hasher().finish();
    let shared = SHARED.get_or_init(|| SharedSeed::from_u64(random()));
    SeedableRandomState::with_seed(random(), shared)
}

/// One column, read for the null and whole-row duplicate checks.
enum Cells<'a> {
    /// Floats compare as pandas does: -0.0 equals 0.0.
    Float(Values<'a, f64>),
    /// Int64 and timestamps.
    Int(Values<'a, i64>),
    Boolean(Values<'a, u8>),
    Text(Texts<'a>),
}

impl<'a> Cells<'a> {
    fn of(input: &'a Input, name: &str) -> Result<Self, PluginError> {
        Ok(if let Ok(v) = input.float64(name) {
            Cells::Float(v)
        } else if let Ok(v) = input.int64(name).or_else(|_| input.timestamp(name)) {
            Cells::Int(v)
        } else if let Ok(v) = input.boolean(name) {
            Cells::Boolean(v)
        } else {
            Cells::Text(input.text(name)?)
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Cells::Float(v) => v.get(row).is_none(),
            Cells::Int(v) => v.get(row).is_none(),
            Cells::Boolean(v) => v.get(row).is_none(),
            Cells::Text(v) => v.get(row).is_none(),
        }
    }

    fn float_key(x: f64) -> u64 {
        if x == 0.0 { 0 } else { x.to_bits() }
    }

    /// Feeds the cell's bytes to `hasher` (see [`ByBytes`] for why not through `Hash`). The cells
    /// need no separator: foldhash folds each `write` into its state on its own, its length
    /// mixed in, so `"ab", "c"` and `"a", "bc"` do not run together (with a hasher that
    /// concatenated writes, rows could be made to collide on purpose). Cells of different rows
    /// that hash alike are compared in full, so a collision never drops a row.
    fn hash(&self, row: usize, hasher: &mut FoldHasher<'_>) {
        match self {
            Cells::Float(v) => hasher.write(&Self::float_key(v.raw()[row]).to_le_bytes()),
            Cells::Int(v) => hasher.write(&v.raw()[row].to_le_bytes()),
            Cells::Boolean(v) => hasher.write(&[v.raw()[row]]),
            Cells::Text(v) => hasher.write(v.get(row).unwrap_or("").as_bytes()),
        }
    }

    fn same(&self, a: usize, b: usize) -> bool {
        match self {
            Cells::Float(v) => Self::float_key(v.raw()[a]) == Self::float_key(v.raw()[b]),
            Cells::Int(v) => v.raw()[a] == v.raw()[b],
            Cells::Boolean(v) => v.raw()[a] == v.raw()[b],
            Cells::Text(v) => v.get(a) == v.get(b),
        }
    }
}

fn drop_nulls_and_duplicate_rows(
    input: &Input,
    output: &mut Output,
    reject: &mut impl FnMut(&mut Output, usize, String),
) -> Result<(), PluginError> {
    let names: Vec<&str> = input.column_names().collect();
    let columns: Vec<Cells<'_>> =
        names.iter().map(|name| Cells::of(input, name)).collect::<Result<_, _>>()?;
    let rows = input.rows();
    let mut nulls: Vec<Vec<&str>> = vec![Vec::new(); rows];
    for (name, column) in names.iter().zip(&columns) {
        for (row, nulls) in nulls.iter_mut().enumerate() {
            if column.is_null(row) {
                nulls.push(name);
            }
        }
    }
    // Rows are grouped by a hash of their values and compared in full within a group, so a
    // hash collision never drops a row.
    let rows_hashed = keyed();
    let mut seen: HashMap<ByBytes<[u8; 8]>, Vec<usize>, _> =
        HashMap::with_capacity_and_hasher(rows, keyed());
    for (row, nulls) in nulls.iter().enumerate() {
        if !nulls.is_empty() {
            let reason =
                format!("seed-compat drops any row with a null; null in: {}", nulls.join(", "));
            reject(output, row, reason);
            continue;
        }
        let mut hasher = rows_hashed.build_hasher();
        columns.iter().for_each(|c| c.hash(row, &mut hasher));
        let group = seen.entry(ByBytes(hasher.finish().to_le_bytes())).or_default();
        match group.iter().find(|&&first| columns.iter().all(|c| c.same(first, row))) {
            Some(first) => {
                let reason =
                    format!("seed-compat drops duplicate rows; same values as row {first}");
                reject(output, row, reason);
            }
            None => group.push(row),
        }
    }
    Ok(())
}

export_plugin!(Clean);

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_etl_plugin_sdk::bindings::crypto_etl::plugin::types as wire;

    /// The rows `clean` rejects from `rows` rows of `columns` under `config`, with their
    /// reasons, by row.
    fn rejections(config: &[(&str, &str)], rows: u32, columns: Vec<Column>) -> Vec<(u32, String)> {
        let batch = wire::Batch {
            row_count: rows,
            columns: columns.into_iter().map(Column::into_wire).collect(),
        };
        let context = SnapshotContext {
            fetch_time: 0,
            currency: "usd".into(),
            market_total_cap: None,
            market_total_volume: None,
        };
        let config =
            Config::new(config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        let output = Clean::transform(&Input::new(config, batch, context)).unwrap().into_wire();
        let mut rejected: Vec<(u32, String)> =
            output.rejected.into_iter().map(|r| (r.row, r.reason)).collect();
        rejected.sort();
        rejected
    }

    #[test]
    fn seed_compat_drops_null_and_duplicate_rows_like_pandas() {
        let columns = vec![
            Column::text("id", [Some("a"), Some("a"), Some("b"), Some("a"), Some("c")]),
            Column::text("name", [Some("A"), Some("A"), Some("B"), Some("A2"), None]),
            // -0.0 and 0.0 are the same value to pandas.
            Column::float64("price", [0.0, -0.0, 1.0, 0.0, 2.0].map(Some)),
        ];
        assert_eq!(
            rejections(&[("mode", "seed-compat")], 5, columns),
            vec![
                (1, "seed-compat drops duplicate rows; same values as row 0".into()),
                (4, "seed-compat drops any row with a null; null in: name".into()),
            ]
        );
    }

    /// Blank means white space of any kind, as `trim` sees it; of duplicate ids the best rank
    /// wins wherever it comes, and a missing rank counts as worst.
    #[test]
    fn default_rejects_blank_identity_and_keeps_the_best_ranked_duplicate() {
        let ids = ["btc", "eth", "btc", "\u{3000}\t", "eth", "doge", "btc"];
        let ranks = [Some(5), None, Some(1), Some(9), Some(2), Some(3), Some(1)];
        let columns = vec![
            Column::text("id", ids.map(Some)),
            Column::text("symbol", ids.map(|_| Some("s"))),
            Column::text("name", ids.map(|_| Some(" x "))),
            Column::float64("current_price", ids.map(|_| Some(1.0))),
            Column::float64("market_cap", ids.map(|_| Some(1.0))),
            Column::float64("total_volume", ids.map(|_| Some(1.0))),
            Column::int64("market_cap_rank", ranks),
        ];
        assert_eq!(
            rejections(&[], ids.len() as u32, columns),
            vec![
                (0, "duplicate id `btc`: the row with market_cap_rank 1 is kept".into()),
                (1, "duplicate id `eth`: the row with market_cap_rank 2 is kept".into()),
                (3, "`id` is empty".into()),
                (6, "duplicate id `btc`: the row with market_cap_rank 1 is kept".into()),
            ]
        );
    }

    #[test]
    fn parses_coingecko_timestamps() {
        let parse = |text| parse_timestamp(text, &mut LastDate::default());
        assert_eq!(parse("1970-01-01T00:00:01.500Z"), Ok(1_500_000));
        assert_eq!(parse("2021-11-10T14:24:11.849Z"), Ok(1_636_554_251_849_000));
        assert!(parse("yesterday").is_err());
    }

    #[test]
    fn blank_means_what_trim_says() {
        let texts = [
            "",
            " ",
            "\t\r\n",
            "\u{b}\u{c}",
            "\u{a0}",
            "\u{2003} ",
            " a",
            "a",
            "~",
            "\u{a0}x",
            "é",
            "\0",
        ];
        for text in texts {
            assert_eq!(is_blank(text), text.trim().is_empty(), "{text:?}");
        }
    }

    /// The fast path gives what chrono's parser gives, or leaves the text to it, whatever came
    /// before it in the column: each text is also parsed right after each of the others.
    #[test]
    fn fast_timestamps_agree_with_chrono() {
        let chrono_only = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_micros()).ok()
        };
        let texts = [
            "2021-11-10T14:24:11.849Z",
            "2021-11-10T14:24:11Z",
            "2021-11-10T14:24:11.8Z",
            "2021-11-10T14:24:11.123456Z",
            "2021-11-10T14:24:11.123456789Z",
            "2021-11-10T14:24:11.1234567891Z",
            "2021-11-10T14:24:11.12345678Z",
            "2021-11-10T14:24:11.1234567x9Z",
            "2021-11-10T14:24:11.12345x7Z",
            "1969-12-31T23:59:59.999999Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "2024-02-29T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2021-00-10T00:00:00Z",
            "2021-11-00T00:00:00Z",
            "2021-13-01T00:00:00Z",
            "2021-11-31T00:00:00Z",
            "2021-11-10T24:00:00Z",
            "2021-11-10T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "2021-11-10t14:24:11Z",
            "2021-11-10 14:24:11Z",
            "2021-11-10T14:24:11z",
            "2021-11-10T14:24:11+02:00",
            "2021-11-10T14:24:11.849+00:00",
            "2021-11-10T14:24:11.Z",
            "2021-11-10T14:24:1Z",
            "2021-1-10T14:24:11Z",
            "+2021-11-10T14:24:11Z",
            "2021-11-10T14:24:11",
            "2021-11-10T14:24:11.8x9Z",
            "2021-11-10T14:24:11.849ZZ",
            "２021-11-10T14:24:11Z",
            "",
        ];
        for before in texts {
            for text in texts {
                // `parse_timestamp` answers with the fast path whenever it has an answer.
                let mut last_date = LastDate::default();
                let _ = parse_timestamp(before, &mut last_date);
                let parsed = parse_timestamp(text, &mut last_date).ok();
                assert_eq!(parsed, chrono_only(text), "{text:?} after {before:?}");
            }
        }
        let mut last_date = LastDate::default();
        assert!(parse_utc(b"2021-11-10T14:24:11.849Z", &mut last_date).is_some(), "fast path");
    }
}
