//! Results as rows, written as a table, JSON lines or CSV to any `Write`.

use std::io::{self, Write};

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
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub le_us: u64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq)]
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
        Value::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n)))).collect()),
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
                let shown: Vec<usize> = (0..s.columns.len())
                    .filter(|&c| !s.rows.iter().any(|r| matches!(r[c], Value::Buckets(_))))
                    .collect();
                let mut t = Table::new();
                t.load_preset(UTF8_FULL_CONDENSED);
                t.set_header(shown.iter().map(|&c| s.columns[c].clone()));
                for r in &s.rows {
                    t.add_row(shown.iter().map(|&c| {
                        let cell = comfy_table::Cell::new(cell_text(&r[c], style.local_time));
                        if matches!(r[c], Value::U64(_)) { cell.set_alignment(CellAlignment::Right) } else { cell }
                    }));
                }
                if s.rows.is_empty() {
                    writeln!(out, "(no rows)")?;
                } else {
                    writeln!(out, "{t}")?;
                }
                for r in &s.rows {
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
                for r in &s.rows {
                    let mut obj = Map::new();
                    for (c, v) in s.columns.iter().zip(r) {
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
                for r in &s.rows {
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
        self.rows
            .iter()
            .map(|r| Section {
                title: format!("{} {}", self.title, cell_text(&r[0], false)),
                columns: vec!["field".into(), "value".into()],
                rows: self.columns.iter().zip(r).map(|(c, v)| vec![Value::from(c.as_str()), v.clone()]).collect(),
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
            }],
            warnings: vec!["3 events lost".into()],
            lost_events: 3,
        }
    }

    fn render(format: Format) -> String {
        let mut out = Vec::new();
        write(&sample(), &Style { format, local_time: false }, &mut out).unwrap();
        String::from_utf8(out).unwrap()
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
