//! Typed, columnar access to a batch, and the columns a plugin hands back.

use crate::bindings::crypto_etl::plugin::types::{
    self as wire, BooleanColumn, ColumnData, ColumnInfo, ColumnType, Float64Column, Int64Column,
    Rejection, SnapshotContext, TextColumn, TimestampColumn,
};
use crate::{Config, PluginError};

/// The schema of the batch a plugin will receive: column names and types, in order.
#[derive(Debug)]
pub struct Schema {
    columns: Vec<ColumnInfo>,
}

impl Schema {
    #[doc(hidden)]
    pub fn new(columns: Vec<ColumnInfo>) -> Self {
        Self { columns }
    }

    /// The type of column `name`, if the batch has it.
    pub fn type_of(&self, name: &str) -> Option<ColumnType> {
        self.columns.iter().find(|c| c.name == name).map(|c| c.type_)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.type_of(name).is_some()
    }

    pub fn columns(&self) -> &[ColumnInfo] {
        &self.columns
    }
}

/// What [`crate::Plugin::transform`] receives: configuration, the columns it reads, context.
#[derive(Debug)]
pub struct Input {
    config: Config,
    batch: wire::Batch,
    context: SnapshotContext,
}

impl Input {
    #[doc(hidden)]
    pub fn new(config: Config, batch: wire::Batch, context: SnapshotContext) -> Self {
        Self { config, batch, context }
    }

    /// The batch, handed back to a host that compiled the plugin in (the benchmark).
    #[doc(hidden)]
    pub fn into_batch(self) -> wire::Batch {
        self.batch
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn context(&self) -> &SnapshotContext {
        &self.context
    }

    /// Number of rows in the batch.
    pub fn rows(&self) -> usize {
        self.batch.row_count as usize
    }

    /// The names of the columns received, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.batch.columns.iter().map(|c| c.name.as_str())
    }

    fn data(&self, name: &str) -> Result<&ColumnData, PluginError> {
        self.batch.columns.iter().find(|c| c.name == name).map(|c| &c.data).ok_or_else(|| {
            PluginError::Internal(format!(
                "column `{name}` is not in the input; add it to the plan's reads"
            ))
        })
    }

    fn wrong_type(name: &str, want: &str) -> PluginError {
        PluginError::Internal(format!("column `{name}` is not of type {want}"))
    }

    pub fn float64(&self, name: &str) -> Result<Values<'_, f64>, PluginError> {
        match self.data(name)? {
            ColumnData::Float64(c) => Ok(Values::new(&c.values, &c.valid)),
            _ => Err(Self::wrong_type(name, "float64")),
        }
    }

    pub fn int64(&self, name: &str) -> Result<Values<'_, i64>, PluginError> {
        match self.data(name)? {
            ColumnData::Int64(c) => Ok(Values::new(&c.values, &c.valid)),
            _ => Err(Self::wrong_type(name, "int64")),
        }
    }

    /// Microseconds since the Unix epoch, UTC.
    pub fn timestamp(&self, name: &str) -> Result<Values<'_, i64>, PluginError> {
        match self.data(name)? {
            ColumnData::Timestamp(c) => Ok(Values::new(&c.values, &c.valid)),
            _ => Err(Self::wrong_type(name, "timestamp")),
        }
    }

    /// `0` is false, anything else true.
    pub fn boolean(&self, name: &str) -> Result<Values<'_, u8>, PluginError> {
        match self.data(name)? {
            ColumnData::Boolean(c) => Ok(Values::new(&c.values, &c.valid)),
            _ => Err(Self::wrong_type(name, "boolean")),
        }
    }

    /// A numeric column, float64 or int64, read as `f64` (integers past 2^53 are rounded).
    pub fn numbers(&self, name: &str) -> Result<Numbers<'_>, PluginError> {
        match self.data(name)? {
            ColumnData::Float64(c) => Ok(Numbers::Float(Values::new(&c.values, &c.valid))),
            ColumnData::Int64(c) => Ok(Numbers::Int(Values::new(&c.values, &c.valid))),
            _ => Err(Self::wrong_type(name, "float64 or int64")),
        }
    }

    pub fn text(&self, name: &str) -> Result<Texts<'_>, PluginError> {
        match self.data(name)? {
            ColumnData::Text(c) => Ok(Texts { column: c }),
            _ => Err(Self::wrong_type(name, "text")),
        }
    }

    /// Whether row `row` of column `name` is null, whatever the column's type.
    pub fn is_null(&self, name: &str, row: usize) -> Result<bool, PluginError> {
        let valid = match self.data(name)? {
            ColumnData::Float64(c) => &c.valid,
            ColumnData::Int64(c) => &c.valid,
            ColumnData::Text(c) => &c.valid,
            ColumnData::Boolean(c) => &c.valid,
            ColumnData::Timestamp(c) => &c.valid,
        };
        Ok(!valid.is_empty() && valid[row] == 0)
    }
}

/// A column of fixed-width values with nulls.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a, T> {
    values: &'a [T],
    valid: &'a [u8],
}

impl<'a, T: Copy> Values<'a, T> {
    fn new(values: &'a [T], valid: &'a [u8]) -> Self {
        Self { values, valid }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of row `row`, `None` when null.
    #[inline]
    pub fn get(&self, row: usize) -> Option<T> {
        if self.valid.is_empty() || self.valid[row] != 0 { Some(self.values[row]) } else { None }
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<T>> + 'a {
        let Values { values, valid } = *self;
        (0..values.len())
            .map(move |i| if valid.is_empty() || valid[i] != 0 { Some(values[i]) } else { None })
    }

    /// The raw values, including whatever sits in null slots.
    pub fn raw(&self) -> &'a [T] {
        self.values
    }

    /// The values when none is null: a plain slice, which a loop reads without looking at
    /// validity row by row.
    pub fn without_nulls(&self) -> Option<&'a [T]> {
        self.valid.iter().all(|v| *v != 0).then_some(self.values)
    }
}

/// A numeric column read as `f64`, whichever of float64 and int64 it is: see
/// [`Input::numbers`].
#[derive(Debug, Clone, Copy)]
pub enum Numbers<'a> {
    Float(Values<'a, f64>),
    Int(Values<'a, i64>),
}

impl<'a> Numbers<'a> {
    pub fn len(&self) -> usize {
        match self {
            Numbers::Float(v) => v.len(),
            Numbers::Int(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of row `row`, `None` when null.
    #[inline]
    pub fn get(&self, row: usize) -> Option<f64> {
        match self {
            Numbers::Float(v) => v.get(row),
            Numbers::Int(v) => v.get(row).map(|v| v as f64),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<f64>> + use<'a> {
        let numbers = *self;
        (0..numbers.len()).map(move |row| numbers.get(row))
    }
}

/// A column of text values with nulls.
#[derive(Debug, Clone, Copy)]
pub struct Texts<'a> {
    column: &'a TextColumn,
}

impl<'a> Texts<'a> {
    pub fn len(&self) -> usize {
        self.column.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of row `row`, `None` when null.
    #[inline]
    pub fn get(&self, row: usize) -> Option<&'a str> {
        let c = self.column;
        if !c.valid.is_empty() && c.valid[row] == 0 {
            return None;
        }
        let (start, end) = (c.offsets[row] as usize, c.offsets[row + 1] as usize);
        c.data.get(start..end)
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<&'a str>> + 'a {
        let texts = *self;
        (0..texts.len()).map(move |i| texts.get(i))
    }
}

/// A named, typed column a plugin writes.
#[derive(Debug)]
pub struct Column(wire::Column);

/// A column's validity as it is built, as the interface wants it: empty while no value is null,
/// and from the first null on a byte a row (ones filled in for the rows before). A column
/// without nulls, the usual case, so costs no buffer and no second pass, which as WebAssembly
/// would be a scalar loop with a deadline check per row.
struct Validity {
    valid: Vec<u8>,
    /// How many rows the column is expected to have, reserved at the first null.
    expected: usize,
}

impl Validity {
    fn new(expected: usize) -> Self {
        Self { valid: Vec::new(), expected }
    }

    /// The next row has a value.
    #[inline]
    fn valid(&mut self) {
        if !self.valid.is_empty() {
            self.valid.push(1);
        }
    }

    /// Row `row` (the next one) is null.
    #[inline]
    fn null(&mut self, row: usize) {
        if self.valid.is_empty() {
            self.valid.reserve(self.expected.max(row + 1));
            self.valid.resize(row, 1);
        }
        self.valid.push(0);
    }

    fn finish(self) -> Vec<u8> {
        self.valid
    }
}

/// Values and their validity, built in one pass.
fn split<T: Default>(values: impl IntoIterator<Item = Option<T>>) -> (Vec<T>, Vec<u8>) {
    let iter = values.into_iter();
    let (lower, _) = iter.size_hint();
    let mut out = Vec::with_capacity(lower);
    let mut valid = Validity::new(lower);
    for v in iter {
        match v {
            Some(v) => {
                valid.valid();
                out.push(v);
            }
            None => {
                valid.null(out.len());
                out.push(T::default());
            }
        }
    }
    (out, valid.finish())
}

impl Column {
    fn named(name: &str, data: ColumnData) -> Self {
        Self(wire::Column { name: name.to_owned(), data })
    }

    pub fn float64(name: &str, values: impl IntoIterator<Item = Option<f64>>) -> Self {
        let (values, valid) = split(values);
        Self::named(name, ColumnData::Float64(Float64Column { values, valid }))
    }

    /// A float64 column without nulls.
    pub fn float64_values(name: &str, values: Vec<f64>) -> Self {
        Self::named(name, ColumnData::Float64(Float64Column { values, valid: Vec::new() }))
    }

    pub fn int64(name: &str, values: impl IntoIterator<Item = Option<i64>>) -> Self {
        let (values, valid) = split(values);
        Self::named(name, ColumnData::Int64(Int64Column { values, valid }))
    }

    /// Microseconds since the Unix epoch, UTC.
    pub fn timestamp(name: &str, values: impl IntoIterator<Item = Option<i64>>) -> Self {
        let (values, valid) = split(values);
        Self::named(name, ColumnData::Timestamp(TimestampColumn { values, valid }))
    }

    pub fn boolean(name: &str, values: impl IntoIterator<Item = Option<bool>>) -> Self {
        let (values, valid) = split(values.into_iter().map(|v| v.map(u8::from)));
        Self::named(name, ColumnData::Boolean(BooleanColumn { values, valid }))
    }

    pub fn text<S: AsRef<str>>(name: &str, values: impl IntoIterator<Item = Option<S>>) -> Self {
        let mut data = String::new();
        let mut offsets = vec![0u32];
        let values = values.into_iter();
        let mut valid = Validity::new(values.size_hint().0);
        for v in values {
            match &v {
                Some(s) => {
                    valid.valid();
                    data.push_str(s.as_ref());
                }
                None => valid.null(offsets.len() - 1),
            }
            offsets.push(u32::try_from(data.len()).unwrap_or(u32::MAX));
        }
        Self::named(name, ColumnData::Text(TextColumn { data, offsets, valid: valid.finish() }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The column in the interface's types (for tests that build a plugin's input).
    #[doc(hidden)]
    pub fn into_wire(self) -> wire::Column {
        self.0
    }

    /// Its declared type.
    pub fn column_type(&self) -> ColumnType {
        match self.0.data {
            ColumnData::Float64(_) => ColumnType::Float64,
            ColumnData::Int64(_) => ColumnType::Int64,
            ColumnData::Text(_) => ColumnType::Text,
            ColumnData::Boolean(_) => ColumnType::Boolean,
            ColumnData::Timestamp(_) => ColumnType::Timestamp,
        }
    }
}

/// What a plugin returns: the columns it writes and the rows it rejects.
#[derive(Debug, Default)]
pub struct Output {
    columns: Vec<wire::Column>,
    rejected: Vec<Rejection>,
}

impl Output {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a written column (one value per input row).
    pub fn column(mut self, column: Column) -> Self {
        self.columns.push(column.0);
        self
    }

    /// Reject row `row` with a reason people will read in the quarantine file.
    pub fn reject(&mut self, row: usize, reason: impl Into<String>) {
        let row = u32::try_from(row).unwrap_or(u32::MAX);
        self.rejected.push(Rejection { row, reason: reason.into() });
    }

    #[doc(hidden)]
    pub fn into_wire(self) -> wire::Output {
        wire::Output { columns: self.columns, rejected: self.rejected }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_kept_only_when_a_value_is_null() {
        assert_eq!(split([Some(1.0), Some(2.0)]), (vec![1.0, 2.0], vec![]));
        assert_eq!(split([Some(1.0), None, Some(3.0)]), (vec![1.0, 0.0, 3.0], vec![1, 0, 1]));
        assert_eq!(split([None, Some(2)]), (vec![0, 2], vec![0, 1]));
        assert_eq!(split([Some(1), Some(2), None]), (vec![1, 2, 0], vec![1, 1, 0]));
        assert_eq!(split(std::iter::empty::<Option<i64>>()), (vec![], vec![]));
        let text_valid = |values: &[Option<&str>]| match Column::text("t", values.to_vec()).0.data {
            ColumnData::Text(c) => c.valid,
            _ => unreachable!("a text column"),
        };
        assert_eq!(text_valid(&[Some("a"), Some("")]), Vec::<u8>::new());
        assert_eq!(text_valid(&[None, Some("a")]), vec![0, 1]);
    }

    #[test]
    fn values_without_nulls_only_when_none_is_null() {
        let values = [1.0, 2.0];
        assert_eq!(Values::new(&values, &[]).without_nulls(), Some(&values[..]));
        assert_eq!(Values::new(&values, &[1, 1]).without_nulls(), Some(&values[..]));
        assert_eq!(Values::new(&values, &[1, 0]).without_nulls(), None);
    }
}
