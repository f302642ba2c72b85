//! Results as polars DataFrames, written as a table, JSON lines, CSV or
//! Markdown to any `Write`. Every metric hands its frames here; nothing
//! upstream formats a value.

pub mod cells;
mod table;

use std::io::{self, Write};

use clap::ValueEnum;
use polars::prelude::*;

/// The name of every per-interval time column: the interval's start.
pub const TIME: &str = "time";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people, histograms drawn as bars
    Table,
    /// One JSON object per line, for scripts
    Json,
    /// Comma-separated, with a header line
    Csv,
    /// GitHub-flavoured Markdown tables: a pull-request comment, a CI step summary
    Markdown,
}

/// One titled result.
pub struct Frame {
    pub title: String,
    pub data: LazyFrame,
    /// Shown to people as one (field, value) table per row: wide records.
    pub transposed: bool,
}

impl Frame {
    pub fn new(title: impl Into<String>, data: LazyFrame) -> Frame {
        Frame { title: title.into(), data, transposed: false }
    }
}

#[derive(Default)]
pub struct Report {
    pub frames: Vec<Frame>,
    /// Said before the table, and on stderr for json/csv.
    pub warnings: Vec<String>,
    /// Events the capture lost in the analyzed range (added to every JSON row).
    pub lost_events: u64,
}

pub struct Style {
    pub format: Format,
    pub local_time: bool,
}

/// Runs the plan on the streaming engine: memory stays bounded on big traces.
pub fn collect(lf: LazyFrame) -> PolarsResult<DataFrame> {
    // A plan with one sink always yields a single frame.
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}

fn polars_io(e: PolarsError) -> io::Error {
    match e {
        PolarsError::IO { error, .. } => io::Error::new(error.kind(), error.to_string()),
        other => io::Error::other(other.to_string()),
    }
}

/// Rows converted and serialized at a time: a big report's text is never
/// all in memory (345 k netio rows are 45 MB of JSON).
const SLICE: usize = 16 * 1024;

fn slices(df: &DataFrame) -> impl Iterator<Item = DataFrame> + '_ {
    // An empty frame still writes its CSV header.
    let n = df.height().div_ceil(SLICE).max(1);
    (0..n).map(move |i| df.slice((i * SLICE) as i64, SLICE))
}

pub fn write(report: Report, style: &Style, out: &mut dyn Write) -> anyhow::Result<()> {
    if matches!(style.format, Format::Table | Format::Markdown) {
        for w in &report.warnings {
            match style.format {
                Format::Markdown => writeln!(out, "> **warning:** {w}\n")?,
                _ => writeln!(out, "warning: {w}")?,
            }
        }
    }
    let mut last_header: Option<Vec<String>> = None;
    for (i, frame) in report.frames.into_iter().enumerate() {
        // Results are small beside the trace: the in-memory engine sorts and
        // joins them with less memory than the streaming one.
        let df = frame.data.collect()?;
        match style.format {
            Format::Table | Format::Markdown => {
                if i > 0 {
                    writeln!(out)?;
                }
                let markdown = style.format == Format::Markdown;
                table::write(out, &frame.title, &df, frame.transposed, markdown, style.local_time)?;
            }
            Format::Json => {
                for part in slices(&df) {
                    let mut part = cells::plain_times(part, style.local_time)?;
                    let lost = Column::new_scalar("lost_events".into(), report.lost_events.into(), part.height());
                    part.with_column(lost)?;
                    JsonWriter::new(&mut *out)
                        .with_json_format(JsonFormat::JsonLines)
                        .finish(&mut part)
                        .map_err(polars_io)?;
                }
            }
            Format::Csv => {
                // Frames differ in columns: each starts with its own header line.
                let header: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
                let mut new_header = last_header.as_ref() != Some(&header);
                for part in slices(&df) {
                    let mut part = cells::flat(part, style.local_time)?;
                    CsvWriter::new(&mut *out).include_header(new_header).finish(&mut part).map_err(polars_io)?;
                    new_header = false;
                }
                last_header = Some(header);
            }
        }
    }
    Ok(())
}
