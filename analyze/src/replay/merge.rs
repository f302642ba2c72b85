//! Events in time order across segments and hosts, with memory bounded by
//! what overlaps in time, not by the trace.
//!
//! A segment's rows are grouped by kind within each batch the capture
//! wrote, and aggregate rows (RTT counts, `--data`) carry the start of an
//! interval already past, so no file is in time order. The unit of reading
//! is a row group (at most 2^20 rows): its `ts` range comes from the
//! footer's statistics, a unit is read (and its time order computed) when
//! the merge reaches its first event, and its rows are given out, gathered
//! a chunk at a time, once every unit that could hold an earlier one has
//! been read.

use std::path::Path;

use anyhow::Result;
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
    let groups = crate::input::row_group_times(path)?;
    if groups.iter().any(|(_, range)| range.is_none()) {
        let rows = groups.iter().map(|(rows, _)| rows).sum();
        return Ok(vec![Unit { seg: seg_index, offset: 0, rows, min_ts: i64::MIN, max_ts: i64::MAX }]);
    }
    let mut units = Vec::new();
    let mut offset = 0;
    for (rows, range) in groups {
        let (min_ts, max_ts) = range.unwrap_or((i64::MIN, i64::MAX));
        if rows > 0 {
            units.push(Unit { seg: seg_index, offset, rows, min_ts, max_ts });
        }
        offset += rows;
    }
    Ok(units)
}

/// Every unit of the segments ([`Merge::new`] puts them in the order their first events come).
pub fn units(segments: &[SegmentInfo]) -> Result<Vec<Unit>> {
    let mut all = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        all.extend(units_of(i, &s.path)?);
    }
    Ok(all)
}

/// Rows given out per unit per chunk, at most (ties aside): a chunk is
/// gathered from its unit, so memory holds the units and one chunk.
const CHUNK: usize = 1 << 16;

/// A unit read: its rows as read, and their order by time.
struct Loaded {
    df: DataFrame,
    /// Row numbers in time order (ties in file order).
    order: IdxCa,
    /// `ts_ns` in that order.
    ts: Vec<i64>,
    /// How many of `order` have been given out.
    pos: usize,
}

impl Loaded {
    fn new(df: DataFrame) -> Result<Loaded> {
        let ts_col = df.column("ts_ns")?.i64()?.rechunk();
        let order = ts_col.arg_sort(SortOptions::default().with_maintain_order(true));
        let raw = ts_col.cont_slice()?;
        let ts = order.into_no_null_iter().map(|i| raw[i as usize]).collect();
        Ok(Loaded { df, order, ts, pos: 0 })
    }

    /// Rows from `pos` up to the first at or after `cut`, gathered in time order.
    fn take_until(&mut self, cut: i64) -> Result<Option<DataFrame>> {
        let end = self.pos + self.ts[self.pos..].partition_point(|&t| t < cut);
        if end == self.pos {
            return Ok(None);
        }
        let rows = self.df.take(&self.order.slice(self.pos as i64, end - self.pos))?;
        self.pos = end;
        Ok(Some(rows))
    }
}

/// The merge: [`Merge::next_chunk`] gives the next events in time order.
pub struct Merge<L> {
    units: Vec<Unit>,
    next: usize,
    loaded: Vec<Loaded>,
    load: L,
}

impl<L: FnMut(&Unit) -> Result<DataFrame>> Merge<L> {
    /// `load` reads one unit: its rows (filtered), in any order.
    pub fn new(mut units: Vec<Unit>, load: L) -> Merge<L> {
        units.sort_by_key(|u| (u.min_ts, u.seg, u.offset));
        Merge { units, next: 0, loaded: Vec::new(), load }
    }

    /// The next rows in time order, one chunk per column; None at the end.
    pub fn next_chunk(&mut self) -> Result<Option<DataFrame>> {
        loop {
            // Rows before the next unit's first event can go: no unit read later holds an earlier one.
            let bound = self.units.get(self.next).map_or(i64::MAX, |u| u.min_ts);
            let ready = self.loaded.iter().any(|u| u.pos < u.ts.len() && u.ts[u.pos] < bound);
            if !ready {
                let Some(unit) = self.units.get(self.next) else { return Ok(None) };
                let df = (self.load)(unit)?;
                self.next += 1;
                if df.height() > 0 {
                    self.loaded.push(Loaded::new(df)?);
                }
                continue;
            }
            // At most CHUNK rows of any one unit: cut where the busiest would pass them.
            let mut cut = bound;
            for u in &self.loaded {
                if let Some(&t) = u.ts.get(u.pos + CHUNK) {
                    cut = cut.min(t);
                }
            }
            let mut parts = Vec::new();
            for attempt in [cut, cut.saturating_add(1)] {
                for u in &mut self.loaded {
                    parts.extend(u.take_until(attempt)?);
                }
                // More than CHUNK rows share one time: take them all.
                if !parts.is_empty() {
                    break;
                }
            }
            self.loaded.retain(|u| u.pos < u.ts.len());
            if parts.len() == 1 {
                return Ok(Some(super::rows::single_chunk(parts.pop().expect("one"))));
            }
            let mut all = parts.remove(0);
            for p in &parts {
                all.vstack_mut(p)?;
            }
            let sorted = all.sort(["ts_ns"], SortMultipleOptions::default().with_maintain_order(true))?;
            return Ok(Some(super::rows::single_chunk(sorted)));
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
