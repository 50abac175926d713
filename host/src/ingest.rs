//! Parses a CoinGecko `/coins/markets` response into a typed [`Batch`], in one streaming pass.
//!
//! Fields CoinGecko documents get a fixed type, so the warehouse schema does not change with what
//! a given snapshot happens to contain; other fields are typed by their first non-null value.
//! Nested values (`roi`, `sparkline_in_7d`) become compact JSON text. A value of the wrong type
//! does not stop the run: the row is rejected with a reason and goes to quarantine. What cannot
//! be read as a list of coins at all (not UTF-8, malformed JSON, CoinGecko's error object) is an
//! [`IngestError`] that says what was found and where.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use crate::batch::{self, Batch, Column, ColumnData};
use crate::names::is_valid_column_name;

/// Why a response could not be read as a list of coins.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the input is not UTF-8 text: invalid byte at offset {offset} (line {line})")]
    NotUtf8 { offset: usize, line: usize },
    #[error("CoinGecko returned an error instead of coins: {message}{}", code.map(|c| format!(" (error code {c})")).unwrap_or_default())]
    ApiError { code: Option<i64>, message: String },
    #[error("expected a JSON array of coins, found {found}")]
    NotAnArray { found: String },
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Malformed { line: usize, column: usize, message: String },
    #[error("column `{column}` holds more than 4 GiB of text")]
    TooLarge { column: String },
}

/// A row that could not be typed, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestRejection {
    pub row: usize,
    pub reason: String,
}

/// The parsed snapshot: every coin of the array as a row (including the rejected ones, whose
/// offending values are null), the rows to reject, and notes for the operator.
#[derive(Debug)]
pub struct Ingested {
    pub batch: Batch,
    pub rejected: Vec<IngestRejection>,
    pub warnings: Vec<String>,
}

/// How a column's values are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Float64,
    Int64,
    Text,
    /// Nested JSON, kept as compact JSON text.
    Json,
    Boolean,
}

/// The types of the fields CoinGecko documents for `/coins/markets`.
fn known_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "id" | "symbol" | "name" | "image" | "ath_date" | "atl_date" | "last_updated" => Kind::Text,
        // Whole numbers that exceed 2^53 in currencies such as IDR or VND: kept exact.
        "market_cap" | "market_cap_rank" | "fully_diluted_valuation" => Kind::Int64,
        "roi" | "sparkline_in_7d" => Kind::Json,
        "current_price"
        | "total_volume"
        | "high_24h"
        | "low_24h"
        | "price_change_24h"
        | "price_change_percentage_24h"
        | "market_cap_change_24h"
        | "market_cap_change_percentage_24h"
        | "circulating_supply"
        | "total_supply"
        | "max_supply"
        | "ath"
        | "ath_change_percentage"
        | "atl"
        | "atl_change_percentage" => Kind::Float64,
        n if n.starts_with("price_change_percentage_") && n.ends_with("_in_currency") => {
            Kind::Float64
        }
        _ => return None,
    })
}

/// Values of one column as they are parsed.
#[derive(Debug)]
enum Builder {
    /// Only nulls so far, and no known type: the first value decides.
    Untyped {
        nulls: usize,
    },
    Float64 {
        values: Vec<f64>,
        valid: Vec<u8>,
    },
    Int64 {
        values: Vec<i64>,
        valid: Vec<u8>,
    },
    Text {
        data: String,
        offsets: Vec<u32>,
        valid: Vec<u8>,
        json: bool,
    },
    Boolean {
        values: Vec<u8>,
        valid: Vec<u8>,
    },
}

impl Builder {
    fn new(kind: Option<Kind>, nulls: usize) -> Self {
        let mut builder = match kind {
            None => return Builder::Untyped { nulls },
            Some(Kind::Float64) => Builder::Float64 { values: Vec::new(), valid: Vec::new() },
            Some(Kind::Int64) => Builder::Int64 { values: Vec::new(), valid: Vec::new() },
            Some(Kind::Boolean) => Builder::Boolean { values: Vec::new(), valid: Vec::new() },
            Some(kind @ (Kind::Text | Kind::Json)) => Builder::Text {
                data: String::new(),
                offsets: vec![0],
                valid: Vec::new(),
                json: kind == Kind::Json,
            },
        };
        for _ in 0..nulls {
            builder.push_null();
        }
        builder
    }

    fn len(&self) -> usize {
        match self {
            Builder::Untyped { nulls } => *nulls,
            Builder::Float64 { valid, .. }
            | Builder::Int64 { valid, .. }
            | Builder::Text { valid, .. }
            | Builder::Boolean { valid, .. } => valid.len(),
        }
    }

    fn expected(&self) -> &'static str {
        match self {
            Builder::Untyped { .. } => "any value",
            Builder::Float64 { .. } => "a number",
            Builder::Int64 { .. } => "a whole number",
            Builder::Text { json: false, .. } => "a string",
            Builder::Text { json: true, .. } => "JSON",
            Builder::Boolean { .. } => "true or false",
        }
    }

    fn push_null(&mut self) {
        match self {
            Builder::Untyped { nulls } => *nulls += 1,
            Builder::Float64 { values, valid } => {
                values.push(0.0);
                valid.push(0);
            }
            Builder::Int64 { values, valid } => {
                values.push(0);
                valid.push(0);
            }
            Builder::Boolean { values, valid } => {
                values.push(0);
                valid.push(0);
            }
            Builder::Text { data, offsets, valid, .. } => {
                offsets.push(data.len() as u32);
                valid.push(0);
            }
        }
    }

    /// Gives an untyped column the type of its first value.
    fn settle(&mut self, kind: Kind) {
        if let Builder::Untyped { nulls } = *self {
            *self = Builder::new(Some(kind), nulls);
        }
    }

    /// Appends `other`'s values; `None` when the two hold different types or the text would
    /// pass 4 GiB.
    fn append(&mut self, other: Builder) -> Option<()> {
        match (&mut *self, other) {
            (_, Builder::Untyped { nulls }) => {
                for _ in 0..nulls {
                    self.push_null();
                }
            }
            (Builder::Untyped { nulls }, other) => {
                let mut typed = match &other {
                    Builder::Float64 { .. } => Builder::new(Some(Kind::Float64), *nulls),
                    Builder::Int64 { .. } => Builder::new(Some(Kind::Int64), *nulls),
                    Builder::Boolean { .. } => Builder::new(Some(Kind::Boolean), *nulls),
                    Builder::Text { json: false, .. } => Builder::new(Some(Kind::Text), *nulls),
                    Builder::Text { json: true, .. } => Builder::new(Some(Kind::Json), *nulls),
                    Builder::Untyped { .. } => unreachable!("matched above"),
                };
                typed.append(other)?;
                *self = typed;
            }
            (Builder::Float64 { values, valid }, Builder::Float64 { values: v, valid: ok }) => {
                values.extend_from_slice(&v);
                valid.extend_from_slice(&ok);
            }
            (Builder::Int64 { values, valid }, Builder::Int64 { values: v, valid: ok }) => {
                values.extend_from_slice(&v);
                valid.extend_from_slice(&ok);
            }
            (Builder::Boolean { values, valid }, Builder::Boolean { values: v, valid: ok }) => {
                values.extend_from_slice(&v);
                valid.extend_from_slice(&ok);
            }
            (
                Builder::Text { data, offsets, valid, json },
                Builder::Text { data: d, offsets: o, valid: ok, json: j },
            ) if *json == j => {
                // Past 4 GiB the body is parsed again in one pass, which refuses the column.
                let base = u32::try_from(data.len()).ok()?;
                base.checked_add(u32::try_from(d.len()).ok()?)?;
                data.push_str(&d);
                offsets.extend(o[1..].iter().map(|o| o + base));
                valid.extend_from_slice(&ok);
            }
            _ => return None,
        }
        Some(())
    }

    fn into_data(self, rows: usize, name: &str) -> Result<ColumnData, IngestError> {
        Ok(match self {
            Builder::Untyped { .. } => {
                // Null in every row: keep the column (the field exists) as text.
                ColumnData::Text {
                    data: String::new(),
                    offsets: vec![0; rows + 1],
                    valid: vec![0; rows],
                }
            }
            Builder::Float64 { values, valid } => {
                ColumnData::Float64 { values, valid: batch::normalized(valid) }
            }
            Builder::Int64 { values, valid } => {
                ColumnData::Int64 { values, valid: batch::normalized(valid) }
            }
            Builder::Boolean { values, valid } => {
                ColumnData::Boolean { values, valid: batch::normalized(valid) }
            }
            Builder::Text { data, offsets, valid, .. } => {
                if u32::try_from(data.len()).is_err() {
                    return Err(IngestError::TooLarge { column: name.to_owned() });
                }
                ColumnData::Text { data, offsets, valid: batch::normalized(valid) }
            }
        })
    }
}

/// One column being built.
#[derive(Debug)]
struct ColumnBuilder {
    name: String,
    values: Builder,
    /// Integers above 2^53 that a float column could only store rounded.
    rounded: usize,
}

/// The state of the whole parse.
#[derive(Debug, Default)]
struct State {
    columns: Vec<ColumnBuilder>,
    index: HashMap<String, usize>,
    rows: usize,
    /// Where the previous key was found, to guess the next one (rows share a key order).
    cursor: usize,
    /// Problems with the current row.
    issues: Vec<String>,
    rejected: Vec<IngestRejection>,
    skipped_fields: Vec<String>,
}

impl State {
    fn column_for(&mut self, key: &str) -> Option<usize> {
        if self.columns.get(self.cursor).is_some_and(|c| c.name == key) {
            let found = self.cursor;
            self.cursor += 1;
            return Some(found);
        }
        if let Some(&found) = self.index.get(key) {
            self.cursor = found + 1;
            return Some(found);
        }
        if !is_valid_column_name(key) {
            if !self.skipped_fields.iter().any(|s| s == key) {
                self.skipped_fields.push(key.to_owned());
            }
            return None;
        }
        let found = self.columns.len();
        self.columns.push(ColumnBuilder {
            name: key.to_owned(),
            values: Builder::new(known_kind(key), self.rows),
            rounded: 0,
        });
        self.index.insert(key.to_owned(), found);
        self.cursor = found + 1;
        Some(found)
    }

    /// Makes room for about `rows` more rows in every column, each text column as much text
    /// again per row as it holds so far per row: growing by doubling instead copies every column
    /// several times over.
    fn reserve(&mut self, rows: usize) {
        let done = self.rows.max(1);
        for column in &mut self.columns {
            match &mut column.values {
                Builder::Untyped { .. } => {}
                Builder::Float64 { values, valid } => {
                    values.reserve(rows);
                    valid.reserve(rows);
                }
                Builder::Int64 { values, valid } => {
                    values.reserve(rows);
                    valid.reserve(rows);
                }
                Builder::Boolean { values, valid } => {
                    values.reserve(rows);
                    valid.reserve(rows);
                }
                Builder::Text { data, offsets, valid, .. } => {
                    data.reserve(data.len() / done * rows);
                    offsets.reserve(rows);
                    valid.reserve(rows);
                }
            }
        }
    }

    fn finish_row(&mut self) {
        for column in &mut self.columns {
            if column.values.len() == self.rows {
                column.values.push_null();
            }
        }
        if !self.issues.is_empty() {
            let reason = std::mem::take(&mut self.issues).join("; ");
            self.rejected.push(IngestRejection { row: self.rows, reason });
        }
        self.rows += 1;
    }
}

/// Reads one value into a column, recording a type mismatch as an issue of the row.
struct Cell<'s> {
    state: &'s mut State,
    column: usize,
}

impl Cell<'_> {
    fn builder(&mut self) -> &mut Builder {
        &mut self.state.columns[self.column].values
    }

    fn mismatch(&mut self, found: String) {
        let column = &self.state.columns[self.column];
        let issue =
            format!("`{}`: expected {}, found {found}", column.name, column.values.expected());
        self.state.issues.push(issue);
        self.builder().push_null();
    }

    fn push_text(&mut self, text: &str) {
        if let Builder::Text { data, offsets, valid, .. } = self.builder() {
            data.push_str(text);
            offsets.push(data.len() as u32);
            valid.push(1);
        }
    }

    fn push_f64(&mut self, value: f64) {
        if let Builder::Float64 { values, valid } = self.builder() {
            values.push(value);
            valid.push(1);
        }
    }

    fn push_i64(&mut self, value: i64) {
        if let Builder::Int64 { values, valid } = self.builder() {
            values.push(value);
            valid.push(1);
        }
    }

    fn integer(&mut self, value: i128) {
        self.builder().settle(Kind::Float64);
        match self.builder() {
            Builder::Int64 { .. } => match i64::try_from(value) {
                Ok(v) => self.push_i64(v),
                Err(_) => self.mismatch(format!("{value}, which does not fit 64 bits")),
            },
            Builder::Float64 { .. } => {
                let float = value as f64;
                if float as i128 != value {
                    self.state.columns[self.column].rounded += 1;
                }
                self.push_f64(float);
            }
            Builder::Text { json: true, .. } => self.push_text(&value.to_string()),
            _ => self.mismatch(format!("the number {value}")),
        }
    }

    fn json(&mut self, value: Json, what: &str) {
        self.builder().settle(Kind::Json);
        match self.builder() {
            Builder::Text { json: true, .. } => self.push_text(&value.to_string()),
            _ => self.mismatch(format!("{what} {}", truncate(&value.to_string()))),
        }
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

impl<'de> DeserializeSeed<'de> for Cell<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Cell<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.builder().push_null();
        Ok(())
    }

    fn visit_bool<E: de::Error>(mut self, value: bool) -> Result<(), E> {
        self.builder().settle(Kind::Boolean);
        match self.builder() {
            Builder::Boolean { values, valid } => {
                values.push(u8::from(value));
                valid.push(1);
            }
            Builder::Text { json: true, .. } => {
                self.push_text(if value { "true" } else { "false" })
            }
            _ => self.mismatch(format!("{value}")),
        }
        Ok(())
    }

    fn visit_i64<E: de::Error>(mut self, value: i64) -> Result<(), E> {
        self.integer(value.into());
        Ok(())
    }

    fn visit_u64<E: de::Error>(mut self, value: u64) -> Result<(), E> {
        self.integer(value.into());
        Ok(())
    }

    fn visit_f64<E: de::Error>(mut self, value: f64) -> Result<(), E> {
        self.builder().settle(Kind::Float64);
        match self.builder() {
            Builder::Float64 { .. } => self.push_f64(value),
            Builder::Int64 { .. } => {
                // `1.5e10` style whole numbers are fine; fractions and overflow are not.
                if value.fract() == 0.0 && value.abs() < 9.2e18 {
                    self.push_i64(value as i64);
                } else {
                    self.mismatch(format!("{value}"));
                }
            }
            Builder::Text { json: true, .. } => self.push_text(&Json::from(value).to_string()),
            _ => self.mismatch(format!("the number {value}")),
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(mut self, value: &str) -> Result<(), E> {
        self.builder().settle(Kind::Text);
        match self.builder() {
            Builder::Text { json: false, .. } => self.push_text(value),
            Builder::Text { json: true, .. } => self.push_text(&Json::from(value).to_string()),
            _ => self.mismatch(format!("the string {:?}", truncate(value))),
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        let value: Json =
            serde::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.json(value, "the object");
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, seq: A) -> Result<(), A::Error> {
        let value: Json =
            serde::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        self.json(value, "the array");
        Ok(())
    }
}

/// One coin object.
struct Coin<'s> {
    state: &'s mut State,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for Coin<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Coin<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "element {} of the array to be a coin object", self.index)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.state;
        state.cursor = 0;
        while let Some(found) = map.next_key_seed(Key { state: &mut *state })? {
            match found {
                Some(column) if state.columns[column].values.len() > state.rows => {
                    let issue = format!("field `{}` appears twice", state.columns[column].name);
                    state.issues.push(issue);
                    map.next_value::<IgnoredAny>()?;
                }
                Some(column) => map.next_value_seed(Cell { state: &mut *state, column })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        state.finish_row();
        Ok(())
    }
}

/// A coin's key, looked up as the column it names (`None`: a field skipped). The key is read
/// where it lies in the input: deserializing it as a `String` (or a `Cow`, which serde always
/// makes owned) would allocate for every field of every coin.
struct Key<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.state.column_for(key))
    }
}

/// The top-level array.
struct Coins<'s> {
    state: &'s mut State,
}

impl<'de> Visitor<'de> for Coins<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of coins")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let index = self.state.rows;
            if seq.next_element_seed(Coin { state: &mut *self.state, index })?.is_none() {
                return Ok(());
            }
        }
    }
}

/// Bodies at least this large are parsed in parallel, one chunk of coins per thread.
const PARALLEL_FROM: usize = 4 << 20;
/// The coins whose average size estimates how many coins a chunk holds.
const SIZE_SAMPLE: usize = 64;
/// How many bytes a chunk reads between telling that it is done with them.
const DONE_EVERY: usize = 4 << 20;

/// Parses a `/coins/markets` response body.
///
/// A large body is cut into chunks at boundaries between coins and the chunks are parsed on
/// several threads, coin by coin, then joined. The result is the same as one pass from start to
/// end would give: where a cut turns out not to fall between two coins, a chunk does not parse,
/// or the chunks do not agree on a column's type, the body is parsed again in one pass, which
/// also gives any error its exact line and column.
pub fn ingest(bytes: &[u8]) -> Result<Ingested, IngestError> {
    parse(bytes, &|_| {})?.finish()
}

/// A parsed body, still in the chunks it was parsed in: [`Parsed::finish`] joins them. Splitting
/// the two lets a caller free the raw bytes first, so they and the joined columns are never in
/// memory together.
#[derive(Debug)]
pub struct Parsed {
    chunks: Vec<State>,
}

impl Parsed {
    /// The batch, rejections and warnings.
    pub fn finish(self) -> Result<Ingested, IngestError> {
        let mut chunks = self.chunks.into_iter();
        let mut joined = chunks.next().unwrap_or_default();
        for chunk in chunks {
            joined = join(joined, chunk)?;
        }
        finish(joined)
    }
}

/// The first half of [`ingest`]: everything that reads `bytes`. As chunks are parsed, `done` is
/// told which ranges of `bytes` they have read, so that a mapped file's pages can be let go
/// before the whole body is parsed (the bytes must still read the same if touched again: a
/// chunk that does not parse sends the body through a second pass).
pub fn parse(bytes: &[u8], done: &(dyn Fn(Range<usize>) + Sync)) -> Result<Parsed, IngestError> {
    let parts = if bytes.len() >= PARALLEL_FROM { crate::worker_threads() } else { 1 };
    parse_in_parts(bytes, parts, done)
}

/// [`ingest`], cutting the body into at most `parts` chunks.
#[cfg(test)]
fn ingest_in_parts(bytes: &[u8], parts: usize) -> Result<Ingested, IngestError> {
    parse_in_parts(bytes, parts, &|_| {})?.finish()
}

fn parse_in_parts(
    bytes: &[u8],
    parts: usize,
    done: &(dyn Fn(Range<usize>) + Sync),
) -> Result<Parsed, IngestError> {
    // Only what comes before the array is checked here; each chunk checks its own text.
    let bom = if bytes.starts_with("\u{feff}".as_bytes()) { 3 } else { 0 };
    let start = bom
        + bytes[bom..].iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len() - bom);
    if bytes.get(start) != Some(&b'[') {
        let text = as_text(bytes)?;
        return Err(describe_non_array(&text[start..]));
    }
    if parts > 1 {
        let cuts = cut_points(&bytes[start..], parts);
        if !cuts.is_empty() {
            if let Some(chunks) = parse_chunks(bytes, start, &cuts, done) {
                tracing::debug!(chunks = chunks.len(), "parsed in parallel");
                return Ok(Parsed { chunks });
            }
            tracing::debug!("parsing again in one pass: the chunks would not join exactly");
        }
    }
    Ok(Parsed { chunks: vec![parse_whole(as_text(bytes)?, start)?] })
}

fn as_text(bytes: &[u8]) -> Result<&str, IngestError> {
    // simdutf8's `compat` flavour says where the first invalid byte is, as std's check does.
    simdutf8::compat::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        IngestError::NotUtf8 {
            offset,
            line: 1 + bytes[..offset].iter().filter(|b| **b == b'\n').count(),
        }
    })
}

/// Parses `text[start..]`, one array of coins, in one pass.
fn parse_whole(text: &str, start: usize) -> Result<State, IngestError> {
    let body = &text[start..];
    let mut state = State::default();
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let parsed =
        deserializer.deserialize_seq(Coins { state: &mut state }).and_then(|()| deserializer.end());
    parsed.map_err(|e| {
        // Line numbers count from the start of the file, not of the trimmed body.
        let skipped_lines = text[..start].matches('\n').count();
        IngestError::Malformed {
            line: e.line() + skipped_lines,
            column: e.column(),
            message: e.to_string().split(" at line ").next().unwrap_or_default().to_owned(),
        }
    })?;
    Ok(state)
}

fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// The number of JSON whitespace bytes `bytes` starts with.
fn whitespace(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| is_space(b)).count()
}

/// Where to cut `body` (an array) into about `parts` chunks: for each cut, the offsets of a `}`
/// and of the `,` after it, when only whitespace lies between them and the next `{`. A cut may
/// still fall inside a string; [`parse_chunks`] finds out.
fn cut_points(body: &[u8], parts: usize) -> Vec<(usize, usize)> {
    let mut cuts = Vec::with_capacity(parts - 1);
    let mut from = 1;
    for part in 1..parts {
        let target = (body.len() * part / parts).max(from);
        let Some(cut) = next_boundary(body, target) else { break };
        cuts.push(cut);
        from = cut.1 + 1;
    }
    cuts
}

fn next_boundary(body: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut at = from;
    while at < body.len() {
        let close = at + body[at..].iter().position(|b| *b == b'}')?;
        let mut next = close + 1;
        next += whitespace(&body[next..]);
        if body.get(next) == Some(&b',') {
            let comma = next;
            next += 1;
            next += whitespace(&body[next..]);
            if body.get(next) == Some(&b'{') {
                return Some((close, comma));
            }
        }
        at = close + 1;
    }
    None
}

/// Parses the coins between `cuts` on one thread each; `None` when the cuts do not all fall
/// between coins or the chunks cannot be joined exactly.
fn parse_chunks(
    bytes: &[u8],
    start: usize,
    cuts: &[(usize, usize)],
    done: &(dyn Fn(Range<usize>) + Sync),
) -> Option<Vec<State>> {
    // Each chunk runs from just after the `[` or a cut's comma to just after the next cut's `}`;
    // the last one takes the closing `]` and what follows it.
    let mut ranges = Vec::with_capacity(cuts.len() + 1);
    let mut from = start + 1;
    for &(close, comma) in cuts {
        ranges.push((from, start + close + 1, false));
        from = start + comma + 1;
    }
    ranges.push((from, bytes.len(), true));
    // The other chunks are joined onto the first, so it makes room for the whole body.
    let body = bytes.len() - start;
    let states = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .into_iter()
            .enumerate()
            .map(|(i, (from, to, last))| {
                let room = if i == 0 { body } else { to - from };
                let read = move |range: Range<usize>| done(from + range.start..from + range.end);
                scope.spawn(move || parse_chunk(&bytes[from..to], last, room, read))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect::<Vec<_>>()
    });
    let states: Vec<State> = states.into_iter().collect::<Option<_>>()?;
    joinable(&states).then_some(states)
}

/// Whether every column has one type in all the chunks that type it, and fits 4 GiB of text.
fn joinable(states: &[State]) -> bool {
    let mut seen: HashMap<&str, (std::mem::Discriminant<Builder>, bool, usize)> = HashMap::new();
    for column in states.iter().flat_map(|s| &s.columns) {
        let (json, text) = match &column.values {
            Builder::Untyped { .. } => continue,
            Builder::Text { json, data, .. } => (*json, data.len()),
            _ => (false, 0),
        };
        let kind = std::mem::discriminant(&column.values);
        let entry = seen.entry(&column.name).or_insert((kind, json, 0));
        if (entry.0, entry.1) != (kind, json) {
            return false;
        }
        entry.2 += text;
        if u32::try_from(entry.2).is_err() {
            return false;
        }
    }
    true
}

/// One chunk: coins separated by commas, of which only the last chunk has the array's closing
/// `]` (and perhaps whitespace after it). Each coin is parsed on its own, so a chunk that is not
/// the last simply ends after its final coin. `None` when the chunk is not exactly that.
/// Once [`SIZE_SAMPLE`] coins are parsed, columns make room for the coins of `room` bytes.
fn parse_chunk(
    chunk: &[u8],
    last: bool,
    room: usize,
    done: impl Fn(Range<usize>),
) -> Option<State> {
    // Checking the whole chunk at once is faster than checking each string as it is parsed, and
    // with SIMD (simdutf8) several times faster again than std's check.
    let text = simdutf8::basic::from_utf8(chunk).ok()?;
    let mut state = State::default();
    let mut at = 0;
    let mut reported = 0;
    loop {
        let index = state.rows;
        // `at` is just after ASCII (whitespace or a comma), so on a character boundary.
        let mut coin = serde_json::Deserializer::from_str(&text[at..]);
        Coin { state: &mut state, index }.deserialize(&mut coin).ok()?;
        at += coin.into_iter::<IgnoredAny>().byte_offset();
        if index + 1 == SIZE_SAMPLE {
            // Coins are much alike in size: the first ones tell about how many there are.
            let rows = room / at.max(1) * SIZE_SAMPLE;
            state.reserve(rows + rows / 8 - SIZE_SAMPLE);
        }
        if at - reported >= DONE_EVERY {
            done(reported..at);
            reported = at;
        }
        at += whitespace(&chunk[at..]);
        match chunk.get(at) {
            None if !last => return Some(state),
            Some(b',') => at += 1,
            Some(b']') if last => break,
            _ => return None,
        }
    }
    at += 1;
    (at + whitespace(&chunk[at..]) == chunk.len()).then_some(state)
}

/// `a` followed by `b`, as one pass over both would have built it. [`joinable`] has checked that
/// they agree on every column's type and fit.
fn join(mut a: State, b: State) -> Result<State, IngestError> {
    let (rows_a, rows_b) = (a.rows, b.rows);
    // What `b` adds to each of `a`'s columns (new ones added first): its values, or nulls.
    let mut incoming: Vec<Builder> =
        a.columns.iter().map(|_| Builder::Untyped { nulls: rows_b }).collect();
    for column in b.columns {
        let at = match a.index.get(&column.name) {
            Some(&at) => at,
            None => {
                let at = a.columns.len();
                a.index.insert(column.name.clone(), at);
                a.columns.push(ColumnBuilder {
                    name: column.name.clone(),
                    values: Builder::Untyped { nulls: rows_a },
                    rounded: 0,
                });
                incoming.push(Builder::Untyped { nulls: rows_b });
                at
            }
        };
        a.columns[at].rounded += column.rounded;
        incoming[at] = column.values;
    }
    append_all(&mut a.columns, incoming)?;
    a.rejected.extend(
        b.rejected.into_iter().map(|r| IngestRejection { row: r.row + rows_a, reason: r.reason }),
    );
    for field in b.skipped_fields {
        if !a.skipped_fields.contains(&field) {
            a.skipped_fields.push(field);
        }
    }
    a.rows += rows_b;
    Ok(a)
}

/// Appends `incoming[i]` to `columns[i]` for every column, the columns shared out among
/// threads: copying tens of megabytes is work for every core.
fn append_all(columns: &mut [ColumnBuilder], incoming: Vec<Builder>) -> Result<(), IngestError> {
    fn append(columns: &mut [ColumnBuilder], incoming: Vec<Builder>) -> Result<(), IngestError> {
        for (column, values) in columns.iter_mut().zip(incoming) {
            column
                .values
                .append(values)
                .ok_or_else(|| IngestError::TooLarge { column: column.name.clone() })?;
        }
        Ok(())
    }
    let threads = crate::worker_threads();
    let per_thread = columns.len().div_ceil(threads).max(1);
    let mut incoming = incoming.into_iter();
    std::thread::scope(|scope| {
        let handles: Vec<_> = columns
            .chunks_mut(per_thread)
            .map(|columns| {
                let mine: Vec<Builder> = incoming.by_ref().take(columns.len()).collect();
                scope.spawn(move || append(columns, mine))
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// The batch, rejections and warnings of a finished parse.
fn finish(state: State) -> Result<Ingested, IngestError> {
    let rows = state.rows;
    let mut warnings = Vec::new();
    if !state.skipped_fields.is_empty() {
        warnings.push(format!(
            "ignored field(s) whose names are not valid column names: {}",
            state.skipped_fields.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut columns = Vec::with_capacity(state.columns.len());
    for column in state.columns {
        if column.rounded > 0 {
            warnings.push(format!(
                "`{}`: {} integer(s) above 2^53 stored as the nearest float64 (the raw snapshot keeps them exact)",
                column.name, column.rounded
            ));
        }
        let data = column.values.into_data(rows, &column.name)?;
        columns.push(Column { name: column.name, data });
    }
    Ok(Ingested { batch: Batch::new(rows, columns), rejected: state.rejected, warnings })
}

/// Says what a body that is not an array is, recognising CoinGecko's error objects.
fn describe_non_array(body: &str) -> IngestError {
    if body.is_empty() {
        return IngestError::NotAnArray { found: "an empty file".into() };
    }
    let value: Json = match serde_json::from_str(body) {
        Ok(value) => value,
        Err(e) => {
            return IngestError::Malformed {
                line: e.line(),
                column: e.column(),
                message: e.to_string().split(" at line ").next().unwrap_or_default().to_owned(),
            };
        }
    };
    if let Some(status) = value.get("status").filter(|s| s.get("error_message").is_some()) {
        return IngestError::ApiError {
            code: status.get("error_code").and_then(Json::as_i64),
            message: status["error_message"].as_str().unwrap_or_default().to_owned(),
        };
    }
    if let Some(message) = value.get("error").and_then(Json::as_str) {
        return IngestError::ApiError { code: None, message: message.to_owned() };
    }
    let found = match &value {
        Json::Object(map) => {
            let keys: Vec<&str> = map.keys().take(8).map(String::as_str).collect();
            format!("an object with keys {}", keys.join(", "))
        }
        Json::String(_) => "a string".into(),
        Json::Number(_) => "a number".into(),
        Json::Bool(_) => "a boolean".into(),
        Json::Null => "null".into(),
        Json::Array(_) => unreachable!("arrays are streamed"),
    };
    IngestError::NotAnArray { found }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{ColumnType, Value};

    fn parse(json: impl AsRef<[u8]>) -> Result<Ingested, IngestError> {
        ingest(json.as_ref())
    }

    fn value<'b>(batch: &'b Batch, column: &str, row: usize) -> Value<'b> {
        batch.column(column).unwrap_or_else(|| panic!("no column {column}")).data.value(row)
    }

    #[test]
    fn types_known_fields_and_keeps_big_integers_exact() {
        let json = r#"[
          {"id": "bitcoin", "market_cap": 12345678901234567, "current_price": 2, "max_supply": null,
           "roi": {"times": 1.5, "currency": "usd"}, "ath_date": "2021-11-10T14:24:11.849Z"},
          {"id": "dog", "name": "DOG•GO•TO•THE•MOON", "market_cap": 1.0e3, "current_price": 0.5,
           "max_supply": 21000000, "roi": null}
        ]"#;
        let ingested = parse(json).unwrap();
        let batch = &ingested.batch;
        assert_eq!(batch.rows(), 2);
        assert!(ingested.rejected.is_empty(), "{:?}", ingested.rejected);
        let schema = batch.schema();
        assert_eq!(schema.get("market_cap").unwrap().column_type, ColumnType::Int64);
        assert_eq!(schema.get("current_price").unwrap().column_type, ColumnType::Float64);
        assert_eq!(value(batch, "market_cap", 0), Value::Int64(12_345_678_901_234_567));
        assert_eq!(value(batch, "market_cap", 1), Value::Int64(1000));
        assert_eq!(value(batch, "current_price", 0), Value::Float64(2.0));
        assert_eq!(value(batch, "max_supply", 0), Value::Null);
        assert_eq!(value(batch, "roi", 0), Value::Text(r#"{"times":1.5,"currency":"usd"}"#));
        assert_eq!(value(batch, "roi", 1), Value::Null);
        // A field missing from a row is null in that row.
        assert_eq!(value(batch, "name", 0), Value::Null);
        assert_eq!(value(batch, "name", 1), Value::Text("DOG•GO•TO•THE•MOON"));
        assert_eq!(value(batch, "ath_date", 1), Value::Null);
    }

    #[test]
    fn wrong_types_reject_the_row_with_a_reason() {
        let json = r#"[{"id": "a", "current_price": "1.0"}, {"id": 7, "current_price": 1},
                       {"id": "c", "market_cap": 1.5}]"#;
        let ingested = parse(json).unwrap();
        assert_eq!(ingested.batch.rows(), 3);
        let reasons: Vec<_> =
            ingested.rejected.iter().map(|r| (r.row, r.reason.as_str())).collect();
        assert_eq!(
            reasons,
            vec![
                (0, r#"`current_price`: expected a number, found the string "1.0""#),
                (1, "`id`: expected a string, found the number 7"),
                (2, "`market_cap`: expected a whole number, found 1.5"),
            ]
        );
    }

    #[test]
    fn unknown_fields_are_typed_by_their_first_value() {
        let json = r#"[{"id": "a", "extra": null, "flag": true, "nested": [1, 2]},
                       {"id": "b", "extra": 1.5, "flag": false, "nested": {"k": "v"}}]"#;
        let batch = parse(json).unwrap().batch;
        let schema = batch.schema();
        assert_eq!(schema.get("extra").unwrap().column_type, ColumnType::Float64);
        assert_eq!(schema.get("flag").unwrap().column_type, ColumnType::Boolean);
        assert_eq!(value(&batch, "extra", 0), Value::Null);
        assert_eq!(value(&batch, "nested", 0), Value::Text("[1,2]"));
        assert_eq!(value(&batch, "nested", 1), Value::Text(r#"{"k":"v"}"#));
    }

    #[test]
    fn big_integers_in_float_columns_are_reported() {
        let json = r#"[{"id": "baby-doge-coin", "circulating_supply": 159278394658793761}]"#;
        let ingested = parse(json).unwrap();
        assert_eq!(ingested.warnings.len(), 1, "{:?}", ingested.warnings);
        assert!(ingested.warnings[0].contains("circulating_supply"));
    }

    #[test]
    fn hostile_field_names_are_skipped() {
        let json = r#"[{"id": "a", "x\"; DROP TABLE t; --": 1, "Upper": 2}]"#;
        let ingested = parse(json).unwrap();
        assert_eq!(ingested.batch.schema().names().collect::<Vec<_>>(), vec!["id"]);
        assert!(ingested.warnings[0].contains("DROP TABLE"));
    }

    #[test]
    fn escaped_field_names_name_the_same_column() {
        // Keys are looked up where they lie in the input unless they hold an escape.
        let ingested =
            parse(br#"[{"id": "a", "symbol": "x"}, {"i\u0064": "b", "sym\u0062ol": "y"}]"#)
                .unwrap();
        assert_eq!(ingested.batch.schema().names().collect::<Vec<_>>(), vec!["id", "symbol"]);
        assert_eq!(value(&ingested.batch, "id", 1), Value::Text("b"));
        assert_eq!(value(&ingested.batch, "symbol", 1), Value::Text("y"));
    }

    #[test]
    fn duplicate_fields_reject_the_row() {
        let ingested = parse(br#"[{"id": "a", "id": "b"}]"#).unwrap();
        assert_eq!(ingested.rejected[0].reason, "field `id` appears twice");
        assert_eq!(value(&ingested.batch, "id", 0), Value::Text("a"));
    }

    #[test]
    fn what_is_not_a_list_of_coins_is_a_clear_error() {
        let rate_limited =
            br#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit."}}"#;
        let err = parse(rate_limited).unwrap_err().to_string();
        assert_eq!(
            err,
            "CoinGecko returned an error instead of coins: You've exceeded the Rate Limit. (error code 429)"
        );
        let err = parse(b"[{\"id\": \"a\",\n  \"x\": }]").unwrap_err().to_string();
        assert!(err.starts_with("malformed JSON at line 2, column"), "{err}");
        let err = parse(b"[1]").unwrap_err().to_string();
        assert!(err.contains("expected element 0 of the array to be a coin object"), "{err}");
        let err = parse(b"\n\n\xff").unwrap_err().to_string();
        assert_eq!(err, "the input is not UTF-8 text: invalid byte at offset 2 (line 3)");
        let err = parse(b"{\"coins\": []}").unwrap_err().to_string();
        assert_eq!(err, "expected a JSON array of coins, found an object with keys coins");
        assert!(parse(b"").unwrap_err().to_string().contains("an empty file"));
    }

    #[test]
    fn an_empty_array_is_an_empty_batch() {
        let ingested = parse(b"[]").unwrap();
        assert_eq!(ingested.batch.rows(), 0);
        assert!(ingested.batch.columns().is_empty());
    }

    /// Chunked and one-pass parses of `json` give the same batch, rejections and warnings.
    /// `chunked` says whether the chunks are expected to join, or to be given up for one pass.
    fn assert_chunks_match_one_pass(json: &str, parts: usize, chunked: bool) -> Ingested {
        let one = ingest_in_parts(json.as_bytes(), 1).unwrap();
        let parsed = parse_in_parts(json.as_bytes(), parts, &|_| {}).unwrap();
        assert_eq!(parsed.chunks.len() > 1, chunked, "{} chunks", parsed.chunks.len());
        let chunks = parsed.finish().unwrap();
        assert_eq!(chunks.batch, one.batch);
        assert_eq!(chunks.rejected, one.rejected);
        assert_eq!(chunks.warnings, one.warnings);
        chunks
    }

    fn coin(i: usize) -> String {
        let mut fields = vec![
            format!(r#""id": "coin-{i}""#),
            format!(r#""symbol": "c{i}""#),
            format!(
                r#""current_price": {}"#,
                if i.is_multiple_of(7) { "null".into() } else { format!("{i}.5") }
            ),
            format!(r#""market_cap": {}"#, i * 1000),
        ];
        // A field that is null in the first rows and typed only late, and one seen only late.
        if i > 40 {
            fields.push(format!(r#""late_number": {i}"#));
        } else {
            fields.push(r#""late_number": null"#.into());
        }
        if i > 70 {
            fields.push(r#""only_at_the_end": true"#.into());
        }
        if i.is_multiple_of(13) {
            fields.push(r#""roi": {"times": 1.5, "currency": "usd"}"#.into());
        }
        if i.is_multiple_of(17) {
            fields.push(r#""market_cap": 1"#.into()); // appears twice: rejected
        }
        if i.is_multiple_of(19) {
            fields.push(r#""current_price": "12""#.into()); // wrong type: rejected
        }
        if i.is_multiple_of(23) {
            fields.push(r#""x y": 1"#.into()); // not a column name: skipped
        }
        format!("{{{}}}", fields.join(", "))
    }

    #[test]
    fn chunks_parse_exactly_as_one_pass() {
        // Enough coins that chunks size their columns from a sample (SIZE_SAMPLE).
        let coins: Vec<String> = (0..300).map(coin).collect();
        let minified = format!("[{}]", coins.join(","));
        for parts in [2, 3, 8] {
            let ingested = assert_chunks_match_one_pass(&minified, parts, true);
            assert_eq!(ingested.batch.rows(), 300);
            assert!(!ingested.rejected.is_empty());
        }
        let pretty = format!("\u{feff}\n[\n  {}\n]\n", coins.join(",\n  "));
        assert_chunks_match_one_pass(&pretty, 4, true);
    }

    #[test]
    fn chunks_say_which_bytes_they_have_read() {
        let coins: Vec<String> = (0..75_000).map(coin).collect();
        let json = format!("[{}]", coins.join(","));
        assert!(json.len() > 2 * DONE_EVERY + (1 << 20), "{} bytes", json.len());
        let reported = std::sync::Mutex::new(Vec::new());
        let told = |read: Range<usize>| reported.lock().unwrap().push(read);
        let parsed = parse_in_parts(json.as_bytes(), 2, &told).unwrap();
        assert_eq!(parsed.chunks.len(), 2);

        // Each chunk tells at least once, of whole coins it has read, never the same byte twice.
        let mut reported = reported.into_inner().unwrap();
        reported.sort_by_key(|read| read.start);
        assert!(reported.len() >= 2, "{reported:?}");
        for read in &reported {
            assert!(read.len() >= DONE_EVERY && read.end <= json.len(), "{read:?}");
            assert_eq!(json.as_bytes()[read.end - 1], b'}', "{read:?} ends inside a coin");
        }
        assert!(reported.windows(2).all(|pair| pair[0].end <= pair[1].start), "{reported:?}");
    }

    #[test]
    fn a_cut_inside_a_string_falls_back_to_one_pass() {
        // Every name looks like a boundary between coins.
        let coins: Vec<String> = (0..50)
            .map(|i| format!(r#"{{"id": "c{i}", "name": "x}}, {{\"id\": 1}}, {{\"y\": {i}}}"}}"#))
            .collect();
        let ingested = assert_chunks_match_one_pass(&format!("[{}]", coins.join(",")), 3, false);
        assert_eq!(ingested.batch.rows(), 50);
        assert!(ingested.rejected.is_empty());
    }

    #[test]
    fn chunks_that_disagree_on_a_type_fall_back_to_one_pass() {
        let mut coins: Vec<String> =
            (0..30).map(|i| format!(r#"{{"id": "a{i}", "extra": 1}}"#)).collect();
        coins.extend((0..30).map(|i| format!(r#"{{"id": "b{i}", "extra": "text"}}"#)));
        let ingested = assert_chunks_match_one_pass(&format!("[{}]", coins.join(",")), 2, false);
        assert_eq!(ingested.rejected.len(), 30);
    }

    #[test]
    fn text_is_checked_as_utf8_the_same_when_chunked() {
        let coins: Vec<String> =
            (0..60).map(|i| format!(r#"{{"id": "c{i}", "name": "Ünïcødé 🪙 {i}"}}"#)).collect();
        let json = format!("[\n{}\n]", coins.join(",\n"));
        let ingested = assert_chunks_match_one_pass(&json, 3, true);
        assert_eq!(ingested.batch.rows(), 60);

        // An invalid byte late in the body, where the last chunk finds it.
        let at = json.rfind("59").unwrap();
        let mut bytes = json.into_bytes();
        bytes[at] = 0xff;
        let line = 1 + bytes[..at].iter().filter(|b| **b == b'\n').count();
        let expected =
            format!("the input is not UTF-8 text: invalid byte at offset {at} (line {line})");
        assert_eq!(ingest_in_parts(&bytes, 1).unwrap_err().to_string(), expected);
        assert_eq!(ingest_in_parts(&bytes, 3).unwrap_err().to_string(), expected);
    }

    #[test]
    fn errors_are_the_same_when_chunked() {
        let coins: Vec<String> = (0..60).map(coin).collect();
        let broken = format!("[\n{}\n]", coins.join(",\n"))
            .replace(r#""id": "coin-50""#, r#""id": coin-50"#);
        let one = ingest_in_parts(broken.as_bytes(), 1).unwrap_err().to_string();
        let chunked = ingest_in_parts(broken.as_bytes(), 3).unwrap_err().to_string();
        assert!(one.starts_with("malformed JSON at line 52, column 8"), "{one}");
        assert_eq!(chunked, one);

        // What lies between and after the coins is checked as strictly as one pass checks it.
        let minified = format!("[{}]", coins.join(","));
        for broken in [
            minified.replace(r#"},{"id": "coin-45""#, r#"} {"id": "coin-45""#),
            minified.replace(r#"},{"id": "coin-45""#, r#"},,{"id": "coin-45""#),
            minified.replace("}]", "},]"),
            format!("{minified} x"),
        ] {
            let one = ingest_in_parts(broken.as_bytes(), 1).unwrap_err().to_string();
            let chunked = ingest_in_parts(broken.as_bytes(), 3).unwrap_err().to_string();
            assert!(one.starts_with("malformed JSON"), "{one}");
            assert_eq!(chunked, one);
        }
    }
}
