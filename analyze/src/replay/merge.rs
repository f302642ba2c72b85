//! Events in time order across segments and hosts, with memory bounded by
//! what overlaps in time, not by the trace.
//!
//! A segment's rows are grouped by kind within each batch the capture
//! wrote, and aggregate rows (RTT counts, `--data`) carry the start of an
//! interval already past, so no file is in time order. The unit of reading
//! is a row group (at most 2^20 rows): its `ts` range comes from the
//! footer's statistics, a unit is read and sorted when the merge reaches
//! its first event, and rows are released once every unit that could hold
//! an earlier one has been read.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::statistics::Statistics;
use polars::prelude::*;

use crate::input::SegmentInfo;

/// One row group of one segment.
#[derive(Debug, Clone)]
pub struct Unit {
    pub seg: usize,
    pub offset: usize,
    pub rows: usize,
    /// Its events' `ts` range, ns since the epoch (inclusive).
    pub min_ts: i64,
    pub max_ts: i64,
}

/// The row groups of a segment, from its footer. Without `ts` statistics
/// (not written by netrec-capture), the whole segment is one unit spanning
/// all time: correct, but read at once.
pub fn units_of(seg_index: usize, path: &Path) -> Result<Vec<Unit>> {
    let file = File::open(path).with_context(|| path.display().to_string())?;
    let reader = SerializedFileReader::new(file).with_context(|| format!("{}: footer", path.display()))?;
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let ts = (0..schema.num_columns()).find(|&i| schema.column(i).name() == "ts");
    let mut units = Vec::new();
    let mut offset = 0;
    for rg in meta.row_groups() {
        let rows = rg.num_rows().max(0) as usize;
        let range = ts.and_then(|c| match rg.column(c).statistics() {
            Some(Statistics::Int64(s)) => Some((*s.min_opt()?, *s.max_opt()?)),
            _ => None,
        });
        let Some((min_ts, max_ts)) = range else {
            let rows = meta.file_metadata().num_rows().max(0) as usize;
            return Ok(vec![Unit { seg: seg_index, offset: 0, rows, min_ts: i64::MIN, max_ts: i64::MAX }]);
        };
        if rows > 0 {
            units.push(Unit { seg: seg_index, offset, rows, min_ts, max_ts });
        }
        offset += rows;
    }
    Ok(units)
}

/// Every unit of the segments, in the order their first events come.
pub fn units(segments: &[SegmentInfo]) -> Result<Vec<Unit>> {
    let mut all = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        all.extend(units_of(i, &s.path)?);
    }
    all.sort_by_key(|u| (u.min_ts, u.seg, u.offset));
    Ok(all)
}

/// The merge: [`Merge::next_chunk`] gives the next events in time order.
pub struct Merge<L> {
    units: Vec<Unit>,
    next: usize,
    /// Units read and sorted, and how far each has been given out.
    loaded: Vec<(DataFrame, usize)>,
    load: L,
}

impl<L: FnMut(&Unit) -> Result<DataFrame>> Merge<L> {
    /// `load` reads one unit: its rows (filtered), sorted by `ts_ns`.
    pub fn new(mut units: Vec<Unit>, load: L) -> Merge<L> {
        units.sort_by_key(|u| (u.min_ts, u.seg, u.offset));
        Merge { units, next: 0, loaded: Vec::new(), load }
    }

    /// The next rows in time order, one chunk per column; None at the end.
    pub fn next_chunk(&mut self) -> Result<Option<DataFrame>> {
        loop {
            // Rows before the next unit's first event can go: no unit read later holds an earlier one.
            let bound = self.units.get(self.next).map_or(i64::MAX, |u| u.min_ts);
            let mut parts = Vec::new();
            for (df, pos) in &mut self.loaded {
                let ts = df.column("ts_ns")?.i64()?.cont_slice()?;
                let end = if bound == i64::MAX { ts.len() } else { *pos + ts[*pos..].partition_point(|&t| t < bound) };
                if end > *pos {
                    parts.push(df.slice(*pos as i64, end - *pos));
                    *pos = end;
                }
            }
            self.loaded.retain(|(df, pos)| *pos < df.height());
            if let Some(unit) = self.units.get(self.next) {
                let df = (self.load)(unit)?;
                self.next += 1;
                if df.height() > 0 {
                    self.loaded.push((super::rows::single_chunk(df), 0));
                }
            }
            match parts.len() {
                0 if self.loaded.is_empty() && self.next == self.units.len() => return Ok(None),
                0 => continue,
                1 => return Ok(parts.pop()),
                _ => {
                    let mut all = parts.remove(0);
                    for p in &parts {
                        all.vstack_mut(p)?;
                    }
                    let sorted = all.sort(["ts_ns"], SortMultipleOptions::default().with_maintain_order(true))?;
                    return Ok(Some(super::rows::single_chunk(sorted)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seg: usize, min_ts: i64, max_ts: i64) -> Unit {
        Unit { seg, offset: 0, rows: 0, min_ts, max_ts }
    }

    /// Three units whose times interleave (two hosts, and one unit that
    /// starts with a late aggregate row): the output is in time order, each
    /// row once, ties kept in unit order.
    #[test]
    fn interleaved_units_come_out_in_time_order() {
        let data: Vec<Vec<i64>> = vec![vec![1, 4, 4, 9], vec![2, 3, 4, 10, 11], vec![0, 5, 6]];
        let units: Vec<Unit> = data.iter().enumerate().map(|(i, d)| unit(i, d[0], *d.last().unwrap())).collect();
        let mut merge = Merge::new(units, |u: &Unit| {
            let ts = &data[u.seg];
            Ok(df!("ts_ns" => ts.clone(), "unit" => vec![u.seg as u32; ts.len()])?)
        });
        let mut got = Vec::new();
        let mut chunks = 0;
        while let Some(df) = merge.next_chunk().unwrap() {
            chunks += 1;
            let ts = df.column("ts_ns").unwrap().i64().unwrap().into_no_null_iter();
            let unit = df.column("unit").unwrap().u32().unwrap().into_no_null_iter();
            got.extend(ts.zip(unit));
        }
        assert_eq!(
            got,
            [(0, 2), (1, 0), (2, 1), (3, 1), (4, 0), (4, 0), (4, 1), (5, 2), (6, 2), (9, 0), (10, 1), (11, 1)]
        );
        assert!(chunks >= 2, "{chunks}");
    }
}
