//! `churn`: connections opened, closed, failed, reset and short-lived, per interval.

use polars::prelude::*;

use super::{as_time, connections, distribution, Ctx};
use crate::output::{collect, Frame, Report, TIME};

pub struct ChurnArgs {
    pub interval_ns: i64,
    pub short_ns: i64,
}

/// Transitions into CLOSE that mean an abort (RST sent or received), not a FIN exchange.
pub const ABORT_FROM: [&str; 4] = ["ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT1", "SYN_RECV"];
/// Transitions into CLOSE of a connection that had been established.
pub const CLOSED_FROM: [&str; 7] =
    ["ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT", "LAST_ACK", "CLOSING", "TIME_WAIT"];

fn one_of(column: &str, states: &[&str]) -> Expr {
    states.iter().map(|s| col(column).eq(lit(*s))).reduce(|a, b| a.or(b)).expect("non-empty")
}

/// Per interval and key: connections opened (actively, passively), closed,
/// failed, reset and short-lived. Counts come straight from the transitions;
/// short-lived ones from each connection's lifetime, closed in the interval.
pub fn per_interval(ctx: &Ctx, args: &ChurnArgs, state: LazyFrame, conns: LazyFrame) -> anyhow::Result<LazyFrame> {
    let keys = ctx.by.keys();
    let shown = ctx.by.shown();
    let count = |cond: Expr, name: &str| cond.cast(DataType::UInt64).sum().alias(name);
    let old = |s: &str| col("old_state").eq(lit(s));
    let new = |s: &str| col("new_state").eq(lit(s));
    let mut group: Vec<&str> = vec![TIME];
    group.extend(keys.iter().copied());
    let mut aggs = vec![
        count(old("SYN_SENT").and(new("ESTABLISHED")), "opened_active"),
        count(old("SYN_RECV").and(new("ESTABLISHED")), "opened_passive"),
        count(new("CLOSE").and(one_of("old_state", &CLOSED_FROM)), "closed"),
        count(old("SYN_SENT").and(new("CLOSE")), "failed"),
        count(new("CLOSE").and(one_of("old_state", &ABORT_FROM)), "resets"),
    ];
    aggs.extend(ctx.by.descriptions());
    // state_rows applied every other filter already.
    let counts = ctx
        .filters
        .time_only()
        .apply(state)
        .with_column(super::interval_start(args.interval_ns))
        .group_by(group.iter().map(|c| col(*c)).collect::<Vec<_>>())
        .agg(aggs);

    let mut short_aggs = vec![len().cast(DataType::UInt64).alias("short_lived")];
    short_aggs.extend(ctx.by.descriptions());
    let short = closed_in_range(ctx, conns)
        .filter(col("life_ns").lt(lit(args.short_ns)))
        .with_column(super::interval_start(args.interval_ns))
        .group_by(group.iter().map(|c| col(*c)).collect::<Vec<_>>())
        .agg(short_aggs);

    // A key's descriptions from whichever side has the row.
    let described: Vec<&str> = shown.iter().copied().filter(|c| !keys.contains(c)).collect();
    let suffixed = |c: &str| format!("{c}_short");
    let joined = counts.join(
        short,
        group.iter().map(|c| col(*c)).collect::<Vec<_>>(),
        group.iter().map(|c| col(*c)).collect::<Vec<_>>(),
        JoinArgs {
            nulls_equal: true,
            ..JoinArgs::new(JoinType::Full)
                .with_coalesce(JoinCoalesce::CoalesceColumns)
                .with_suffix(Some("_short".into()))
        },
    );
    let mut select = vec![as_time()];
    select.extend(shown.iter().map(|c| {
        if described.contains(c) {
            coalesce(&[col(*c), col(suffixed(c))]).alias(*c)
        } else {
            col(*c)
        }
    }));
    select.extend(COUNTERS.iter().map(|c| col(*c).fill_null(lit(0u64))));
    let mut order: Vec<Expr> = vec![col(TIME)];
    order.extend(shown.iter().map(|c| col(*c)));
    Ok(joined.select(select).sort_by_exprs(order, SortMultipleOptions::default()))
}

/// The per-interval counters, in their column order.
pub const COUNTERS: [&str; 6] = ["opened_active", "opened_passive", "closed", "failed", "resets", "short_lived"];

/// One row per connection ever established: its --by columns, close_ns
/// (null while open) and life_ns, open to close.
pub fn connections(ctx: &Ctx, state: LazyFrame) -> anyhow::Result<DataFrame> {
    let est = |c: &str| col(c).is_not_null();
    let start = coalesce(&[col("syn_sent_ns"), col("syn_recv_ns"), col("active_est_ns"), col("passive_est_ns")]);
    let mut select: Vec<Expr> = ctx.by.shown().iter().map(|c| col(*c)).collect();
    select.extend([col("close_ns"), (col("close_ns") - start).alias("life_ns")]);
    let established = connections::plan(state, ctx).filter(est("active_est_ns").or(est("passive_est_ns")));
    Ok(collect(established.select(select))?)
}

/// The connections that closed in the selected range, with ts_ns their close.
fn closed_in_range(ctx: &Ctx, conns: LazyFrame) -> LazyFrame {
    let closed = conns.filter(col("close_ns").is_not_null()).with_column(col("close_ns").alias("ts_ns"));
    ctx.filters.time_only().apply(closed)
}

/// Lifetimes of the connections closed in range, open to close, as value
/// counts (metric, us, n), with `still_open`: those open at the end.
fn lifetime_counts(ctx: &Ctx, conns: LazyFrame) -> anyhow::Result<(LazyFrame, u64)> {
    let samples = closed_in_range(ctx, conns.clone()).select([
        lit("lifetime").alias("metric"),
        (col("life_ns") / lit(1000)).cast(DataType::UInt64).alias("us"),
        lit(1u32).alias("n"),
    ]);
    let counts = collect(distribution::value_counts(samples, &["metric"]))?;
    let open = collect(conns.filter(col("close_ns").is_null()).select([len().cast(DataType::UInt64)]))?;
    let open = open.columns()[0].u64()?.get(0).unwrap_or(0);
    Ok((counts.lazy(), open))
}

/// The lifetime summary of each host's value counts, with the count of
/// connections still open.
fn lifetimes(mut counts: Vec<LazyFrame>, still_open: u64) -> anyhow::Result<LazyFrame> {
    let counts = if counts.len() == 1 {
        // One host's are already one row per value (counting them again
        // took 0.07–0.15 s of churn's 2 s at 50 M events).
        counts.remove(0)
    } else {
        let all = super::union(counts)?;
        distribution::value_counts(all, &["metric"])
    };
    let summary = distribution::summarize(counts, &["metric"]);
    let open = df!("metric" => ["lifetime"], "still_open" => [still_open]).expect("one row").lazy();
    let mut select = vec![col("metric"), col("count").fill_null(lit(0u64)), col("still_open")];
    select.extend(distribution::PERCENTILES.iter().map(|(_, c)| col(*c)));
    select.extend([col("max_us"), col("buckets")]);
    Ok(super::join(open, summary, &["metric"], JoinType::Left).select(select))
}

/// Per-interval rows of several hosts as one: a key without the host may
/// have rows on several, added up.
fn merged(ctx: &Ctx, mut parts: Vec<LazyFrame>) -> anyhow::Result<LazyFrame> {
    if parts.len() == 1 {
        // One host: per_interval's rows are already one per key and in order.
        return Ok(parts.remove(0));
    }
    let all = super::union(parts)?;
    let shown = ctx.by.shown();
    let mut order: Vec<Expr> = vec![col(TIME)];
    order.extend(shown.iter().map(|c| col(*c)));
    if ctx.keyed_by_host() {
        return Ok(all.sort_by_exprs(order, SortMultipleOptions::default()));
    }
    let mut group = vec![col(TIME)];
    group.extend(ctx.by.keys().iter().map(|c| col(*c)));
    let mut aggs: Vec<Expr> = COUNTERS.iter().map(|c| col(*c).sum()).collect();
    aggs.extend(ctx.by.descriptions());
    let mut select = vec![col(TIME)];
    select.extend(shown.iter().map(|c| col(*c)));
    select.extend(COUNTERS.iter().map(|c| col(*c)));
    Ok(all.group_by(group).agg(aggs).select(select).sort_by_exprs(order, SortMultipleOptions::default()))
}

/// The state rows of the selected connections, read once: the per-interval
/// counts and the connections are both made of them (two scans of a big
/// trace cost more than holding its state rows).
pub fn state(ctx: &Ctx) -> anyhow::Result<LazyFrame> {
    let events = ctx.events(&connections::scan_columns(ctx))?;
    Ok(collect(connections::state_rows(events, ctx))?.lazy())
}

pub fn run(ctx: &Ctx, args: &ChurnArgs) -> anyhow::Result<Report> {
    let (mut rows, mut lifetime, mut still_open) = (Vec::new(), Vec::new(), 0);
    for host in ctx.host_by_host() {
        let state = state(&host)?;
        let conns = connections(&host, state.clone())?.lazy();
        // Collected here, on the streaming engine: the counts group every state row.
        rows.push(collect(per_interval(&host, args, state, conns.clone())?)?.lazy());
        let (counts, open) = lifetime_counts(&host, conns)?;
        lifetime.push(counts);
        still_open += open;
    }
    let rows = collect(merged(ctx, rows)?)?;
    let short = humantime::format_duration(std::time::Duration::from_nanos(args.short_ns as u64));
    let title = format!(
        "Connections per {} by {} (short-lived: under {short})",
        ctx.interval_label(args.interval_ns),
        ctx.by_label()
    );
    Ok(Report {
        frames: vec![
            Frame::new(title, rows.lazy()),
            Frame::new("Lifetime of closed connections (open to close)", lifetimes(lifetime, still_open)?),
        ],
        ..Default::default()
    })
}
