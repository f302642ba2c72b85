//! Results as rows, written as a table, JSON lines or CSV to any `Write`.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use chrono::{DateTime, Local, SecondsFormat, Utc};
use clap::ValueEnum;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};
use serde_json::{json, Map, Value as Json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people, histograms drawn as bars
    Table,
    /// One JSON object per line, for scripts
    Json,
    /// Comma-separated, with a header line
    Csv,
}

/// One log2 histogram bucket: values in (le/2, le], as BCC's tools print them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket {
    pub le_us: u64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Null,
    U64(u64),
    Str(String),
    /// ns since the epoch, shown as RFC 3339
    Time(i64),
    Buckets(Vec<Bucket>),
    /// Named values: a JSON object, one `key=value` per line in a table.
    Map(Vec<(String, String)>),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::U64(v)
    }
}

impl From<Option<u64>> for Value {
    fn from(v: Option<u64>) -> Value {
        v.map_or(Value::Null, Value::U64)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}

/// A titled set of rows; a report may hold several.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// More rows, after `rows`, made one at a time as they are written.
    pub generated: Option<RowSource>,
}

/// Rows made on demand: a big report is never held as values all at once
/// (345 k netio rows took 150 MiB that way).
#[derive(Clone)]
pub struct RowSource {
    pub len: usize,
    pub row: Arc<dyn Fn(usize) -> Vec<Value> + Send + Sync>,
}

impl fmt::Debug for RowSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowSource({} rows)", self.len)
    }
}

impl Section {
    /// Every row: the held ones, then the generated ones.
    pub fn all_rows(&self) -> impl Iterator<Item = Cow<'_, [Value]>> {
        let held = self.rows.iter().map(|r| Cow::Borrowed(r.as_slice()));
        let made = self.generated.iter().flat_map(|g| (0..g.len).map(|i| Cow::Owned((g.row)(i))));
        held.chain(made)
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.generated.as_ref().is_none_or(|g| g.len == 0)
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub sections: Vec<Section>,
    /// Said before the table, and on stderr for json/csv.
    pub warnings: Vec<String>,
    /// Events the capture lost in the analyzed range (added to every JSON row).
    pub lost_events: u64,
}

pub struct Style {
    pub format: Format,
    pub local_time: bool,
}

fn time_text(ns: i64, local: bool) -> String {
    let t = DateTime::<Utc>::from_timestamp_nanos(ns);
    // Whole seconds print as such; sub-second buckets with the digits they need.
    let fmt = SecondsFormat::AutoSi;
    if local {
        t.with_timezone(&Local).to_rfc3339_opts(fmt, true)
    } else {
        t.to_rfc3339_opts(fmt, true)
    }
}

fn cell_text(v: &Value, local: bool) -> String {
    match v {
        Value::Null => String::new(),
        Value::U64(n) => n.to_string(),
        Value::Str(s) => s.clone(),
        Value::Time(ns) => time_text(*ns, local),
        Value::Buckets(b) => b.iter().map(|b| format!("{}:{}", b.le_us, b.count)).collect::<Vec<_>>().join(";"),
        Value::Map(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n"),
    }
}

fn cell_json(v: &Value, local: bool) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::U64(n) => json!(n),
        Value::Str(s) => json!(s),
        Value::Time(ns) => json!(time_text(*ns, local)),
        Value::Buckets(b) => Json::Array(b.iter().map(|b| json!({"le_us": b.le_us, "count": b.count})).collect()),
        Value::Map(m) => Json::Object(
            m.iter().map(|(k, v)| (k.clone(), v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n)))).collect(),
        ),
    }
}

/// BCC-style bars: `     16 -> 31     : 5        |*****        |`
fn draw_histogram(out: &mut dyn Write, label: &str, buckets: &[Bucket]) -> io::Result<()> {
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    writeln!(out, "{label}")?;
    writeln!(out, "{:>24} : {:<8} distribution", "usecs", "count")?;
    for b in buckets {
        let lo = if b.le_us <= 1 { 0 } else { b.le_us / 2 + 1 };
        let stars = (b.count * 40).div_ceil(max) as usize;
        writeln!(out, "{:>10} -> {:<10} : {:<8} |{:<40}|", lo, b.le_us, b.count, "*".repeat(stars.min(40)))?;
    }
    writeln!(out)
}

pub fn write(report: &Report, style: &Style, out: &mut dyn Write) -> io::Result<()> {
    match style.format {
        Format::Table => {
            for w in &report.warnings {
                writeln!(out, "warning: {w}")?;
            }
            for (i, s) in report.sections.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                if !s.title.is_empty() {
                    writeln!(out, "{}", s.title)?;
                }
                // One pass over the rows: generated rows are made once per pass.
                let mut has_buckets = vec![false; s.columns.len()];
                for r in s.all_rows() {
                    for (c, v) in r.iter().enumerate() {
                        has_buckets[c] |= matches!(v, Value::Buckets(_));
                    }
                }
                let shown: Vec<usize> = (0..s.columns.len()).filter(|&c| !has_buckets[c]).collect();
                let mut t = Table::new();
                t.load_preset(UTF8_FULL_CONDENSED);
                t.set_header(shown.iter().map(|&c| s.columns[c].clone()));
                for r in s.all_rows() {
                    t.add_row(shown.iter().map(|&c| {
                        let cell = comfy_table::Cell::new(cell_text(&r[c], style.local_time));
                        if matches!(r[c], Value::U64(_)) {
                            cell.set_alignment(CellAlignment::Right)
                        } else {
                            cell
                        }
                    }));
                }
                if s.is_empty() {
                    writeln!(out, "(no rows)")?;
                } else {
                    writeln!(out, "{t}")?;
                }
                for r in s.all_rows().filter(|_| has_buckets.contains(&true)) {
                    for (c, v) in r.iter().enumerate() {
                        if let Value::Buckets(b) = v {
                            // "connect (comm=curl)": the row's first text names it, the rest qualify it.
                            let mut texts = shown
                                .iter()
                                .filter(|&&i| matches!(r[i], Value::Str(_)) || (i > 0 && !matches!(r[i], Value::Null)))
                                .filter(|&&i| i < c && !s.columns[i].ends_with("_us") && s.columns[i] != "count")
                                .map(|&i| (s.columns[i].as_str(), cell_text(&r[i], style.local_time)));
                            let name = texts.next().map(|(_, v)| v).unwrap_or_default();
                            let quals: Vec<String> = texts.map(|(k, v)| format!("{k}={v}")).collect();
                            let label = if quals.is_empty() { name } else { format!("{name} ({})", quals.join(", ")) };
                            draw_histogram(out, &label, b)?;
                        }
                    }
                }
            }
        }
        Format::Json => {
            for s in &report.sections {
                for r in s.all_rows() {
                    let mut obj = Map::new();
                    for (c, v) in s.columns.iter().zip(r.iter()) {
                        obj.insert(c.clone(), cell_json(v, style.local_time));
                    }
                    obj.insert("lost_events".into(), json!(report.lost_events));
                    writeln!(out, "{}", Json::Object(obj))?;
                }
            }
        }
        Format::Csv => {
            // Keep the io::Error itself (a broken pipe must stay recognizable).
            let io_err = |e: csv::Error| match e.into_kind() {
                csv::ErrorKind::Io(e) => e,
                other => io::Error::other(format!("{other:?}")),
            };
            // Sections differ in columns: each starts with its own header line.
            let mut w = csv::WriterBuilder::new().flexible(true).from_writer(out);
            let mut header_of: Option<&Vec<String>> = None;
            for s in &report.sections {
                if header_of != Some(&s.columns) {
                    w.write_record(&s.columns).map_err(io_err)?;
                    header_of = Some(&s.columns);
                }
                for r in s.all_rows() {
                    let cells = r.iter().map(|v| cell_text(v, style.local_time).replace('\n', "; "));
                    w.write_record(cells).map_err(io_err)?;
                }
            }
            w.flush()?;
        }
    }
    Ok(())
}

impl Section {
    /// One two-column (field, value) section per row: for wide records shown to people.
    pub fn transposed(&self) -> Vec<Section> {
        self.all_rows()
            .map(|r| Section {
                title: format!("{} {}", self.title, cell_text(&r[0], false)),
                columns: vec!["field".into(), "value".into()],
                rows: self
                    .columns
                    .iter()
                    .zip(r.iter())
                    .map(|(c, v)| vec![Value::from(c.as_str()), v.clone()])
                    .collect(),
                generated: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            sections: vec![Section {
                title: "demo".into(),
                columns: vec!["second".into(), "comm".into(), "sent_bytes".into(), "buckets".into()],
                rows: vec![vec![
                    Value::Time(1_700_000_000_000_000_000),
                    "curl".into(),
                    42u64.into(),
                    Value::Buckets(vec![Bucket { le_us: 1, count: 0 }, Bucket { le_us: 3, count: 2 }]),
                ]],
                generated: None,
            }],
            warnings: vec!["3 events lost".into()],
            lost_events: 3,
        }
    }

    fn render_report(report: &Report, format: Format) -> String {
        let mut out = Vec::new();
        write(report, &Style { format, local_time: false }, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn render(format: Format) -> String {
        render_report(&sample(), format)
    }

    #[test]
    fn generated_rows_render_as_held_rows_do() {
        let held = sample();
        let mut made = sample();
        let section = &mut made.sections[0];
        let rows = std::mem::take(&mut section.rows);
        // Two rows: the first held, the second made on demand.
        section.rows = rows.clone();
        let copy = rows[0].clone();
        section.generated = Some(RowSource {
            len: 1,
            row: Arc::new(move |i| {
                assert_eq!(i, 0);
                copy.clone()
            }),
        });
        let mut twice = held;
        twice.sections[0].rows.push(rows[0].clone());
        for format in [Format::Table, Format::Json, Format::Csv] {
            assert_eq!(render_report(&made, format), render_report(&twice, format), "{format:?}");
        }
        let empty =
            Section { generated: Some(RowSource { len: 0, row: Arc::new(|_| unreachable!()) }), ..Default::default() };
        assert!(empty.is_empty());
        assert!(!made.sections[0].is_empty());
    }

    #[test]
    fn json_has_documented_shapes() {
        let text = render(Format::Json);
        let v: Json = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["second"], "2023-11-14T22:13:20Z");
        assert_eq!(v["sent_bytes"], 42);
        assert_eq!(v["buckets"][1]["le_us"], 3);
        assert_eq!(v["lost_events"], 3);
    }

    #[test]
    fn csv_and_table_render() {
        assert_eq!(render(Format::Csv), "second,comm,sent_bytes,buckets\n2023-11-14T22:13:20Z,curl,42,1:0;3:2\n");
        let table = render(Format::Table);
        assert!(table.starts_with("warning: 3 events lost\ndemo\n"), "{table}");
        assert!(table.contains("|****************************************|"), "{table}");
    }
}
