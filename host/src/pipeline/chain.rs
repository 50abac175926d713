//! Runs plugins one after another over a batch, trusting none of them.
//!
//! [`Chain::plan`] asks every plugin for its plan against the schema the previous plugins leave
//! and checks the whole chain before any data moves. [`Chain::run`] gives each plugin only the
//! columns it reads, checks its output against its plan (names, types, lengths, values), applies
//! it, and sets aside the rows it rejected with their reasons.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::batch::{Batch, Column, ColumnData, Field, Schema, Value};
use crate::names::{is_valid_column_name, is_valid_label};
use crate::plugin::{
    Config, Failure, Plan, PluginError, PluginInfo, PluginOutput, SnapshotContext, TransformPlugin,
};

/// Longest rejection reason kept; longer ones are cut.
const MAX_REASON: usize = 1000;
/// Longest column description accepted.
const MAX_DESCRIPTION: usize = 500;

/// A plugin with its configuration, ready to plan.
#[derive(Debug)]
pub struct Stage {
    pub plugin: Box<dyn TransformPlugin>,
    pub config: Config,
}

#[derive(Debug)]
struct PlannedStage {
    stage: Stage,
    plan: Plan,
}

/// A checked sequence of plugins and the schema it produces.
#[derive(Debug)]
pub struct Chain {
    stages: Vec<PlannedStage>,
    input: Schema,
    output: Schema,
}

/// A row set aside, with the values it had when it was rejected. Serialized, it is one line of
/// the quarantine file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RejectedRow {
    /// Position of the coin in the raw snapshot's array.
    pub source_row: usize,
    /// `ingest`, or the plugin's `name@version`.
    pub stage: String,
    pub reason: String,
    /// The row's values, column by column.
    pub values: RowValues,
}

/// One row of the rows a stage rejected, kept as columns: tens of thousands of rejected rows
/// (the original's rules drop half of a large snapshot) cost a copy of those rows, not a JSON
/// object each.
#[derive(Debug, Clone)]
pub struct RowValues {
    rows: Arc<Batch>,
    row: usize,
}

impl RowValues {
    /// Every row of `batch` whose `keep` entry is false, in order: the rows
    /// [`Batch::filter`] with the same `keep` is about to drop.
    pub fn of_dropped(batch: &Batch, keep: &[bool]) -> Vec<RowValues> {
        Self::of_dropped_lending(batch, keep, &Batch::new(batch.rows(), Vec::new()), &[])
    }

    /// [`RowValues::of_dropped`] for a batch some of whose columns are out on a
    /// [`Batch::lend`]: their values come from `lent`, whose row `rows[i]` is row `i` of
    /// `batch`.
    fn of_dropped_lending(
        batch: &Batch,
        keep: &[bool],
        lent: &Batch,
        rows: &[usize],
    ) -> Vec<RowValues> {
        if !keep.contains(&false) {
            return Vec::new();
        }
        let dropped: Vec<bool> = keep.iter().map(|k| !k).collect();
        let mut values = batch.filtered(&dropped);
        if !lent.columns().is_empty() {
            let mut dropped_lent = vec![false; lent.rows()];
            for (row, _) in dropped.iter().enumerate().filter(|(_, d)| **d) {
                dropped_lent[rows[row]] = true;
            }
            for column in lent.columns() {
                // In its own place: `filtered` kept the lent column's.
                values.put(Column {
                    name: column.name.clone(),
                    data: column.data.filter(&dropped_lent),
                });
            }
        }
        let values = Arc::new(values);
        (0..values.rows()).map(|row| RowValues { rows: values.clone(), row }).collect()
    }

    /// The value of column `name`, if the row had that column.
    pub fn get(&self, name: &str) -> Option<Value<'_>> {
        self.rows.column(name).map(|c| c.data.value(self.row))
    }

    /// Column names and values, in the batch's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Value<'_>)> {
        self.rows.columns().iter().map(|c| (c.name.as_str(), c.data.value(self.row)))
    }
}

impl PartialEq for RowValues {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl serde::Serialize for RowValues {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.rows.columns().len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, &JsonValue(value))?;
        }
        map.end()
    }
}

/// What one plugin did in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct StageReport {
    pub plugin: String,
    pub version: String,
    pub sha256: String,
    pub rows_in: usize,
    pub rejected: usize,
    pub elapsed: Duration,
    /// The plugin instance's memory at its peak, in bytes.
    pub peak_memory: Option<usize>,
}

/// The result of a run: the transformed batch and the rows set aside.
#[derive(Debug)]
pub struct ChainRun {
    pub batch: Batch,
    pub source_rows: Vec<usize>,
    pub rejected: Vec<RejectedRow>,
    pub stages: Vec<StageReport>,
    /// For each row of `batch`, its row in the batch the chain was given.
    pub input_rows: Vec<usize>,
}

fn invalid(info: &PluginInfo, message: String) -> PluginError {
    PluginError::new(info, Failure::Invalid(message))
}

impl Chain {
    /// Plans every stage against `input` and checks the chain as a whole.
    pub fn plan(stages: Vec<Stage>, input: &Schema) -> Result<Self, PluginError> {
        let mut schema = input.clone();
        let mut planned = Vec::with_capacity(stages.len());
        let mut names = HashSet::new();
        for stage in stages {
            let info = stage.plugin.info().clone();
            if !names.insert(info.name.clone()) {
                return Err(invalid(
                    &info,
                    "appears twice in the pipeline; names must be unique".into(),
                ));
            }
            let plan = stage.plugin.plan(&stage.config, &schema)?;
            schema = apply_plan(&schema, &plan)
                .map_err(|m| invalid(&info, format!("has an invalid plan: {m}")))?;
            planned.push(PlannedStage { stage, plan });
        }
        Ok(Self { stages: planned, input: input.clone(), output: schema })
    }

    /// The schema of the batches this chain produces.
    pub fn output_schema(&self) -> &Schema {
        &self.output
    }

    /// The plugins and their plans, in order.
    pub fn plans(&self) -> impl Iterator<Item = (&PluginInfo, &Plan)> {
        self.stages.iter().map(|s| (s.stage.plugin.info(), &s.plan))
    }

    /// Runs the chain over `batch`, whose schema must be the one it was planned for.
    /// `source_rows[i]` is the raw-snapshot position of row `i`.
    pub fn run(
        &self,
        batch: Batch,
        source_rows: Vec<usize>,
        context: &SnapshotContext,
    ) -> Result<ChainRun, PluginError> {
        debug_assert_eq!(batch.schema(), self.input, "batch does not match the planned schema");
        let none = Batch::new(batch.rows(), Vec::new());
        self.run_lending(batch, source_rows, &none, context)
    }

    /// The columns of the input that no stage reads, writes or removes, in the input's order:
    /// they come out of the chain as they went in, less the rows it drops.
    pub fn untouched(&self) -> Vec<&str> {
        let touched: HashSet<&str> = self
            .stages
            .iter()
            .flat_map(|s| {
                let plan = &s.plan;
                let reads = plan.reads.iter().map(|c| c.name.as_str());
                let writes = plan.writes.iter().map(|c| c.name.as_str());
                reads.chain(writes).chain(plan.removes.iter().map(String::as_str))
            })
            .collect();
        self.input.names().filter(|name| !touched.contains(name)).collect()
    }

    /// [`Chain::run`], while `alongside` runs on another thread with the
    /// [untouched](Chain::untouched) columns, all rows of them: the one stretch of a
    /// transform where a core would otherwise idle (the stages run one at a time), put to work
    /// on columns the stages never see. Its second argument says whether the stages are done,
    /// so that work which could as well be done later can stop then. The result is the same as
    /// [`Chain::run`]'s.
    pub fn run_alongside<R: Send>(
        &self,
        mut batch: Batch,
        source_rows: Vec<usize>,
        context: &SnapshotContext,
        alongside: impl FnOnce(&Batch, &dyn Fn() -> bool) -> R + Send,
    ) -> Result<(ChainRun, R), PluginError> {
        debug_assert_eq!(batch.schema(), self.input, "batch does not match the planned schema");
        let lent = batch.lend(self.untouched());
        let done = AtomicBool::new(false);
        let (run, beside) = std::thread::scope(|scope| {
            let beside = scope.spawn(|| alongside(&lent, &|| done.load(Ordering::Relaxed)));
            let run = self.run_lending(batch, source_rows, &lent, context);
            done.store(true, Ordering::Relaxed);
            (run, beside.join())
        });
        let beside = beside.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let mut run = run?;
        let mut lent = lent;
        let mut kept = vec![false; lent.rows()];
        for &row in &run.input_rows {
            kept[row] = true;
        }
        lent.filter(&kept);
        run.batch.restore(lent);
        Ok((run, beside))
    }

    /// The stages over `batch`, some of whose columns may be out on a [`Batch::lend`] to
    /// `lent`: no stage touches those, and the rows they reject take their values from it.
    fn run_lending(
        &self,
        mut batch: Batch,
        mut source_rows: Vec<usize>,
        lent: &Batch,
        context: &SnapshotContext,
    ) -> Result<ChainRun, PluginError> {
        let mut input_rows: Vec<usize> = (0..batch.rows()).collect();
        let mut rejected = Vec::new();
        let mut reports = Vec::with_capacity(self.stages.len());
        for PlannedStage { stage, plan } in &self.stages {
            let info = stage.plugin.info();
            let rows_in = batch.rows();
            if u32::try_from(rows_in).is_err() {
                return Err(invalid(
                    info,
                    format!("cannot take {rows_in} rows (the interface allows 2^32 - 1)"),
                ));
            }
            let input = batch.lend(plan.reads.iter().map(|field| field.name.as_str()));
            let started = Instant::now();
            let (input, output) = stage.plugin.transform(&stage.config, input, context)?;
            let elapsed = started.elapsed();
            batch.restore(input);
            let keep = check_output(info, plan, rows_in, &output)?;

            let stage_name = format!("{}@{}", info.name, info.version);
            // Each rejected row once, with the first reason given for it, in row order.
            let mut reasons: Vec<(usize, String)> =
                output.rejected.into_iter().map(|r| (r.row, r.reason)).collect();
            reasons.sort_by_key(|(row, _)| *row);
            reasons.dedup_by_key(|(row, _)| *row);
            let mut values =
                RowValues::of_dropped_lending(&batch, &keep, lent, &input_rows).into_iter();
            // The rows with a reason are exactly the dropped ones, in the same order.
            for (row, reason) in reasons {
                let Some(values) = values.next() else { break };
                rejected.push(RejectedRow {
                    source_row: source_rows[row],
                    stage: stage_name.clone(),
                    reason: clean_reason(reason),
                    values,
                });
            }
            for name in &plan.removes {
                batch.remove(name);
            }
            // In the plan's order, whatever order the plugin returned them in, so the batch
            // always has the schema `apply_plan` computed.
            let mut columns = output.columns;
            for write in &plan.writes {
                if let Some(at) = columns.iter().position(|c| c.name == write.name) {
                    batch.put(columns.swap_remove(at));
                }
            }
            let dropped = keep.iter().filter(|k| !**k).count();
            if dropped > 0 {
                batch.filter(&keep);
                let kept = |rows: Vec<usize>| -> Vec<usize> {
                    rows.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| r).collect()
                };
                source_rows = kept(source_rows);
                input_rows = kept(input_rows);
            }
            reports.push(StageReport {
                plugin: info.name.clone(),
                version: info.version.clone(),
                sha256: stage.plugin.sha256().to_owned(),
                rows_in,
                rejected: dropped,
                elapsed,
                peak_memory: stage.plugin.peak_memory(),
            });
        }
        Ok(ChainRun { batch, source_rows, rejected, stages: reports, input_rows })
    }
}

/// The schema after `plan`, or why the plan cannot apply to `schema`.
pub fn apply_plan(schema: &Schema, plan: &Plan) -> Result<Schema, String> {
    let mut seen = HashSet::new();
    for read in &plan.reads {
        if !seen.insert(&read.name) {
            return Err(format!("reads `{}` twice", read.name));
        }
        match schema.get(&read.name) {
            None => {
                let have: Vec<&str> = schema.names().collect();
                return Err(format!(
                    "reads `{}`, which the batch does not have (it has: {})",
                    read.name,
                    have.join(", ")
                ));
            }
            Some(field) if field.column_type != read.column_type => {
                return Err(format!(
                    "reads `{}` as {}, but the batch has it as {}",
                    read.name, read.column_type, field.column_type
                ));
            }
            Some(_) => {}
        }
    }
    let mut next = schema.clone();
    for name in &plan.removes {
        if schema.get(name).is_none() {
            return Err(format!("removes `{name}`, which the batch does not have"));
        }
        if plan.writes.iter().any(|w| &w.name == name) {
            return Err(format!("both removes and writes `{name}`"));
        }
        next.fields.retain(|f| &f.name != name);
    }
    let mut written = HashSet::new();
    for write in &plan.writes {
        if !is_valid_column_name(&write.name) {
            return Err(format!(
                "writes column {:?}; column names are [a-z][a-z0-9_]*, at most 63 characters",
                write.name
            ));
        }
        if !written.insert(&write.name) {
            return Err(format!("writes `{}` twice", write.name));
        }
        if !is_valid_label(&write.description, MAX_DESCRIPTION) {
            return Err(format!(
                "the description of `{}` is over {MAX_DESCRIPTION} bytes or has control characters",
                write.name
            ));
        }
        let field = Field { name: write.name.clone(), column_type: write.column_type };
        match (next.fields.iter_mut().find(|f| f.name == write.name), write.replaces) {
            (Some(existing), true) => *existing = field,
            (None, false) => next.fields.push(field),
            (Some(_), false) => {
                return Err(format!(
                    "writes `{}`, which already exists; declare it as a replacement to overwrite it",
                    write.name
                ));
            }
            (None, true) => {
                return Err(format!("replaces `{}`, which the batch does not have", write.name));
            }
        }
    }
    Ok(next)
}

/// Checks an output against the plan; returns which rows to keep.
fn check_output(
    info: &PluginInfo,
    plan: &Plan,
    rows: usize,
    output: &PluginOutput,
) -> Result<Vec<bool>, PluginError> {
    let fail = |message: String| invalid(info, format!("returned invalid output: {message}"));
    let mut keep = vec![true; rows];
    if !plan.drops_rows && !output.rejected.is_empty() {
        return Err(fail(format!(
            "rejected {} rows, but its plan says it drops none",
            output.rejected.len()
        )));
    }
    for rejection in &output.rejected {
        match keep.get_mut(rejection.row) {
            Some(slot) => *slot = false,
            None => {
                return Err(fail(format!(
                    "rejected row {}, but the batch has {rows} rows",
                    rejection.row
                )));
            }
        }
    }
    let mut returned = HashSet::new();
    for column in &output.columns {
        let Some(declared) = plan.writes.iter().find(|w| w.name == column.name) else {
            return Err(fail(format!("column `{}` is not in its plan's writes", column.name)));
        };
        if !returned.insert(&column.name) {
            return Err(fail(format!("column `{}` appears twice", column.name)));
        }
        let actual = column.data.column_type();
        if actual != declared.column_type {
            return Err(fail(format!(
                "column `{}` is {actual}, but the plan declares {}",
                column.name, declared.column_type
            )));
        }
        check_column(&column.data, rows)
            .map_err(|m| fail(format!("column `{}`: {m}", column.name)))?;
    }
    if let Some(missing) = plan.writes.iter().find(|w| !returned.contains(&w.name)) {
        return Err(fail(format!(
            "column `{}` is in its plan's writes but was not returned",
            missing.name
        )));
    }
    Ok(keep)
}

/// Shape and value checks for one column of `rows` rows.
fn check_column(data: &ColumnData, rows: usize) -> Result<(), String> {
    if data.len() != rows {
        return Err(format!("has {} values for {rows} rows", data.len()));
    }
    let valid = data.validity();
    if !valid.is_empty() && valid.len() != rows {
        return Err(format!("has {} validity entries for {rows} rows", valid.len()));
    }
    let present = |row: usize| valid.is_empty() || valid[row] != 0;
    match data {
        ColumnData::Text { data, offsets, .. } => {
            if offsets.first() != Some(&0) {
                return Err("text offsets must start at 0".into());
            }
            for pair in offsets.windows(2) {
                if pair[0] > pair[1] {
                    return Err("text offsets go backwards".into());
                }
            }
            let end = *offsets.last().unwrap_or(&0) as usize;
            if end > data.len() {
                return Err("text offsets run past the end of the data".into());
            }
            if let Some(bad) = offsets.iter().find(|o| !data.is_char_boundary(**o as usize)) {
                return Err(format!("text offset {bad} splits a character"));
            }
        }
        ColumnData::Float64 { values, .. } => {
            if let Some(row) = (0..rows).find(|r| present(*r) && !values[*r].is_finite()) {
                return Err(format!(
                    "row {row} is {}; write null instead of NaN or infinity",
                    values[row]
                ));
            }
        }
        ColumnData::Timestamp { values, .. } => {
            // The instants chrono can represent, which every later step formats through it.
            let representable = DateTime::<Utc>::MIN_UTC.timestamp_micros()
                ..=DateTime::<Utc>::MAX_UTC.timestamp_micros();
            if let Some(row) =
                (0..rows).find(|r| present(*r) && !representable.contains(&values[*r]))
            {
                return Err(format!(
                    "row {row} ({} µs) is not a representable instant",
                    values[row]
                ));
            }
        }
        ColumnData::Boolean { .. } | ColumnData::Int64 { .. } => {}
    }
    Ok(())
}

/// A plugin's reason as people will read it: control characters as spaces, at most
/// [`MAX_REASON`] bytes, and never empty.
fn clean_reason(reason: String) -> String {
    // Most reasons are fine as they are: rebuild only those with control characters.
    let mut cleaned = if reason.contains(char::is_control) {
        reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
    } else {
        reason
    };
    if cleaned.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !cleaned.is_char_boundary(end) {
            end -= 1;
        }
        cleaned.truncate(end);
        cleaned.push('…');
    }
    if cleaned.trim().is_empty() { "(no reason given)".into() } else { cleaned }
}

/// A value as the quarantine file shows it: JSON numbers, text and booleans, timestamps as
/// RFC 3339 text, and null for NaN and infinities (which JSON cannot hold). Serialized straight
/// from the column: seed-compat quarantines tens of thousands of rows.
struct JsonValue<'a>(Value<'a>);

impl serde::Serialize for JsonValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Float64(v) if v.is_finite() => serializer.serialize_f64(v),
            Value::Null | Value::Float64(_) => serializer.serialize_unit(),
            Value::Int64(v) => serializer.serialize_i64(v),
            Value::Text(v) => serializer.serialize_str(v),
            Value::Boolean(v) => serializer.serialize_bool(v),
            Value::Timestamp(v) => match chrono::DateTime::from_timestamp_micros(v) {
                Some(t) => serializer
                    .serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
                None => serializer.serialize_unit(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Rejection;

    #[test]
    fn reasons_are_made_fit_to_read() {
        let fine = String::from("`id` is null");
        assert_eq!(clean_reason(fine.clone()), fine);
        assert_eq!(clean_reason("two\nlines\tand\u{7}bell".into()), "two lines and bell");
        assert_eq!(clean_reason(" \n ".into()), "(no reason given)");
        let long = clean_reason("é".repeat(MAX_REASON));
        assert!(long.len() <= MAX_REASON + '…'.len_utf8() && long.ends_with('…'), "{long}");
    }

    /// Drops rows it is given, out of order and one of them twice, as any plugin may.
    #[derive(Debug)]
    struct Rejecter {
        info: PluginInfo,
        rejections: Vec<(usize, &'static str)>,
    }

    impl TransformPlugin for Rejecter {
        fn info(&self) -> &PluginInfo {
            &self.info
        }

        fn sha256(&self) -> &str {
            "test"
        }

        fn plan(&self, _: &Config, _: &Schema) -> Result<Plan, PluginError> {
            Ok(Plan { reads: vec![], writes: vec![], removes: vec![], drops_rows: true })
        }

        fn transform(
            &self,
            _: &Config,
            input: Batch,
            _: &SnapshotContext,
        ) -> Result<(Batch, PluginOutput), PluginError> {
            let rejected = self
                .rejections
                .iter()
                .map(|&(row, reason)| Rejection { row, reason: reason.into() })
                .collect();
            Ok((input, PluginOutput { columns: vec![], rejected }))
        }
    }

    /// Each dropped row is quarantined once, in row order, with the first reason given for it
    /// and its own values; the rows kept keep their places in the raw snapshot.
    #[test]
    fn dropped_rows_are_quarantined_once_in_row_order_with_their_first_reason() {
        let plugin = Rejecter {
            info: PluginInfo {
                name: "rejecter".into(),
                version: "1.0.0".into(),
                description: String::new(),
            },
            rejections: vec![(3, "three"), (0, "zero"), (3, "three again"), (1, "one")],
        };
        let price = ColumnData::Float64 { values: vec![1.0, 2.0, 3.0, 4.0, 5.0], valid: vec![] };
        let batch = Batch::new(5, vec![Column { name: "price".into(), data: price }]);
        let chain = Chain::plan(
            vec![Stage { plugin: Box::new(plugin), config: Config::new() }],
            &batch.schema(),
        )
        .unwrap();
        let context = SnapshotContext {
            fetch_time: 0,
            currency: "usd".into(),
            market_total_cap: None,
            market_total_volume: None,
        };
        let run = chain.run(batch, vec![10, 11, 12, 13, 14], &context).unwrap();
        let quarantined: Vec<(usize, &str, Option<Value>)> = run
            .rejected
            .iter()
            .map(|r| (r.source_row, r.reason.as_str(), r.values.get("price")))
            .collect();
        assert_eq!(
            quarantined,
            vec![
                (10, "zero", Some(Value::Float64(1.0))),
                (11, "one", Some(Value::Float64(2.0))),
                (13, "three", Some(Value::Float64(4.0))),
            ]
        );
        assert_eq!(run.source_rows, vec![12, 14]);
        assert_eq!(run.stages[0].rejected, 3);
        assert_eq!(run.batch.rows(), 2);
    }

    /// The range check accepts exactly the instants chrono can make a date of.
    #[test]
    fn timestamps_outside_chronos_range_are_refused() {
        let (min, max) = (
            DateTime::<Utc>::MIN_UTC.timestamp_micros(),
            DateTime::<Utc>::MAX_UTC.timestamp_micros(),
        );
        for micros in [i64::MIN, min - 1, min, 0, max, max + 1, i64::MAX] {
            let column = ColumnData::Timestamp { values: vec![micros], valid: vec![] };
            let checked = check_column(&column, 1);
            let representable = DateTime::from_timestamp_micros(micros).is_some();
            assert_eq!(checked.is_ok(), representable, "{micros}: {checked:?}");
        }
    }
}
