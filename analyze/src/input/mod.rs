//! Finding segments, checking their footers, and scanning them lazily.

pub mod bundle;
pub mod container;
pub mod damage;
pub mod discover;
pub mod manifest;
pub mod segment;

use std::path::PathBuf;

use netrec_schema::ColumnType;
use polars::prelude::*;

pub use segment::{row_group_times, SegmentInfo};

/// A column as this segment holds it, or typed nulls if its version predates it.
fn column_of(seg: &SegmentInfo, name: &str) -> Expr {
    match netrec_schema::column(name).filter(|d| d.since > seg.schema_version).and_then(|d| polars_type(d.ty)) {
        Some(dtype) => lit(Null {}).cast(dtype).alias(name),
        None => col(name),
    }
}

/// The polars type of a schema column type (timestamps are never added later).
fn polars_type(ty: ColumnType) -> Option<DataType> {
    Some(match ty {
        ColumnType::Utf8 => DataType::String,
        ColumnType::Uint16 => DataType::UInt16,
        ColumnType::Uint32 => DataType::UInt32,
        ColumnType::Uint64 => DataType::UInt64,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::TimestampNsUtc => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_column_added_later_has_a_null_type() {
        for c in netrec_schema::definition().columns.iter().filter(|c| c.since > 1) {
            assert!(super::polars_type(c.ty).is_some(), "{} ({:?})", c.name, c.ty);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0}: no such file or directory")]
    NotFound(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: no segments (*.parquet) in this directory")]
    EmptyDir(PathBuf),
    #[error("{0}: matches nothing")]
    NoMatch(String),
    #[error("{0}: bad glob pattern: {1}")]
    BadGlob(String, String),
    #[error("no finished segments to analyze")]
    NoSegments,
    #[error("{0}: not a readable Parquet file ({1})")]
    NotParquet(PathBuf, String),
    #[error("{0}: {1}")]
    NotSegment(PathBuf, String),
    #[error("{0}: written with event schema version {1}, this netrec-analyze reads versions up to {2}: upgrade netrec-analyze")]
    NewerSchema(PathBuf, u32, u32),
    #[error("{0}: does not match its capture's manifest ({1}): damaged in transit? Copy it again (netrec-analyze validate checks a whole trace)")]
    Checksum(PathBuf, String),
    #[error("{0}: {1}")]
    BadManifest(PathBuf, String),
    #[error("{0}: not a readable netrec bundle ({1})")]
    BadBundle(PathBuf, String),
}

/// The segments of one analysis, checked against their manifests, footers read.
#[derive(Debug)]
pub struct Trace {
    pub segments: Vec<SegmentInfo>,
    pub skipped_in_progress: Vec<PathBuf>,
    /// Bundles unpacked for this analysis, removed with it.
    pub unpacked: Vec<tempfile::TempDir>,
}

impl Trace {
    pub fn open(inputs: &[PathBuf]) -> Result<Trace, InputError> {
        let found = discover::discover(inputs)?;
        manifest::verify(&found.segments)?;
        let segments = found.segments.iter().map(|p| segment::read(p)).collect::<Result<Vec<_>, _>>()?;
        Ok(Trace { segments, skipped_in_progress: found.skipped_in_progress, unpacked: found.unpacked })
    }

    /// Earliest segment start: the origin of relative --from/--to offsets.
    pub fn start_ns(&self) -> i64 {
        self.segments.iter().map(|s| s.start.timestamp_nanos_opt().unwrap_or(0)).min().unwrap_or(0)
    }

    /// Every event, with `host` and `capture_id` columns added from each
    /// segment's metadata and `ts_ns` (ns since the epoch, UTC). Columns
    /// newer than a segment's schema version read as nulls.
    ///
    /// Segments of one capture and schema version are one multi-file scan:
    /// polars then reads a bounded number of them at a time. A union of one
    /// scan per segment decoded them all at once (memory grew with the
    /// number of segments: 2 GiB over 42 segments).
    pub fn events(&self, columns: &[&str]) -> PolarsResult<LazyFrame> {
        events_of(&self.segments, columns)
    }

    /// Whether the segments may hold rows of `kind`: false only when every
    /// footer counts its rows by kind and none counts one of these.
    pub fn may_have(&self, kind: &str) -> bool {
        self.segments.iter().any(|s| s.events_by_kind.is_empty() || s.events_by_kind.get(kind).is_some_and(|n| *n > 0))
    }

    /// Whether every segment is of one capture on one host: a socket id
    /// alone then names a connection.
    pub fn one_capture(&self) -> bool {
        self.segments.windows(2).all(|w| (&w[0].host, &w[0].capture_id) == (&w[1].host, &w[1].capture_id))
    }
}

/// [`Trace::events`] of some of its segments.
pub fn events_of(segments: &[SegmentInfo], columns: &[&str]) -> PolarsResult<LazyFrame> {
    let mut groups: Vec<(&SegmentInfo, Vec<PlRefPath>)> = Vec::new();
    for seg in segments {
        let path = PlRefPath::new(seg.path.to_string_lossy().as_ref());
        let same = |g: &SegmentInfo| {
            (g.host.as_str(), g.capture_id.as_str(), g.schema_version)
                == (seg.host.as_str(), seg.capture_id.as_str(), seg.schema_version)
        };
        match groups.iter_mut().find(|(g, _)| same(g)) {
            Some((_, paths)) => paths.push(path),
            None => groups.push((seg, vec![path])),
        }
    }
    let mut frames = Vec::with_capacity(groups.len());
    for (seg, paths) in groups {
        let args = ScanArgsParquet { rechunk: false, cache: false, ..Default::default() };
        let lf = LazyFrame::scan_parquet_files(paths.into(), args)?;
        let cols: Vec<Expr> = columns
            .iter()
            .map(|c| container::column(c, column_of(seg, "cgroup")).unwrap_or_else(|| column_of(seg, c)))
            .collect();
        frames.push(
            lf.select(cols)
                .with_columns([lit(seg.host.clone()).alias("host"), lit(seg.capture_id.clone()).alias("capture_id")]),
        );
    }
    let all = concat(frames, UnionArgs { rechunk: false, parallel: true, ..Default::default() })?;
    Ok(all.with_column(col("ts").cast(DataType::Int64).alias("ts_ns")))
}
