//! Every quantity of a trace per key in one long shape (key columns,
//! `metric`, `value`): what `diff` compares and `check` bounds. Built from
//! the same plans as netio, churn, calls and latency.

use polars::prelude::*;

use crate::metrics::by::By;
use crate::metrics::churn::{self, ChurnArgs, COUNTERS};
use crate::metrics::{as_time, calls, distribution, latency, netio, Ctx};
use crate::output::{collect, TIME};

/// The columns a key is made of.
pub fn keys(by: By) -> Vec<&'static str> {
    match by {
        By::Probe => vec!["probe"],
        other => other.keys(),
    }
}

/// Counters that count events (connections, calls): their noise is a count's.
pub fn counts_events(metric: &str) -> bool {
    COUNTERS.contains(&metric) || metric == "opened" || metric.starts_with("calls")
}

/// Quantities measured in bytes.
pub fn counts_bytes(metric: &str) -> bool {
    metric.starts_with("sent_bytes") || metric.starts_with("recv_bytes")
}

/// Latency metrics (connect, handshake, rtt, call:<probe>, call).
pub fn is_latency(metric: &str) -> bool {
    matches!(metric, "connect" | "handshake" | "rtt" | "call") || metric.starts_with("call:")
}

/// `wide`'s `metrics` columns as (time, keys, metric, value) rows, summed per key.
fn long(wide: LazyFrame, keys: &[&str], metrics: &[&str]) -> LazyFrame {
    let parts: Vec<LazyFrame> = metrics
        .iter()
        .map(|m| {
            let mut select = vec![col(TIME).cast(DataType::Datetime(TimeUnit::Nanoseconds, None))];
            select.extend(keys.iter().map(|k| col(*k)));
            select.push(lit(*m).alias("metric"));
            select.push(col(*m).cast(DataType::UInt64).alias("value"));
            wide.clone().select(select)
        })
        .collect();
    let mut group = vec![col(TIME)];
    group.extend(keys.iter().map(|k| col(*k)));
    group.push(col("metric"));
    concat(parts, UnionArgs::default()).expect("frames of one shape").group_by(group).agg([col("value").sum()])
}

/// Per interval and key: sent_bytes, recv_bytes, opened_active,
/// opened_passive, closed, failed, resets, short_lived, and calls:<probe>
/// (calls, keyed by probe, for --by probe).
pub fn per_interval(ctx: &Ctx, interval_ns: i64, short_ns: i64) -> anyhow::Result<LazyFrame> {
    let keys = keys(ctx.by);
    let mut parts = Vec::new();
    if ctx.by != By::Probe {
        let io = netio::per_interval(ctx, interval_ns)?.lazy().with_column(as_time());
        parts.push(long(io, &keys, &["sent_bytes", "recv_bytes"]));
        let args = ChurnArgs { interval_ns, short_ns };
        let state = churn::state(ctx)?;
        let conns = churn::connections(ctx, state.clone())?.lazy();
        parts.push(long(churn::per_interval(ctx, &args, state, conns)?, &keys, &COUNTERS));
    }
    if matches!(ctx.by, By::Probe | By::Comm | By::Host) {
        let made = collect(calls::per_interval(ctx, interval_ns)?)?.lazy();
        let metric = if ctx.by == By::Probe { lit("calls") } else { lit("calls:") + col("probe") };
        let mut select = vec![col(TIME)];
        select.extend(keys.iter().map(|k| col(*k)));
        select.extend([metric.alias("metric"), col("calls").cast(DataType::UInt64).alias("value")]);
        parts.push(made.select(select));
    }
    Ok(concat(parts, UnionArgs::default())?)
}

/// Over the whole range, per key and metric; `opened` adds both directions.
pub fn totals(per_interval: LazyFrame, keys: &[&str]) -> LazyFrame {
    let mut group: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    group.push(col("metric"));
    let sums = per_interval.group_by(group.clone()).agg([col("value").sum()]);
    let opened = sums
        .clone()
        .filter(col("metric").eq(lit("opened_active")).or(col("metric").eq(lit("opened_passive"))))
        .with_column(lit("opened").alias("metric"))
        .group_by(group)
        .agg([col("value").sum()]);
    let mut select: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    select.extend([col("metric"), col("value").cast(DataType::Float64)]);
    concat([sums.select(select.clone()), opened.select(select)], UnionArgs::default()).expect("one shape")
}

/// Every total per call of `probe` by the same key: `<metric> per <probe>`.
/// Keys that made no such call have none.
pub fn per_call(totals: LazyFrame, keys: &[&str], probe: &str) -> LazyFrame {
    let calls_metric = if keys == ["probe"] { "calls".to_string() } else { format!("calls:{probe}") };
    let mut select: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    select.push(col("value").alias("per_calls"));
    let denominators = totals
        .clone()
        .filter(col("metric").eq(lit(calls_metric.clone())).and(col("value").gt(lit(0.0))))
        .select(select);
    let numerators = totals.filter(col("metric").neq(lit(calls_metric)));
    let mut out: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    out.push((col("metric") + lit(format!(" per {probe}"))).alias("metric"));
    out.push((col("value") / col("per_calls")).alias("value"));
    out.push(col("per_calls"));
    crate::metrics::join(numerators, denominators, keys, JoinType::Inner).select(out)
}

/// Latency samples per key: keys, metric, us, n.
pub fn latency_samples(ctx: &Ctx) -> anyhow::Result<LazyFrame> {
    if ctx.by != By::Probe {
        return latency::samples(ctx);
    }
    // By probe: each call's duration, under the probe's own key.
    let events = ctx.events(&["ts", "kind", "probe", "duration_ns", "pid", "comm"])?;
    let finished = col("kind").eq(lit("call")).and(col("duration_ns").is_not_null());
    Ok(ctx.filters.without_ports().apply(events.filter(finished)).select([
        col("probe").cast(DataType::String),
        lit("call").alias("metric"),
        (col("duration_ns") / lit(1000)).cast(DataType::UInt64).alias("us"),
        lit(1u32).alias("n"),
    ]))
}

/// Latency summaries per key and metric: count, p50_us … max_us, buckets.
pub fn latency_summaries(counts: LazyFrame, keys: &[&str]) -> LazyFrame {
    let mut group: Vec<&str> = keys.to_vec();
    group.push("metric");
    distribution::summarize(counts, &group)
}
