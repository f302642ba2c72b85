//! `netio`: bytes sent and consumed per interval, per key.

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::*;

use super::Ctx;
use crate::frame::{collect, i64s, u64s, value_at, value_column};
use crate::output::{Report, RowSource, Section, Value};

/// A key's shown values with its total sent and consumed bytes.
type KeyTotals = (Vec<Value>, u64, u64);

pub struct NetioArgs {
    pub interval_ns: i64,
    pub top: Option<usize>,
}

/// Segments aggregated per pass. Polars' streaming group-by keeps every group
/// it evicts from its hot table, so over a whole large trace its memory grew
/// with the rows (560 MiB for 50 M events); partial sums of a few segments at
/// a time, merged at the end, keep it to what a few segments need. Two per
/// pass peaked at 182 MiB for 10 M events against 251–275 MiB with four, in
/// the same time (/usr/bin/time, two runs each).
const SEGMENTS_PER_PASS: usize = 2;

/// Events -> one row per (interval, key) with sent_bytes and recv_bytes.
fn plan(events: LazyFrame, ctx: &Ctx, interval_ns: i64) -> LazyFrame {
    let is = |k: &str| col("kind").eq(lit(k));
    // Every row is a send or a receive here: what was not sent was consumed
    // (one string comparison per row fewer).
    let sent = when(is("send")).then(col("bytes")).otherwise(lit(0u64)).sum();
    let aggs = [sent.clone().alias("sent_bytes"), (col("bytes").sum() - sent).alias("recv_bytes")];
    let filtered = ctx.filters.apply(events.filter(is("send").or(is("recv"))));
    aggregate(filtered.with_column(super::interval_start(interval_ns)), ctx, aggs)
}

/// Rows grouped by (second, key), with `sums` and the key's descriptions.
fn aggregate(rows: LazyFrame, ctx: &Ctx, sums: [Expr; 2]) -> LazyFrame {
    let mut group: Vec<Expr> = vec![col("second")];
    group.extend(ctx.by.keys().iter().map(|k| col(*k)));
    // TCP and UDP bytes of one key stay apart.
    group.push(col("protocol"));
    let mut aggs = sums.to_vec();
    aggs.extend(ctx.by.descriptions());
    rows.group_by(group).agg(aggs)
}

pub fn run(ctx: &Ctx, args: &NetioArgs) -> anyhow::Result<Report> {
    let cols = ctx.columns(&ctx.by.scan_columns(&["ts", "kind", "bytes", "pid", "comm", "lport", "rport", "protocol"]));
    let mut parts = Vec::new();
    for segments in ctx.trace.segments.chunks(SEGMENTS_PER_PASS) {
        parts.push(collect(plan(crate::input::events_of(segments, &cols)?, ctx, args.interval_ns))?.lazy());
    }
    // An interval that straddles two passes is in both: merge the partial sums.
    let all = concat(parts, UnionArgs { rechunk: false, parallel: false, ..Default::default() })?;
    let merged = aggregate(all, ctx, [col("sent_bytes").sum(), col("recv_bytes").sum()]);
    let df = collect(merged)?;

    // Each row's key (the shown columns) as a small id; totals per key decide
    // --top and make the totals section.
    let mut shown = ctx.by.shown();
    shown.push("protocol");
    let key_cols: Vec<Column> = shown.iter().map(|c| value_column(&df, c)).collect::<Result<_, _>>()?;
    let seconds = i64s(&df, "second")?;
    let sent = u64s(&df, "sent_bytes")?;
    let recv = u64s(&df, "recv_bytes")?;
    let mut ids: HashMap<Vec<Value>, u32> = HashMap::new();
    let mut keys: Vec<KeyTotals> = Vec::new();
    let mut key_of_row = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let key: Vec<Value> = key_cols.iter().map(|c| value_at(c, i)).collect();
        let id = *ids.entry(key).or_insert_with_key(|key| {
            keys.push((key.clone(), 0, 0));
            (keys.len() - 1) as u32
        });
        keys[id as usize].1 += sent[i].unwrap_or(0);
        keys[id as usize].2 += recv[i].unwrap_or(0);
        key_of_row.push(id);
    }
    drop(ids);
    // Busiest first; equal totals in key order.
    let mut ranked: Vec<u32> = (0..keys.len() as u32).collect();
    ranked.sort_by(|&a, &b| {
        let (ka, kb) = (&keys[a as usize], &keys[b as usize]);
        (kb.1 + kb.2).cmp(&(ka.1 + ka.2)).then_with(|| ka.0.cmp(&kb.0))
    });
    if let Some(n) = args.top {
        ranked.truncate(n);
    }
    let mut rank_of_key = vec![u32::MAX; keys.len()];
    for (rank, &id) in ranked.iter().enumerate() {
        rank_of_key[id as usize] = rank as u32;
    }

    // Rows of kept keys by second, the busiest first within a second. They
    // are made as they are written: held as values they were most of the
    // memory on big traces.
    let busy = |i: usize| sent[i].unwrap_or(0) + recv[i].unwrap_or(0);
    let mut order: Vec<u32> =
        (0..df.height() as u32).filter(|&i| rank_of_key[key_of_row[i as usize] as usize] != u32::MAX).collect();
    order.sort_by_key(|&i| {
        let i = i as usize;
        (seconds[i], std::cmp::Reverse(busy(i)), rank_of_key[key_of_row[i] as usize])
    });
    let mut columns = vec!["second".to_string()];
    columns.extend(shown.iter().map(|s| s.to_string()));
    columns.extend(["sent_bytes".to_string(), "recv_bytes".to_string()]);
    let per_interval = RowSource {
        len: order.len(),
        row: Arc::new(move |j| {
            let i = order[j] as usize;
            let mut row = vec![Value::Time(seconds[i].unwrap_or(0))];
            row.extend(key_cols.iter().map(|c| value_at(c, i)));
            row.push(sent[i].into());
            row.push(recv[i].into());
            row
        }),
    };

    let mut total_cols = vec!["total".to_string()];
    total_cols.extend(shown.iter().map(|s| s.to_string()));
    total_cols.extend(["sent_bytes".to_string(), "recv_bytes".to_string()]);
    let mut total_rows = Vec::new();
    let (mut all_sent, mut all_recv) = (0, 0);
    for &id in &ranked {
        let (key, s, r) = &keys[id as usize];
        let mut row = vec![Value::from("key")];
        row.extend(key.clone());
        row.push((*s).into());
        row.push((*r).into());
        total_rows.push(row);
        all_sent += s;
        all_recv += r;
    }
    let mut all = vec![Value::from("all")];
    all.extend(shown.iter().map(|_| Value::Null));
    all.extend([all_sent.into(), all_recv.into()]);
    total_rows.push(all);

    Ok(Report {
        sections: vec![
            Section {
                title: format!(
                    "Bytes sent and consumed per {} by {}",
                    ctx.interval_label(args.interval_ns),
                    ctx.by_label()
                ),
                columns,
                rows: Vec::new(),
                generated: Some(per_interval),
            },
            Section { title: "Totals".into(), columns: total_cols, rows: total_rows, generated: None },
        ],
        warnings: coarser_aggregates(ctx, args.interval_ns),
        ..Default::default()
    })
}

/// Segments whose aggregates are coarser than, or misaligned with, the
/// requested interval: their bytes land in the first interval of each.
fn coarser_aggregates(ctx: &Ctx, interval_ns: i64) -> Vec<String> {
    let every = |ns: u64| humantime::format_duration(std::time::Duration::from_nanos(ns)).to_string();
    // The first such segment says it for all.
    ctx.trace
        .segments
        .iter()
        .find_map(|s| {
            let d = s.data.as_ref().filter(|d| d.has_aggregates())?;
            (d.interval_ns > 0 && interval_ns as u64 % d.interval_ns != 0).then(|| {
                format!(
                    "{}: send/recv are aggregates per {}; per {} each one's bytes fall in the interval where it starts",
                    s.path.display(),
                    every(d.interval_ns),
                    every(interval_ns as u64)
                )
            })
        })
        .into_iter()
        .collect()
}
