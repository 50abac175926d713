//! The typed, columnar snapshot that flows from ingest through the plugins to the output.
//!
//! The layout mirrors the plugin interface (values plus a per-row validity byte; text as one
//! buffer with offsets) so handing columns to a plugin is a copy of a few buffers, not a
//! conversion per value.

use std::fmt;

/// The type of a column. Every type allows nulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Float64,
    Int64,
    Text,
    Boolean,
    /// Microseconds since the Unix epoch, UTC.
    Timestamp,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Float64 => "float64",
            ColumnType::Int64 => "int64",
            ColumnType::Text => "text",
            ColumnType::Boolean => "boolean",
            ColumnType::Timestamp => "timestamp",
        })
    }
}

/// Per-row presence: empty means every value is present, otherwise one byte per row (0 = null).
pub type Validity = Vec<u8>;

/// The values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Float64 {
        values: Vec<f64>,
        valid: Validity,
    },
    Int64 {
        values: Vec<i64>,
        valid: Validity,
    },
    /// Row `i` is `data[offsets[i]..offsets[i + 1]]`.
    Text {
        data: String,
        offsets: Vec<u32>,
        valid: Validity,
    },
    Boolean {
        values: Vec<u8>,
        valid: Validity,
    },
    Timestamp {
        values: Vec<i64>,
        valid: Validity,
    },
}

/// One value, borrowed from a column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Float64(f64),
    Int64(i64),
    Text(&'a str),
    Boolean(bool),
    Timestamp(i64),
}

fn present(valid: &[u8], row: usize) -> bool {
    valid.is_empty() || valid[row] != 0
}

/// `valid` as a column keeps it: empty when no value is null.
pub(crate) fn normalized(valid: Validity) -> Validity {
    if valid.iter().all(|v| *v != 0) { Vec::new() } else { valid }
}

fn filter_validity(valid: &[u8], keep: &[bool]) -> Validity {
    normalized(filter_values(valid, keep))
}

fn filter_values<T: Copy>(values: &[T], keep: &[bool]) -> Vec<T> {
    values.iter().zip(keep).filter(|(_, k)| **k).map(|(v, _)| *v).collect()
}

/// Keeps the entries of `values` whose `keep` entry is true, moved down in place.
fn retain_rows<T>(values: &mut Vec<T>, keep: &[bool]) {
    // `retain` visits every entry once, in order.
    let mut keep = keep.iter();
    values.retain(|_| keep.next().copied().unwrap_or(false));
}

fn retain_validity(valid: &mut Validity, keep: &[bool]) {
    retain_rows(valid, keep);
    *valid = normalized(std::mem::take(valid));
}

impl ColumnData {
    pub fn column_type(&self) -> ColumnType {
        match self {
            ColumnData::Float64 { .. } => ColumnType::Float64,
            ColumnData::Int64 { .. } => ColumnType::Int64,
            ColumnData::Text { .. } => ColumnType::Text,
            ColumnData::Boolean { .. } => ColumnType::Boolean,
            ColumnData::Timestamp { .. } => ColumnType::Timestamp,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Float64 { values, .. } => values.len(),
            ColumnData::Int64 { values, .. } | ColumnData::Timestamp { values, .. } => values.len(),
            ColumnData::Boolean { values, .. } => values.len(),
            ColumnData::Text { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn validity(&self) -> &[u8] {
        match self {
            ColumnData::Float64 { valid, .. }
            | ColumnData::Int64 { valid, .. }
            | ColumnData::Text { valid, .. }
            | ColumnData::Boolean { valid, .. }
            | ColumnData::Timestamp { valid, .. } => valid,
        }
    }

    /// The value at `row` (which must be in range).
    pub fn value(&self, row: usize) -> Value<'_> {
        if !present(self.validity(), row) {
            return Value::Null;
        }
        match self {
            ColumnData::Float64 { values, .. } => Value::Float64(values[row]),
            ColumnData::Int64 { values, .. } => Value::Int64(values[row]),
            ColumnData::Timestamp { values, .. } => Value::Timestamp(values[row]),
            ColumnData::Boolean { values, .. } => Value::Boolean(values[row] != 0),
            ColumnData::Text { data, offsets, .. } => {
                Value::Text(&data[offsets[row] as usize..offsets[row + 1] as usize])
            }
        }
    }

    /// Bytes held by the column's buffers, to enforce output size limits.
    pub fn byte_size(&self) -> usize {
        let valid = self.validity().len();
        valid
            + match self {
                ColumnData::Float64 { values, .. } => values.len() * 8,
                ColumnData::Int64 { values, .. } | ColumnData::Timestamp { values, .. } => {
                    values.len() * 8
                }
                ColumnData::Boolean { values, .. } => values.len(),
                ColumnData::Text { data, offsets, .. } => data.len() + offsets.len() * 4,
            }
    }

    /// Keeps the rows whose `keep` entry is true. Fixed-width values move down in place, so
    /// dropping rows from a large batch does not allocate (and fault in) a second copy of it.
    pub fn retain(&mut self, keep: &[bool]) {
        match self {
            ColumnData::Float64 { values, valid } => {
                retain_rows(values, keep);
                retain_validity(valid, keep);
            }
            ColumnData::Int64 { values, valid } | ColumnData::Timestamp { values, valid } => {
                retain_rows(values, keep);
                retain_validity(valid, keep);
            }
            ColumnData::Boolean { values, valid } => {
                retain_rows(values, keep);
                retain_validity(valid, keep);
            }
            ColumnData::Text { .. } => *self = self.filter(keep),
        }
    }

    /// The rows whose `keep` entry is true.
    pub fn filter(&self, keep: &[bool]) -> ColumnData {
        match self {
            ColumnData::Float64 { values, valid } => ColumnData::Float64 {
                values: filter_values(values, keep),
                valid: filter_validity(valid, keep),
            },
            ColumnData::Int64 { values, valid } => ColumnData::Int64 {
                values: filter_values(values, keep),
                valid: filter_validity(valid, keep),
            },
            ColumnData::Timestamp { values, valid } => ColumnData::Timestamp {
                values: filter_values(values, keep),
                valid: filter_validity(valid, keep),
            },
            ColumnData::Boolean { values, valid } => ColumnData::Boolean {
                values: filter_values(values, keep),
                valid: filter_validity(valid, keep),
            },
            ColumnData::Text { data, offsets, valid } => {
                let mut out = String::with_capacity(data.len());
                let mut out_offsets = Vec::with_capacity(offsets.len());
                out_offsets.push(0);
                for (row, _) in keep.iter().enumerate().filter(|(_, k)| **k) {
                    out.push_str(&data[offsets[row] as usize..offsets[row + 1] as usize]);
                    // Fits: the filtered text is never longer than the original.
                    out_offsets.push(out.len() as u32);
                }
                ColumnData::Text {
                    data: out,
                    offsets: out_offsets,
                    valid: filter_validity(valid, keep),
                }
            }
        }
    }
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

/// A column's name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub column_type: ColumnType,
}

/// The columns of a batch, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    pub fields: Vec<Field>,
}

impl Schema {
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }
}

/// A snapshot as typed columns of equal length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    rows: usize,
    columns: Vec<Column>,
}

impl Batch {
    /// A batch of `rows` rows. Every column must have exactly `rows` values.
    pub fn new(rows: usize, columns: Vec<Column>) -> Self {
        debug_assert!(columns.iter().all(|c| c.data.len() == rows), "ragged batch");
        Self { rows, columns }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn schema(&self) -> Schema {
        Schema {
            fields: self
                .columns
                .iter()
                .map(|c| Field { name: c.name.clone(), column_type: c.data.column_type() })
                .collect(),
        }
    }

    /// Replaces the column of the same name in place, or appends it.
    pub fn put(&mut self, column: Column) {
        debug_assert_eq!(column.data.len(), self.rows);
        match self.columns.iter_mut().find(|c| c.name == column.name) {
            Some(existing) => *existing = column,
            None => self.columns.push(column),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.columns.retain(|c| c.name != name);
    }

    /// The columns, moved out.
    pub fn into_columns(self) -> Vec<Column> {
        self.columns
    }

    /// Moves the columns named `names` into a batch of their own, in that order, so a plugin
    /// (or another thread) can read them without a copy; [`Batch::restore`] puts them back.
    /// Until then those columns of `self` hold no values, keep their places, and are left
    /// alone by [`Batch::filter`] and [`Batch::filtered`]. Names `self` does not have are left
    /// out.
    pub fn lend<'n>(&mut self, names: impl IntoIterator<Item = &'n str>) -> Batch {
        let mut lent = Vec::new();
        for name in names {
            if let Some(column) = self.columns.iter_mut().find(|c| c.name == name) {
                let empty = ColumnData::Float64 { values: Vec::new(), valid: Vec::new() };
                let data = std::mem::replace(&mut column.data, empty);
                lent.push(Column { name: column.name.clone(), data });
            }
        }
        Batch { rows: self.rows, columns: lent }
    }

    /// Puts back the columns of a [`Batch::lend`], each where it was.
    pub fn restore(&mut self, lent: Batch) {
        for column in lent.columns {
            debug_assert_eq!(column.data.len(), self.rows, "`{}` came back changed", column.name);
            if let Some(slot) = self.columns.iter_mut().find(|c| c.name == column.name) {
                slot.data = column.data;
            }
        }
    }

    /// A copy of the rows whose `keep` entry is true.
    pub fn filtered(&self, keep: &[bool]) -> Batch {
        debug_assert_eq!(keep.len(), self.rows);
        Batch {
            rows: keep.iter().filter(|k| **k).count(),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    data: if is_lent(c, self.rows) { c.data.clone() } else { c.data.filter(keep) },
                })
                .collect(),
        }
    }

    /// Keeps the rows whose `keep` entry is true.
    pub fn filter(&mut self, keep: &[bool]) {
        debug_assert_eq!(keep.len(), self.rows);
        if !keep.contains(&false) {
            return;
        }
        let rows = self.rows;
        for column in self.columns.iter_mut().filter(|c| !is_lent(c, rows)) {
            column.data.retain(keep);
        }
        self.rows = keep.iter().filter(|k| **k).count();
    }
}

/// Whether `column` of a batch of `rows` rows is out on a [`Batch::lend`]: it holds no values
/// while the batch has rows.
fn is_lent(column: &Column, rows: usize) -> bool {
    column.data.len() != rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(values: &[Option<&str>]) -> ColumnData {
        let mut data = String::new();
        let mut offsets = vec![0];
        let mut valid = Vec::new();
        for v in values {
            data.push_str(v.unwrap_or(""));
            offsets.push(data.len() as u32);
            valid.push(u8::from(v.is_some()));
        }
        ColumnData::Text { data, offsets, valid }
    }

    #[test]
    fn filter_keeps_values_and_nulls_aligned() {
        let mut batch = Batch::new(
            3,
            vec![
                Column {
                    name: "name".into(),
                    data: text(&[Some("Bitcoin"), None, Some("DOG•GO")]),
                },
                Column {
                    name: "price".into(),
                    data: ColumnData::Float64 { values: vec![1.0, 2.0, 3.0], valid: vec![1, 1, 0] },
                },
            ],
        );
        batch.filter(&[false, true, true]);
        assert_eq!(batch.rows(), 2);
        let name = &batch.column("name").unwrap().data;
        assert_eq!(name.value(0), Value::Null);
        assert_eq!(name.value(1), Value::Text("DOG•GO"));
        let price = &batch.column("price").unwrap().data;
        assert_eq!(price.value(0), Value::Float64(2.0));
        assert_eq!(price.value(1), Value::Null);
    }

    #[test]
    fn lent_columns_come_back_in_place() {
        let price = ColumnData::Float64 { values: vec![1.0, 2.0], valid: vec![] };
        let name = text(&[Some("Bitcoin"), None]);
        let rank = ColumnData::Int64 { values: vec![1, 2], valid: vec![] };
        let mut batch = Batch::new(
            2,
            vec![
                Column { name: "price".into(), data: price.clone() },
                Column { name: "name".into(), data: name.clone() },
                Column { name: "rank".into(), data: rank.clone() },
            ],
        );
        let before = batch.clone();
        let lent = batch.lend(["rank", "price", "missing"]);
        assert_eq!(lent.rows(), 2);
        let names: Vec<&str> = lent.columns().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["rank", "price"]);
        assert_eq!(lent.column("price").unwrap().data, price);
        assert_eq!(batch.column("price").unwrap().data.len(), 0, "lent, not copied");
        assert_eq!(batch.column("name").unwrap().data, name);
        batch.restore(lent);
        assert_eq!(batch, before);
    }

    #[test]
    fn retain_in_place_keeps_what_filter_copies() {
        let keep = [true, false, true, true, false];
        let columns = [
            ColumnData::Float64 { values: vec![1.0, 2.0, 3.0, 4.0, 5.0], valid: vec![] },
            ColumnData::Float64 {
                values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                valid: vec![1, 1, 0, 1, 0],
            },
            ColumnData::Int64 { values: vec![1, 2, 3, 4, 5], valid: vec![1, 0, 1, 1, 0] },
            ColumnData::Timestamp { values: vec![1, 2, 3, 4, 5], valid: vec![0, 1, 1, 1, 1] },
            ColumnData::Boolean { values: vec![1, 0, 1, 0, 1], valid: vec![] },
            text(&[Some("a"), None, Some("DOG•GO"), Some(""), Some("e")]),
        ];
        for column in columns {
            let mut retained = column.clone();
            retained.retain(&keep);
            assert_eq!(retained, column.filter(&keep));
        }
    }

    #[test]
    fn filter_drops_validity_when_no_nulls_remain() {
        let data = ColumnData::Int64 { values: vec![1, 2], valid: vec![0, 1] };
        assert_eq!(
            data.filter(&[false, true]),
            ColumnData::Int64 { values: vec![2], valid: vec![] }
        );
    }
}
