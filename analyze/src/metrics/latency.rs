//! `latency`: connect latency, server handshake time, RTT and application
//! call durations as log2 histograms with exact percentiles.

use polars::prelude::*;

use super::connections;
use super::Ctx;
use crate::frame::{fold_batches, values};
use crate::histogram::summarize;
use crate::output::{Report, Section, Value};

/// Samples of one metric (`call:<probe>` for calls) and key, by (metric, key text).
type Samples = std::collections::HashMap<(String, String), (Vec<Value>, Vec<u64>)>;

/// Samples per row: `metric`, `probe` (calls only), the --by columns, the
/// value `us` and how many samples it stands for, `n`.
fn weighted_samples(metric: &str, probe: Expr, keys: &[&str], us: Expr, n: Expr) -> Vec<Expr> {
    let mut select = vec![lit(metric).alias("metric"), probe.alias("probe")];
    select.extend(keys.iter().map(|c| col(*c)));
    select.push(us.cast(DataType::UInt64).alias("us"));
    select.push(n.cast(DataType::UInt32).alias("n"));
    select
}

/// One sample per row.
fn samples(metric: &str, probe: Expr, keys: &[&str], us: Expr) -> Vec<Expr> {
    weighted_samples(metric, probe, keys, us, lit(1u32))
}

/// connect (SYN_SENT -> ESTABLISHED) or handshake (SYN_RECV -> ESTABLISHED)
/// of each connection whose end lies in the selected range.
fn setup_samples(conns: LazyFrame, ctx: &Ctx, metric: &str, from: &str, to: &str) -> LazyFrame {
    let done = conns.filter(col(to).gt_eq(col(from))).with_column(col(to).alias("ts_ns"));
    let no_probe = lit(Null {}).cast(DataType::String);
    ctx.filters.time_only().apply(done).select(samples(
        metric,
        no_probe,
        &ctx.by.shown(),
        (col(to) - col(from)) / lit(1000),
    ))
}

pub fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let shown = ctx.by.shown();
    let no_probe = || lit(Null {}).cast(DataType::String);

    let events = ctx.events(&connections::scan_columns(ctx))?;
    let conns = connections::plan(connections::state_rows(events, ctx), ctx.by);
    let connect = setup_samples(conns.clone(), ctx, "connect", "syn_sent_ns", "active_est_ns");
    let handshake = setup_samples(conns, ctx, "handshake", "syn_recv_ns", "passive_est_ns");

    // rtt: every srtt change. A row stands for `samples` changes of one
    // socket and second within 1/32 of its srtt_us (one each before version 3).
    let cols = ctx.by.scan_columns(&["ts", "kind", "srtt_us", "samples", "pid", "comm", "lport", "rport"]);
    let rtt =
        ctx.filters.apply(ctx.events(&cols)?.filter(col("kind").eq(lit("rtt")).and(col("srtt_us").is_not_null())));
    let weight = col("samples").cast(DataType::UInt32).fill_null(lit(1u32));
    let rtt = rtt.select(weighted_samples("rtt", no_probe(), &shown, col("srtt_us"), weight));

    // call:<probe>: every finished call's duration. Calls have no ports.
    let cols = ctx.by.scan_columns(&["ts", "kind", "probe", "duration_ns", "pid", "comm"]);
    let finished = col("kind").eq(lit("call")).and(col("duration_ns").is_not_null());
    let calls = ctx.filters.without_ports().apply(ctx.events(&cols)?.filter(finished));
    let calls =
        calls.select(samples("call", col("probe").cast(DataType::String), &shown, col("duration_ns") / lit(1000)));

    // Every sample of each metric and key, gathered batch by batch as the
    // scan produces them; each set is summarized exactly below.
    let all =
        concat([connect, handshake, rtt, calls], UnionArgs { rechunk: false, parallel: true, ..Default::default() })?;
    let mut group = vec![col("metric"), col("probe")];
    group.extend(shown.iter().map(|c| col(*c)));
    let by: Vec<String> = shown.iter().map(|c| c.to_string()).collect();
    let sets = fold_batches(all, Samples::new(), move |sets, batch| {
        let g = batch.lazy().group_by(group.clone()).agg([col("us"), col("n")]).collect()?;
        let keys: Vec<Vec<Value>> = by.iter().map(|c| values(&g, c)).collect::<Result<_, _>>()?;
        let (metrics, probes) = (values(&g, "metric")?, values(&g, "probe")?);
        let (lists, weights) = (g.column("us")?.list()?, g.column("n")?.list()?);
        for i in 0..g.height() {
            let metric = match (&metrics[i], &probes[i]) {
                (_, Value::Str(p)) => format!("call:{p}"),
                (Value::Str(m), _) => m.clone(),
                _ => continue,
            };
            let key: Vec<Value> = keys.iter().map(|c| c[i].clone()).collect();
            let id = (metric, format!("{key:?}"));
            let set = sets.entry(id).or_insert_with(|| (key, Vec::new()));
            if let (Some(us), Some(n)) = (lists.get_as_series(i), weights.get_as_series(i)) {
                for (us, n) in us.u64()?.into_no_null_iter().zip(n.u32()?.into_no_null_iter()) {
                    set.1.extend(std::iter::repeat_n(us, n as usize));
                }
            }
        }
        Ok(())
    })?;
    let mut entries = Vec::with_capacity(sets.len());
    for ((metric, id), (key, us)) in sets {
        if let Some(summary) = summarize(us) {
            entries.push((metric, id, key, summary));
        }
    }
    // connect, handshake, rtt, then the calls; within a metric, by key.
    let order = |m: &str| ["connect", "handshake", "rtt"].iter().position(|x| *x == m).unwrap_or(9);
    entries.sort_by(|a, b| order(&a.0).cmp(&order(&b.0)).then(a.1.cmp(&b.1)).then(a.0.cmp(&b.0)));

    let mut columns = vec!["metric".to_string()];
    columns.extend(shown.iter().map(|s| s.to_string()));
    columns.extend(["count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "buckets"].map(String::from));
    let mut rows = Vec::new();
    for (metric, _, key, s) in entries {
        let mut row = vec![Value::from(metric)];
        row.extend(key);
        row.extend([s.count, s.p50, s.p90, s.p99, s.p999, s.max].map(Value::from));
        row.push(Value::Buckets(s.buckets));
        rows.push(row);
    }
    Ok(Report {
        sections: vec![Section {
            title: format!("Latency by {} (microseconds)", ctx.by_label()),
            columns,
            rows,
            generated: None,
        }],
        ..Default::default()
    })
}
