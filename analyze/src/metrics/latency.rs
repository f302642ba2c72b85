//! `latency`: connect latency, server handshake time, RTT and application
//! call durations as log2 histograms with exact percentiles.

use polars::prelude::*;

use super::{connections, distribution, Ctx};
use crate::output::{collect, Frame, Report};

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
fn one_each(metric: &str, probe: Expr, keys: &[&str], us: Expr) -> Vec<Expr> {
    weighted_samples(metric, probe, keys, us, lit(1u32))
}

/// connect (SYN_SENT -> ESTABLISHED) or handshake (SYN_RECV -> ESTABLISHED)
/// of each connection whose end lies in the selected range.
fn setup_samples(conns: LazyFrame, ctx: &Ctx, metric: &str, from: &str, to: &str) -> LazyFrame {
    let done = conns.filter(col(to).gt_eq(col(from))).with_column(col(to).alias("ts_ns"));
    let no_probe = lit(Null {}).cast(DataType::String);
    ctx.filters.time_only().apply(done).select(one_each(
        metric,
        no_probe,
        &ctx.by.shown(),
        (col(to) - col(from)) / lit(1000),
    ))
}

/// Every sample of every latency metric: `metric` (connect, handshake, rtt,
/// call:<probe>), the --by columns, the value `us` and how many samples it
/// stands for, `n`.
pub fn samples(ctx: &Ctx) -> anyhow::Result<LazyFrame> {
    let shown = ctx.by.shown();
    let no_probe = || lit(Null {}).cast(DataType::String);

    let events = ctx.events(&connections::scan_columns(ctx))?;
    let conns = connections::plan(connections::state_rows(events, ctx), ctx);
    let connect = setup_samples(conns.clone(), ctx, "connect", "syn_sent_ns", "active_est_ns");
    let handshake = setup_samples(conns, ctx, "handshake", "syn_recv_ns", "passive_est_ns");

    // rtt: every srtt change. A row stands for `samples` changes of one
    // socket and second within 1/32 of its srtt_us (one each before version 3).
    let cols = ctx.by.scan_columns(&["ts", "kind", "srtt_us", "samples", "pid", "comm"]);
    let rtt =
        ctx.filters.apply(ctx.events(&cols)?.filter(col("kind").eq(lit("rtt")).and(col("srtt_us").is_not_null())));
    let weight = col("samples").cast(DataType::UInt32).fill_null(lit(1u32));
    let rtt = rtt.select(weighted_samples("rtt", no_probe(), &shown, col("srtt_us"), weight));

    // call:<probe>: every finished call's duration. Calls have no ports.
    let cols = ctx.by.scan_columns(&["ts", "kind", "probe", "duration_ns", "pid", "comm"]);
    let finished = col("kind").eq(lit("call")).and(col("duration_ns").is_not_null());
    let calls = ctx.filters.without_ports().apply(ctx.events(&cols)?.filter(finished));
    let calls =
        calls.select(one_each("call", col("probe").cast(DataType::String), &shown, col("duration_ns") / lit(1000)));

    let all =
        concat([connect, handshake, rtt, calls], UnionArgs { rechunk: false, parallel: true, ..Default::default() })?;
    let metric =
        when(col("probe").is_not_null()).then(lit("call:") + col("probe")).otherwise(col("metric")).alias("metric");
    let mut select = vec![metric];
    select.extend(shown.iter().map(|c| col(*c)));
    select.extend([col("us"), col("n")]);
    Ok(all.select(select))
}

/// The columns a latency row is keyed by: metric, then --by's.
pub fn key_columns(ctx: &Ctx) -> Vec<&'static str> {
    let mut group = vec!["metric"];
    group.extend(ctx.by.shown());
    group
}

/// connect, handshake, rtt, then the calls by name; within a metric, by key.
fn in_order(ctx: &Ctx, summaries: LazyFrame) -> LazyFrame {
    let order = ["connect", "handshake", "rtt"]
        .iter()
        .enumerate()
        .fold(lit(9u32), |acc, (i, m)| when(col("metric").eq(lit(*m))).then(lit(i as u32)).otherwise(acc));
    let mut by = vec![order];
    by.extend(key_columns(ctx).iter().map(|c| col(*c)));
    summaries.sort_by_exprs(by, SortMultipleOptions::default())
}

/// Host by host. Where the key holds the host, a host's summaries are final
/// and only they are kept; else each host's value counts are added to the
/// sum so far, summarized at the end. (Summarizing all hosts' counts at
/// once took twice one host's memory.) Value counts are collected: the
/// summaries read them more than once.
pub fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let keys = key_columns(ctx);
    let mut done = Vec::new();
    let mut sum: Option<DataFrame> = None;
    for host in ctx.host_by_host() {
        let counts = collect(distribution::value_counts(samples(&host)?, &keys))?;
        if ctx.keyed_by_host() {
            done.push(collect(distribution::summarize(counts.lazy(), &keys))?.lazy());
            continue;
        }
        sum = Some(match sum {
            Some(sum) => collect(distribution::value_counts(super::union(vec![sum.lazy(), counts.lazy()])?, &keys))?,
            None => counts,
        });
    }
    if let Some(sum) = sum {
        done.push(distribution::summarize(sum.lazy(), &keys));
    }
    let all = in_order(ctx, super::union(done)?);
    Ok(Report {
        frames: vec![Frame::new(format!("Latency by {} (microseconds)", ctx.by_label()), all)],
        ..Default::default()
    })
}
