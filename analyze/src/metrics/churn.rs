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
    let established = connections::plan(state, ctx.by).filter(est("active_est_ns").or(est("passive_est_ns")));
    Ok(collect(established.select(select))?)
}

/// The connections that closed in the selected range, with ts_ns their close.
fn closed_in_range(ctx: &Ctx, conns: LazyFrame) -> LazyFrame {
    let closed = conns.filter(col("close_ns").is_not_null()).with_column(col("close_ns").alias("ts_ns"));
    ctx.filters.time_only().apply(closed)
}

/// Lifetimes of the connections closed in range, open to close, with the
/// count of those still open at the end.
pub fn lifetimes(ctx: &Ctx, conns: LazyFrame) -> LazyFrame {
    let metric = || lit("lifetime").alias("metric");
    let samples = closed_in_range(ctx, conns.clone()).select([
        metric(),
        (col("life_ns") / lit(1000)).cast(DataType::UInt64).alias("us"),
        lit(1u32).alias("n"),
    ]);
    let summary = distribution::summarize(distribution::value_counts(samples, &["metric"]), &["metric"]);
    let still_open =
        conns.filter(col("close_ns").is_null()).select([metric(), len().cast(DataType::UInt64).alias("still_open")]);
    let mut select = vec![col("metric"), col("count").fill_null(lit(0u64)), col("still_open")];
    select.extend(distribution::PERCENTILES.iter().map(|(_, c)| col(*c)));
    select.extend([col("max_us"), col("buckets")]);
    super::join(still_open, summary, &["metric"], JoinType::Left).select(select)
}

/// The state rows of the selected connections, read once: the per-interval
/// counts and the connections are both made of them (two scans of a big
/// trace cost more than holding its state rows).
pub fn state(ctx: &Ctx) -> anyhow::Result<LazyFrame> {
    let events = ctx.events(&connections::scan_columns(ctx))?;
    Ok(collect(connections::state_rows(events, ctx))?.lazy())
}

pub fn run(ctx: &Ctx, args: &ChurnArgs) -> anyhow::Result<Report> {
    let state = state(ctx)?;
    let conns = connections(ctx, state.clone())?.lazy();
    let short = humantime::format_duration(std::time::Duration::from_nanos(args.short_ns as u64));
    let title = format!(
        "Connections per {} by {} (short-lived: under {short})",
        ctx.interval_label(args.interval_ns),
        ctx.by_label()
    );
    // Collected here, on the streaming engine: the counts group every state row.
    let rows = collect(per_interval(ctx, args, state, conns.clone())?)?;
    Ok(Report {
        frames: vec![
            Frame::new(title, rows.lazy()),
            Frame::new("Lifetime of closed connections (open to close)", lifetimes(ctx, conns)),
        ],
        ..Default::default()
    })
}
