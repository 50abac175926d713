//! Writes the processed CSV and the quarantine file, both or neither.
//!
//! Each file is written to a temporary name in its destination folder and renamed into place
//! only when every file of the set is complete, so a crash or an error never leaves a partial
//! output for a loader to pick up.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use chrono::Datelike;
use tempfile::NamedTempFile;

use crate::batch::{Batch, Column, ColumnData, Schema};
use crate::pipeline::RejectedRow;

/// A file that failed to write, and why.
#[derive(Debug, thiserror::Error)]
#[error("could not write {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// A file beside `output` with the same stem: `x.csv` + `rejected.jsonl` -> `x.rejected.jsonl`.
fn beside(output: &Path, suffix: &str) -> PathBuf {
    let stem = output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    output.with_file_name(format!("{stem}.{suffix}"))
}

/// The quarantine file that goes beside `output`: `x.csv` -> `x.rejected.jsonl`.
pub fn quarantine_path(output: &Path) -> PathBuf {
    beside(output, "rejected.jsonl")
}

/// The schema file that goes beside `output`: `x.csv` -> `x.schema.json`.
pub fn schema_path(output: &Path) -> PathBuf {
    beside(output, "schema.json")
}

/// A hidden temporary file in `dir`, to be renamed into place when complete. It gets the
/// permissions any new file would (0666 less the umask), not the 0600 of a private temporary
/// file, so a loader running as another user can read what is renamed into place.
pub fn temp_file_in(dir: &Path) -> io::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".crypto-etl-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Bytes written to a staged file between two requests to flush it to disk.
const SYNC_EVERY: usize = 8 << 20;

/// Writes to a staged file and, every [`SYNC_EVERY`] bytes, asks a helper thread to flush what
/// is written so far, so the disk works while the rest is still being formatted and the final
/// `fsync` waits only for the tail: for a 40 MB CSV on this machine, under 1 ms instead of 17.
struct SyncAhead<'scope, 'env> {
    file: &'env File,
    scope: &'scope std::thread::Scope<'scope, 'env>,
    unsynced: usize,
    /// The helper, started by the first request: small files never need one.
    helper: Option<(mpsc::SyncSender<()>, std::thread::ScopedJoinHandle<'scope, io::Result<()>>)>,
}

impl SyncAhead<'_, '_> {
    fn request_flush(&mut self) {
        let file = self.file;
        let (flush, _) = self.helper.get_or_insert_with(|| {
            let (flush, requests) = mpsc::sync_channel(1);
            let helper =
                self.scope.spawn(move || requests.iter().try_for_each(|()| file.sync_data()));
            (flush, helper)
        });
        // A flush still under way, or one already asked for, will do: never wait for it.
        let _ = flush.try_send(());
    }

    /// Waits for the helper's last flush, if there is a helper, and says how it went.
    fn finish(self) -> io::Result<()> {
        let Some((flush, helper)) = self.helper else { return Ok(()) };
        drop(flush);
        helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Write for SyncAhead<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.unsynced += written;
        if self.unsynced >= SYNC_EVERY {
            self.unsynced = 0;
            self.request_flush();
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Files being written under temporary names, made visible together by [`Staged::commit`].
#[derive(Debug, Default)]
pub struct Staged {
    files: Vec<(NamedTempFile, PathBuf)>,
}

impl Staged {
    /// Writes `path`'s content through `write` under a temporary name, and flushes it to disk.
    pub fn write(
        &mut self,
        path: &Path,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), WriteError> {
        let fail = |source| WriteError { path: path.to_owned(), source };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let temp = temp_file_in(dir).map_err(fail)?;
        let started = std::time::Instant::now();
        let file = temp.as_file();
        std::thread::scope(|scope| {
            let ahead = SyncAhead { file, scope, unsynced: 0, helper: None };
            let mut out = BufWriter::with_capacity(1 << 16, ahead);
            let written = write(&mut out).and_then(|()| out.flush());
            let (ahead, _) = out.into_parts();
            written.and(ahead.finish())
        })
        .map_err(fail)?;
        let written = started.elapsed();
        temp.as_file().sync_all().map_err(fail)?;
        tracing::debug!(path = %path.display(), ?written, synced = ?started.elapsed() - written, "staged");
        self.files.push((temp, path.to_owned()));
        Ok(())
    }

    /// Renames every staged file into place, in the order written.
    pub fn commit(self) -> Result<(), WriteError> {
        for (temp, path) in self.files {
            temp.persist(&path).map_err(|e| WriteError { path, source: e.error })?;
        }
        Ok(())
    }
}

/// Rows formatted by one thread at a time; bounds the memory the formatted text takes. About
/// 1.6 MB of text for CoinGecko's columns: small enough that the allocator hands a finished
/// block's memory to the next one. Blocks four times larger were each mapped afresh, and
/// faulting their pages in made writing a 100k-coin CSV about 10 ms slower.
const ROWS_PER_BLOCK: usize = 4096;
/// Rejected rows formatted by one thread at a time: each is a JSON object of every column.
const REJECTED_PER_BLOCK: usize = 1024;

/// The batch as CSV with a header row: floats in shortest round-trip form (`4.2e+17`),
/// timestamps as `YYYY-MM-DDTHH:MM:SS` (UTC, as the original pipeline wrote them), nulls as
/// empty fields.
///
/// Large batches are formatted on several threads, a block of rows each, and written in order.
pub fn write_csv(batch: &Batch, out: impl Write) -> io::Result<()> {
    write_csv_with(batch, None, out)
}

/// [`write_csv`], taking what it can from fields formatted ahead.
pub fn write_csv_with(
    batch: &Batch,
    ahead: Option<&FormattedAhead>,
    out: impl Write,
) -> io::Result<()> {
    write_csv_on(batch, ahead, out, crate::worker_threads())
}

/// [`write_csv_with`] with `threads` formatting threads.
fn write_csv_on(
    batch: &Batch,
    ahead: Option<&FormattedAhead>,
    mut out: impl Write,
    threads: usize,
) -> io::Result<()> {
    if let Some(ahead) = ahead {
        // `FormattedAhead::for_rows` ties the fields to this batch's rows.
        assert_eq!(ahead.rows.len(), batch.rows(), "fields formatted ahead for other rows");
    }
    let mut header = Vec::new();
    write_header(&csv_core_writer(), batch.columns().iter().map(|c| c.name.as_str()), &mut header);
    out.write_all(&header)?;
    let parts = Part::of(batch, ahead);
    let blocks = Blocks { items: batch.rows(), per_block: ROWS_PER_BLOCK, threads };
    blocks.write(out, |rows, buffer| format_rows(&parts, rows, buffer))
}

/// Items `0..items` formatted in blocks of `per_block` on `threads` threads.
#[derive(Debug, Clone, Copy)]
struct Blocks {
    items: usize,
    per_block: usize,
    threads: usize,
}

impl Blocks {
    /// Writes what `format` makes of each block to `out`, in order. Worker `w` formats blocks
    /// `w`, `w + threads`, ...; this thread writes them as they come, so formatting and writing
    /// overlap, and a channel of one per worker bounds the memory.
    fn write(
        self,
        mut out: impl Write,
        format: impl Fn(Range<usize>, &mut Vec<u8>) -> io::Result<()> + Sync,
    ) -> io::Result<()> {
        let Blocks { items, per_block, threads } = self;
        if threads == 1 || items <= per_block {
            let mut buffer = Vec::new();
            format(0..items, &mut buffer)?;
            return out.write_all(&buffer);
        }
        let blocks: Vec<Range<usize>> =
            (0..items).step_by(per_block).map(|at| at..(at + per_block).min(items)).collect();
        let format = &format;
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|worker| {
                    let (send, receive) = mpsc::sync_channel::<io::Result<Vec<u8>>>(1);
                    let mine: Vec<Range<usize>> =
                        blocks.iter().skip(worker).step_by(threads).cloned().collect();
                    scope.spawn(move || {
                        for block in mine {
                            let mut buffer = Vec::new();
                            let formatted = format(block, &mut buffer).map(|()| buffer);
                            let failed = formatted.is_err();
                            // The writer gone (it failed) or this block failed: nothing more to do.
                            if send.send(formatted).is_err() || failed {
                                return;
                            }
                        }
                    });
                    receive
                })
                .collect();
            for block in 0..blocks.len() {
                let buffer = workers[block % threads]
                    .recv()
                    .map_err(|_| io::Error::other("a formatting thread stopped early"))??;
                out.write_all(&buffer)?;
            }
            Ok(())
        })
    }
}

/// What ends a CSV record: a bare `\n`, not CRLF.
const TERMINATOR: u8 = b'\n';

/// How text fields are quoted: csv-core's rules for a writer with the defaults (`,`, `"`,
/// quotes doubled, quoted only when necessary) and [`TERMINATOR`] between records.
fn csv_core_writer() -> csv_core::Writer {
    csv_core::WriterBuilder::new().terminator(csv_core::Terminator::Any(TERMINATOR)).build()
}

/// Appends the header record: the column names, each quoted when csv-core says it must be.
fn write_header<'a>(
    quoting: &csv_core::Writer,
    names: impl IntoIterator<Item = &'a str>,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push(quoting.get_delimiter());
        }
        push_text(quoting, name.as_bytes(), out);
    }
    end_record(quoting, start, out);
}

/// Appends one text field, quoted when csv-core says it must be.
fn push_text(quoting: &csv_core::Writer, field: &[u8], out: &mut Vec<u8>) {
    if !quoting.should_quote(field) {
        out.extend_from_slice(field);
        return;
    }
    let quote = quoting.get_quote();
    let at = out.len();
    // Quotes around it, and at worst every byte doubled.
    out.resize(at + 2 * field.len() + 2, 0);
    out[at] = quote;
    let (_, read, written) = csv_core::quote(
        field,
        &mut out[at + 1..],
        quote,
        quoting.get_escape(),
        quoting.get_double_quote(),
    );
    debug_assert_eq!(read, field.len(), "the buffer holds the worst case");
    out[at + 1 + written] = quote;
    out.truncate(at + written + 2);
}

/// Ends the record that began at `start` in `out`. A record with no bytes at all (one empty
/// field) is written `""`, as csv-core does, so that it is not read back as a blank line.
fn end_record(quoting: &csv_core::Writer, start: usize, out: &mut Vec<u8>) {
    if out.len() == start {
        out.extend_from_slice(&[quoting.get_quote(), quoting.get_quote()]);
    }
    out.push(TERMINATOR);
}

/// Formats CSV fields: the quoting rules and the number formatters' buffers.
struct Fields {
    quoting: csv_core::Writer,
    floats: zmij::Buffer,
    ints: itoa::Buffer,
    dates: Dates,
}

impl Fields {
    fn new() -> Self {
        Self {
            quoting: csv_core_writer(),
            floats: zmij::Buffer::new(),
            ints: itoa::Buffer::new(),
            dates: Dates::default(),
        }
    }

    /// Appends the field of `row` in `column` (nothing for a null).
    ///
    /// Each field is formatted straight into `out`: numbers, booleans and timestamps never
    /// need quotes, and text goes through [`push_text`]. This is the csv crate's own fast
    /// path for a whole record (`write_byte_record`), without building the record first.
    /// Going through `csv::Writer` one field at a time, formatting took about 30% longer.
    fn push(&mut self, column: &ColumnData, row: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let valid = column.validity();
        if !valid.is_empty() && valid[row] == 0 {
            return Ok(());
        }
        match column {
            ColumnData::Float64 { values, .. } => {
                out.extend_from_slice(self.floats.format_finite(values[row]).as_bytes());
            }
            ColumnData::Int64 { values, .. } => {
                out.extend_from_slice(self.ints.format(values[row]).as_bytes());
            }
            ColumnData::Timestamp { values, .. } => self.dates.format(values[row], out)?,
            ColumnData::Boolean { values, .. } => {
                out.extend_from_slice(if values[row] != 0 { b"true" } else { b"false" });
            }
            ColumnData::Text { data, offsets, .. } => {
                let text = &data.as_bytes()[offsets[row] as usize..offsets[row + 1] as usize];
                push_text(&self.quoting, text, out);
            }
        }
        Ok(())
    }

    /// Appends the fields of `row` in consecutive `columns`, delimited.
    fn push_run<'c>(
        &mut self,
        columns: impl IntoIterator<Item = &'c ColumnData>,
        row: usize,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        for (i, column) in columns.into_iter().enumerate() {
            if i > 0 {
                out.push(self.quoting.get_delimiter());
            }
            self.push(column, row, out)?;
        }
        Ok(())
    }
}

/// Appends rows `rows` to `out` as CSV records made of `parts`, taking the fields of a run
/// formatted ahead from there where it was.
fn format_rows(parts: &[Part<'_>], rows: Range<usize>, out: &mut Vec<u8>) -> io::Result<()> {
    let mut fields = Fields::new();
    let delimiter = fields.quoting.get_delimiter();
    for row in rows {
        let start = out.len();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push(delimiter);
            }
            match part {
                Part::Column(column) => fields.push(column, row, out)?,
                Part::Ahead { run, ahead, columns } => match ahead.rows[row] {
                    at if at < ahead.formatted => out.extend_from_slice(run.fields(at)),
                    _ => fields.push_run(columns.iter().copied(), row, out)?,
                },
            }
        }
        end_record(&fields.quoting, start, out);
    }
    Ok(())
}

/// What a CSV record is made of, left to right.
enum Part<'a> {
    /// One field, formatted now.
    Column(&'a ColumnData),
    /// Consecutive fields formatted ahead, or (for rows past what was) formatted now from
    /// `columns`.
    Ahead { run: &'a AheadRun, ahead: &'a FormattedAhead, columns: Vec<&'a ColumnData> },
}

impl<'a> Part<'a> {
    fn of(batch: &'a Batch, ahead: Option<&'a FormattedAhead>) -> Vec<Part<'a>> {
        let columns = batch.columns();
        let mut parts = Vec::with_capacity(columns.len());
        let mut at = 0;
        while at < columns.len() {
            let run = ahead.and_then(|ahead| {
                let here = |run: &&AheadRun| {
                    let names = columns[at..].iter().map(|c| &c.name).take(run.names.len());
                    names.eq(&run.names)
                };
                Some((ahead.runs.iter().find(here)?, ahead))
            });
            match run {
                Some((run, ahead)) => {
                    let next = at + run.names.len();
                    let columns = columns[at..next].iter().map(|c| &c.data).collect();
                    parts.push(Part::Ahead { run, ahead, columns });
                    at = next;
                }
                None => {
                    parts.push(Part::Column(&columns[at].data));
                    at += 1;
                }
            }
        }
        parts
    }
}

/// CSV fields formatted ahead of the rest of the file, while the plugin chain runs: runs of
/// consecutive columns that no stage touches. Stitched into the records by
/// [`write_csv_with`], which skips the rows the chain dropped and formats the rows it did not
/// get to.
#[derive(Debug)]
pub struct FormattedAhead {
    runs: Vec<AheadRun>,
    /// Rows `0..formatted` of the columns are formatted.
    formatted: usize,
    /// For each row of the batch being written, its row in the columns formatted: set by
    /// [`FormattedAhead::for_rows`], empty until then.
    rows: Vec<usize>,
}

/// Consecutive columns' fields, delimited, row after row.
#[derive(Debug)]
struct AheadRun {
    names: Vec<String>,
    text: Vec<u8>,
    /// Where each row's fields end in `text`.
    ends: Vec<usize>,
}

impl AheadRun {
    fn fields(&self, row: usize) -> &[u8] {
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        &self.text[start..self.ends[row]]
    }
}

impl FormattedAhead {
    /// Formats `columns`, taken in runs that are consecutive in `schema`, a block of rows at
    /// a time until `enough` says to stop (the rows not formatted by then are formatted with
    /// the rest of the file, so that no core waits for this). [`FormattedAhead::for_rows`] then
    /// says which of those rows the batch being written has.
    pub fn format(schema: &Schema, columns: &Batch, enough: impl Fn() -> bool) -> io::Result<Self> {
        let mut runs: Vec<Vec<&Column>> = Vec::new();
        let mut previous_ahead = false;
        for name in schema.names() {
            let column = columns.column(name);
            if let Some(column) = column {
                match runs.last_mut() {
                    Some(run) if previous_ahead => run.push(column),
                    _ => runs.push(vec![column]),
                }
            }
            previous_ahead = column.is_some();
        }
        let mut fields = Fields::new();
        let mut ahead: Vec<AheadRun> = runs
            .iter()
            .map(|run| AheadRun {
                names: run.iter().map(|c| c.name.clone()).collect(),
                text: Vec::new(),
                ends: Vec::with_capacity(columns.rows()),
            })
            .collect();
        let mut formatted = 0;
        while formatted < columns.rows() && !enough() {
            let block = formatted..(formatted + ROWS_PER_BLOCK).min(columns.rows());
            for (run, out) in runs.iter().zip(&mut ahead) {
                for row in block.clone() {
                    fields.push_run(run.iter().map(|c| &c.data), row, &mut out.text)?;
                    out.ends.push(out.text.len());
                }
            }
            formatted = block.end;
        }
        Ok(Self { runs: ahead, formatted, rows: Vec::new() })
    }

    /// For a batch whose row `i` is row `rows[i]` of the columns formatted.
    pub fn for_rows(self, rows: Vec<usize>) -> Self {
        Self { rows, ..self }
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Formats timestamps, working out each day's `YYYY-MM-DD` once rather than once per field.
/// A large snapshot's `last_updated` and `fetch_time` are nearly all on the day of the fetch,
/// and turning a day number into a calendar date is the costly part of formatting one.
///
/// The dates of recent days are kept in [`Dates::SLOTS`] slots chosen by the day number, so
/// that the other timestamp columns of a record (`ath_date`, `atl_date`, each on a day of its
/// own) seldom push the fetch day out.
struct Dates {
    /// `(day number since 1970-01-01, its date)`; `i64::MIN` for an empty slot.
    slots: [(i64, [u8; 10]); Dates::SLOTS],
}

impl Default for Dates {
    fn default() -> Self {
        Self { slots: [(i64::MIN, [0; 10]); Dates::SLOTS] }
    }
}

impl Dates {
    const SLOTS: usize = 16;

    /// Appends `YYYY-MM-DDTHH:MM:SS` of a UTC instant in microseconds since the epoch.
    fn format(&mut self, micros: i64, out: &mut Vec<u8>) -> io::Result<()> {
        let day = micros.div_euclid(MICROS_PER_DAY);
        let slot = &mut self.slots[day.rem_euclid(Self::SLOTS as i64) as usize];
        if slot.0 != day {
            let t = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("timestamp {micros} out of range"),
                )
            })?;
            if !(0..=9999).contains(&t.year()) {
                return write!(out, "{}", t.format("%Y-%m-%dT%H:%M:%S"));
            }
            let mut date = *b"0000-00-00";
            put_digits(&mut date[0..4], t.year().unsigned_abs());
            put_digits(&mut date[5..7], t.month());
            put_digits(&mut date[8..10], t.day());
            *slot = (day, date);
        }
        // Whole seconds into the day, never negative: an instant before 1970 counts from the
        // start of its own day, as chrono's conversion does.
        let seconds = (micros.rem_euclid(MICROS_PER_DAY) / 1_000_000) as u32;
        let mut text = *b"0000-00-00T00:00:00";
        text[..10].copy_from_slice(&slot.1);
        put_digits(&mut text[11..13], seconds / 3600);
        put_digits(&mut text[14..16], seconds / 60 % 60);
        put_digits(&mut text[17..19], seconds % 60);
        out.extend_from_slice(&text);
        Ok(())
    }
}

/// Writes `value`'s last `digits.len()` decimal digits into `digits`, zero-padded.
fn put_digits(digits: &mut [u8], mut value: u32) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// One JSON object per rejected row: where it was in the raw snapshot, which stage rejected it,
/// why, and its values at that point. Many rows are formatted on several threads, like the CSV.
pub fn write_quarantine(rows: &[RejectedRow], out: impl Write) -> io::Result<()> {
    write_quarantine_on(rows, out, crate::worker_threads())
}

/// [`write_quarantine`] with `threads` formatting threads.
fn write_quarantine_on(rows: &[RejectedRow], out: impl Write, threads: usize) -> io::Result<()> {
    let blocks = Blocks { items: rows.len(), per_block: REJECTED_PER_BLOCK, threads };
    blocks.write(out, |block, buffer| {
        for row in &rows[block] {
            serde_json::to_writer(&mut *buffer, row)?;
            buffer.push(b'\n');
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Column, ColumnData};

    #[test]
    fn csv_formats_each_type() {
        let batch = Batch::new(
            2,
            vec![
                Column {
                    name: "name".into(),
                    data: ColumnData::Text {
                        data: "a,b\"c".into(),
                        offsets: vec![0, 5, 5],
                        valid: vec![1, 0],
                    },
                },
                Column {
                    name: "p".into(),
                    data: ColumnData::Float64 { values: vec![1.186e-9, 2.0], valid: vec![] },
                },
                Column {
                    name: "supply".into(),
                    data: ColumnData::Float64 { values: vec![4.2e17, 1e16], valid: vec![1, 0] },
                },
                Column {
                    name: "n".into(),
                    data: ColumnData::Int64 { values: vec![i64::MAX, 0], valid: vec![1, 0] },
                },
                Column {
                    name: "t".into(),
                    data: ColumnData::Timestamp {
                        values: vec![1_636_554_251_849_000, 0],
                        valid: vec![],
                    },
                },
            ],
        );
        let mut out = Vec::new();
        write_csv(&batch, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "name,p,supply,n,t\n\"a,b\"\"c\",1.186e-9,4.2e+17,9223372036854775807,2021-11-10T14:24:11\n,2.0,,,1970-01-01T00:00:00\n"
        );
    }

    /// What the csv crate writes for `batch`, field by field (how this module wrote it before).
    fn through_csv_crate(batch: &Batch) -> String {
        use crate::batch::Value;
        let mut csv = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        csv.write_record(batch.columns().iter().map(|c| c.name.as_bytes())).unwrap();
        for row in 0..batch.rows() {
            for column in batch.columns() {
                match column.data.value(row) {
                    Value::Null => csv.write_field("").unwrap(),
                    Value::Text(text) => csv.write_field(text).unwrap(),
                    Value::Int64(v) => csv.write_field(v.to_string()).unwrap(),
                    other => panic!("not in this test: {other:?}"),
                }
            }
            csv.write_record(None::<&[u8]>).unwrap();
        }
        String::from_utf8(csv.into_inner().unwrap()).unwrap()
    }

    fn text_column(name: &str, values: &[Option<&str>]) -> Column {
        let mut data = String::new();
        let mut offsets = vec![0];
        for value in values {
            data.push_str(value.unwrap_or_default());
            offsets.push(data.len() as u32);
        }
        let valid = values.iter().map(|v| u8::from(v.is_some())).collect();
        Column { name: name.into(), data: ColumnData::Text { data, offsets, valid } }
    }

    #[test]
    fn text_is_quoted_exactly_as_the_csv_crate_quotes_it() {
        let texts = [
            Some("plain"),
            Some("a,b"),
            Some("say \"hi\""),
            Some("\""),
            Some("two\nlines"),
            Some("carriage\rreturn"),
            Some(""),
            None,
            Some(" padded "),
            Some("#hash"),
            Some("'single'"),
            Some("tab\there"),
            Some("DOG•GO ₿ 🐕"),
            Some("\"\",\r\n"),
        ];
        let rows = texts.len();
        let many = Batch::new(
            rows,
            vec![
                text_column("name, \"quoted\"", &texts),
                Column {
                    name: "rank".into(),
                    data: ColumnData::Int64 {
                        values: (0..rows as i64).collect(),
                        valid: (0..rows).map(|r| u8::from(r % 3 != 0)).collect(),
                    },
                },
                text_column("last", &texts.iter().rev().copied().collect::<Vec<_>>()),
            ],
        );
        // One column: an empty or null field is the whole record, which csv writes as `""`.
        let one = Batch::new(rows, vec![text_column("only", &texts)]);
        for batch in [many, one] {
            let mut out = Vec::new();
            write_csv(&batch, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), through_csv_crate(&batch));
        }
    }

    #[test]
    fn every_mix_of_special_characters_is_quoted_as_the_csv_crate_quotes_it() {
        // Every text of up to four characters drawn from these, nulls among them.
        const CHARS: [&str; 8] = ["a", ",", "\"", "\n", "\r", " ", "\t", "•"];
        let mut texts = vec![None, Some(String::new())];
        let mut last = vec![String::new()];
        for _ in 0..4 {
            last = last.iter().flat_map(|t| CHARS.map(|c| format!("{t}{c}"))).collect();
            texts.extend(last.iter().cloned().map(Some));
        }
        let texts: Vec<Option<&str>> = texts.iter().map(Option::as_deref).collect();
        let batch =
            Batch::new(texts.len(), vec![text_column("a", &texts), text_column("b", &texts)]);
        let mut out = Vec::new();
        write_csv_on(&batch, None, &mut out, 2).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), through_csv_crate(&batch));
    }

    /// A batch of every type, with nulls and text that needs quotes, `rows` rows long.
    fn mixed_batch(rows: usize) -> Batch {
        let valid = |every: usize| (0..rows).map(|r| u8::from(r % every != 0)).collect();
        let mut data = String::new();
        let mut offsets = vec![0];
        for row in 0..rows {
            data.push_str(["plain", "a, b", "say \"hi\"", "", "line\nbreak"][row % 5]);
            offsets.push(data.len() as u32);
        }
        let column = |name: &str, data| Column { name: name.into(), data };
        Batch::new(
            rows,
            vec![
                column(
                    "f",
                    ColumnData::Float64 {
                        values: (0..rows).map(|r| r as f64 * 1.5e15).collect(),
                        valid: valid(3),
                    },
                ),
                column(
                    "i",
                    ColumnData::Int64 {
                        values: (0..rows as i64).map(|r| -r).collect(),
                        valid: vec![],
                    },
                ),
                column("s", ColumnData::Text { data, offsets, valid: valid(7) }),
                column(
                    "b",
                    ColumnData::Boolean {
                        values: (0..rows).map(|r| (r % 2) as u8).collect(),
                        valid: valid(4),
                    },
                ),
                column(
                    "t",
                    ColumnData::Timestamp {
                        values: (0..rows as i64).map(|r| r * 86_400_000_123).collect(),
                        valid: valid(5),
                    },
                ),
            ],
        )
    }

    /// Fields formatted ahead, for runs at the start, in the middle and at the end of a
    /// record, make exactly the CSV that formatting them with the rest makes, also when rows
    /// were dropped after they were formatted.
    #[test]
    fn fields_formatted_ahead_are_stitched_into_the_same_csv() {
        let rows = ROWS_PER_BLOCK * 2 + 11;
        let full = mixed_batch(rows);
        let kept: Vec<usize> = (0..rows).filter(|r| r % 3 != 1).collect();
        let mut keep = vec![false; rows];
        for &row in &kept {
            keep[row] = true;
        }
        let expected_batch = full.filtered(&keep);
        let mut expected = Vec::new();
        write_csv_on(&expected_batch, None, &mut expected, 1).unwrap();
        let expected = String::from_utf8(expected).unwrap();
        for ahead_of in [&["f", "i"][..], &["i", "s", "b"], &["b", "t"], &["f", "s", "t"], &[]] {
            let mut batch = full.clone();
            let lent = batch.lend(ahead_of.iter().copied());
            // All rows formatted ahead, and only the first block of them.
            let all = FormattedAhead::format(&full.schema(), &lent, || false).unwrap();
            assert_eq!(all.runs.iter().map(|r| r.names.len()).sum::<usize>(), ahead_of.len());
            assert_eq!(all.formatted, rows);
            let asked = std::cell::Cell::new(0);
            let first_block = FormattedAhead::format(&full.schema(), &lent, || {
                asked.set(asked.get() + 1);
                asked.get() > 1
            })
            .unwrap();
            assert_eq!(first_block.formatted, ROWS_PER_BLOCK.min(rows));
            batch.filter(&keep);
            let mut lent = lent;
            lent.filter(&keep);
            batch.restore(lent);
            assert_eq!(batch, expected_batch);
            for ahead in [all, first_block] {
                let ahead = ahead.for_rows(kept.clone());
                // Every run is taken from what was formatted ahead, none formatted again.
                let taken = Part::of(&batch, Some(&ahead))
                    .iter()
                    .filter(|part| matches!(part, Part::Ahead { .. }))
                    .count();
                assert_eq!(taken, ahead.runs.len(), "formatted ahead: {ahead_of:?}");
                for threads in [1, 2] {
                    let mut out = Vec::new();
                    write_csv_on(&batch, Some(&ahead), &mut out, threads).unwrap();
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        expected,
                        "formatted ahead: {ahead_of:?}, {} rows of them",
                        ahead.formatted
                    );
                }
            }
        }
    }

    #[test]
    fn large_batches_are_written_in_row_order() {
        let rows = ROWS_PER_BLOCK * 3 + 7;
        let mut data = String::new();
        let mut offsets = vec![0];
        for row in 0..rows {
            data.push_str(&format!("coin, \"{row}\""));
            offsets.push(data.len() as u32);
        }
        let batch = Batch::new(
            rows,
            vec![
                Column {
                    name: "name".into(),
                    data: ColumnData::Text { data, offsets, valid: vec![] },
                },
                Column {
                    name: "t".into(),
                    data: ColumnData::Timestamp {
                        values: (0..rows as i64).map(|r| r * 1_000_000).collect(),
                        valid: vec![],
                    },
                },
            ],
        );
        let mut out = Vec::new();
        write_csv_on(&batch, None, &mut out, 3).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), rows + 1);
        assert_eq!(lines[0], "name,t");
        assert_eq!(lines[1], r#""coin, ""0""",1970-01-01T00:00:00"#);
        for (row, line) in lines[1..].iter().enumerate() {
            let time = chrono::DateTime::from_timestamp(row as i64, 0).unwrap();
            let expected = format!(r#""coin, ""{row}""",{}"#, time.format("%Y-%m-%dT%H:%M:%S"));
            assert_eq!(*line, expected, "row {row}");
        }
    }

    #[test]
    fn many_rejected_rows_are_written_in_order() {
        use crate::pipeline::chain::RowValues;
        let rows = REJECTED_PER_BLOCK * 3 + 5;
        let batch = Batch::new(
            rows,
            vec![Column {
                name: "rank".into(),
                data: ColumnData::Int64 { values: (0..rows as i64).collect(), valid: vec![] },
            }],
        );
        let rejected: Vec<RejectedRow> = RowValues::of_dropped(&batch, &vec![false; rows])
            .into_iter()
            .enumerate()
            .map(|(row, values)| RejectedRow {
                source_row: row,
                stage: "clean@0.1.0".into(),
                reason: format!("reason {row}"),
                values,
            })
            .collect();
        let mut out = Vec::new();
        write_quarantine_on(&rejected, &mut out, 3).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), rows);
        for (row, line) in lines.iter().enumerate() {
            assert_eq!(line["source_row"], row);
            assert_eq!(line["reason"], format!("reason {row}"));
            assert_eq!(line["values"]["rank"], row);
        }
    }

    #[test]
    fn timestamps_outside_four_digit_years_still_format() {
        let mut out = Vec::new();
        Dates::default().format(-62_167_219_200_000_000 - MICROS_PER_DAY, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "-0001-12-31T00:00:00");
    }

    #[test]
    fn timestamps_format_as_chrono_does_whatever_came_before() {
        const DAY: i64 = MICROS_PER_DAY;
        let fetch = 1_700_000_000_123_456; // 2023-11-14T22:13:20.123456Z
        // Repeats of one day, days that share a slot (`Dates::SLOTS` apart), both sides of
        // midnight and of 1970, the last instant of year 9999, and years with more or fewer than
        // four digits.
        let apart = Dates::SLOTS as i64 * DAY;
        let mut instants = vec![fetch, fetch + 1, fetch + apart, fetch, fetch - apart];
        instants.extend([fetch.div_euclid(DAY) * DAY, fetch.div_euclid(DAY) * DAY - 1]);
        instants.extend([0, -1, -DAY, -DAY - 1, -apart, -1_000_000, 1_000_000]);
        instants.extend([253_402_300_799_999_999, 253_402_300_800_000_000]);
        instants.extend([-62_167_219_200_000_001, -62_167_219_200_000_000]);
        let mut dates = Dates::default();
        for (i, &micros) in instants.iter().chain(&instants).enumerate() {
            let mut out = Vec::new();
            dates.format(micros, &mut out).unwrap();
            let expected = chrono::DateTime::from_timestamp_micros(micros).unwrap();
            let expected = expected.format("%Y-%m-%dT%H:%M:%S").to_string();
            assert_eq!(String::from_utf8(out).unwrap(), expected, "instant {i}: {micros}");
        }
        let out_of_range = dates.format(i64::MAX, &mut Vec::new()).unwrap_err();
        assert!(out_of_range.to_string().contains("out of range"), "{out_of_range}");
    }

    #[test]
    fn nothing_is_visible_until_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut staged = Staged::default();
        staged.write(&path, |w| w.write_all(b"x")).unwrap();
        assert!(!path.exists());
        staged.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        #[cfg(unix)]
        {
            // As readable by others as any file created there, not private to this user.
            use std::os::unix::fs::PermissionsExt;
            let plain = dir.path().join("plain");
            std::fs::write(&plain, b"").unwrap();
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), mode(&plain));
        }
        assert_eq!(quarantine_path(&path), dir.path().join("out.rejected.jsonl"));
    }

    #[test]
    fn large_files_are_written_whole_while_flushed_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        // Uneven writes, several flush requests' worth.
        let chunks: Vec<Vec<u8>> =
            (0..40u8).map(|i| vec![b'a' + i % 26; (SYNC_EVERY / 7) + usize::from(i)]).collect();
        let mut staged = Staged::default();
        staged.write(&path, |w| chunks.iter().try_for_each(|c| w.write_all(c))).unwrap();
        staged.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), chunks.concat());

        let failed = Staged::default()
            .write(&dir.path().join("failed.csv"), |w| {
                w.write_all(&chunks[0])?;
                Err(io::Error::other("the formatter gave up"))
            })
            .unwrap_err();
        assert!(failed.to_string().contains("the formatter gave up"), "{failed}");
    }
}
