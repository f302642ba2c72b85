//! `netio`: bytes sent and consumed per interval, per key.

use std::collections::HashMap;

use polars::prelude::*;

use super::Ctx;
use crate::frame::{collect, i64s, u64s, values};
use crate::output::{Report, Section, Value};

/// A key's shown values with its total sent and consumed bytes.
type KeyTotals = (Vec<Value>, u64, u64);

pub struct NetioArgs {
    pub interval_ns: i64,
    pub top: Option<usize>,
}

/// Segments aggregated per pass. Polars' streaming group-by keeps every group
/// it evicts from its hot table, so over a whole large trace its memory grew
/// with the rows (560 MiB for 50 M events); partial sums of a few segments at
/// a time, merged at the end, keep it to what a few segments need.
const SEGMENTS_PER_PASS: usize = 4;

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
    let mut aggs = sums.to_vec();
    aggs.extend(ctx.by.descriptions());
    rows.group_by(group).agg(aggs)
}

pub fn run(ctx: &Ctx, args: &NetioArgs) -> anyhow::Result<Report> {
    let cols = ctx.by.scan_columns(&["ts", "kind", "bytes", "pid", "comm", "lport", "rport"]);
    let mut parts = Vec::new();
    for segments in ctx.trace.segments.chunks(SEGMENTS_PER_PASS) {
        parts.push(collect(plan(crate::input::events_of(segments, &cols)?, ctx, args.interval_ns))?.lazy());
    }
    // An interval that straddles two passes is in both: merge the partial sums.
    let all = concat(parts, UnionArgs { rechunk: false, parallel: false, ..Default::default() })?;
    let merged = aggregate(all, ctx, [col("sent_bytes").sum(), col("recv_bytes").sum()]);
    let df = collect(merged.sort(["second"], SortMultipleOptions::default()))?;

    let shown = ctx.by.shown();
    let key_values: Vec<Vec<Value>> = shown.iter().map(|c| values(&df, c)).collect::<Result<_, _>>()?;
    let seconds = i64s(&df, "second")?;
    let sent = u64s(&df, "sent_bytes")?;
    let recv = u64s(&df, "recv_bytes")?;
    let key_of = |i: usize| -> Vec<Value> { key_values.iter().map(|col| col[i].clone()).collect() };
    let key_ids: Vec<String> = (0..df.height()).map(|i| format!("{:?}", key_of(i))).collect();

    // Totals per key decide --top, and make the totals section.
    let mut totals: HashMap<&String, KeyTotals> = HashMap::new();
    for (i, id) in key_ids.iter().enumerate() {
        let t = totals.entry(id).or_insert_with(|| (key_of(i), 0, 0));
        t.1 += sent[i].unwrap_or(0);
        t.2 += recv[i].unwrap_or(0);
    }
    let mut ranked: Vec<(&String, KeyTotals)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| (b.1 .1 + b.1 .2).cmp(&(a.1 .1 + a.1 .2)).then_with(|| a.0.cmp(b.0)));
    if let Some(n) = args.top {
        ranked.truncate(n);
    }
    let kept: std::collections::HashSet<&String> = ranked.iter().map(|(k, _)| *k).collect();

    let mut columns = vec!["second".to_string()];
    columns.extend(shown.iter().map(|s| s.to_string()));
    columns.extend(["sent_bytes".to_string(), "recv_bytes".to_string()]);
    let mut rows = Vec::new();
    let mut order: Vec<usize> = (0..df.height()).collect();
    // Within a second, the busiest first.
    order.sort_by(|&a, &b| {
        let busy = |i: usize| std::cmp::Reverse(sent[i].unwrap_or(0) + recv[i].unwrap_or(0));
        (seconds[a], busy(a), &key_ids[a]).cmp(&(seconds[b], busy(b), &key_ids[b]))
    });
    for i in order {
        if !kept.contains(&key_ids[i]) {
            continue;
        }
        let mut row = vec![Value::Time(seconds[i].unwrap_or(0))];
        row.extend(key_of(i));
        row.push(sent[i].into());
        row.push(recv[i].into());
        rows.push(row);
    }

    let mut total_cols = vec!["total".to_string()];
    total_cols.extend(shown.iter().map(|s| s.to_string()));
    total_cols.extend(["sent_bytes".to_string(), "recv_bytes".to_string()]);
    let mut total_rows = Vec::new();
    let (mut all_sent, mut all_recv) = (0, 0);
    for (_, (key, s, r)) in &ranked {
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
            Section { title: format!("Bytes sent and consumed per {} by {}", ctx.interval_label(args.interval_ns), ctx.by_label()), columns, rows },
            Section { title: "Totals".into(), columns: total_cols, rows: total_rows },
        ],
        ..Default::default()
    })
}
