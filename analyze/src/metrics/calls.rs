//! `calls`: application calls per interval per probe, next to the TCP
//! connections the calling processes opened in the same interval (logins
//! per second beside connections per second).

use polars::prelude::*;

use super::by::By;
use super::{as_time, Ctx};
use crate::output::{collect, Frame, Report, TIME};

/// The shown key of a row: probe, then the --by columns.
pub fn shown(by: By) -> Vec<&'static str> {
    match by {
        By::Probe => vec!["probe"],
        By::Pid => vec!["probe", "pid", "comm"],
        By::HostPid => vec!["probe", "host", "pid", "comm"],
        By::Comm => vec!["probe", "comm"],
        _ => vec!["probe", "host"],
    }
}

/// Per interval, probe and calling process: calls and unfinished calls.
fn calls_plan(ctx: &Ctx, interval_ns: i64) -> anyhow::Result<LazyFrame> {
    let events = ctx.events(&["ts", "kind", "probe", "duration_ns", "pid", "comm"])?;
    // Calls have no ports: --port narrows the connections counted beside them only.
    let filters = ctx.filters.without_ports();
    let is_call = col("kind").eq(lit("call"));
    Ok(filters
        .apply(events.filter(is_call.clone().or(col("kind").eq(lit("usdt")))))
        .with_column(super::interval_start(interval_ns))
        .group_by([col(TIME), col("probe"), col("host"), col("pid"), col("comm")])
        .agg([
            len().cast(DataType::UInt64).alias("calls"),
            is_call.and(col("duration_ns").is_null()).cast(DataType::UInt64).sum().alias("unfinished"),
        ]))
}

/// Per interval and process: TCP connections it opened (actively or passively).
fn opens_plan(ctx: &Ctx, interval_ns: i64) -> anyhow::Result<LazyFrame> {
    let events = ctx.events(&["ts", "kind", "old_state", "new_state", "pid", "comm"])?;
    let opened = col("kind")
        .eq(lit("state"))
        .and(col("new_state").eq(lit("ESTABLISHED")))
        .and(col("old_state").eq(lit("SYN_SENT")).or(col("old_state").eq(lit("SYN_RECV"))))
        .and(col("pid").is_not_null());
    Ok(ctx
        .filters
        .apply(events.filter(opened))
        .with_column(super::interval_start(interval_ns))
        .group_by([col(TIME), col("host"), col("pid")])
        .agg([len().cast(DataType::UInt64).alias("opens")]))
}

/// Per interval and key: calls, unfinished calls, and the TCP connections
/// opened in that interval by the processes that ever made those calls.
pub fn per_interval(ctx: &Ctx, interval_ns: i64) -> anyhow::Result<LazyFrame> {
    let calls = collect(calls_plan(ctx, interval_ns)?)?.lazy();
    let shown = shown(ctx.by);
    let mut group: Vec<&str> = vec![TIME];
    group.extend(shown.iter().copied());
    let by = |names: &[&str]| names.iter().map(|c| col(*c)).collect::<Vec<_>>();

    let per_key = calls.clone().group_by(by(&group)).agg([col("calls").sum(), col("unfinished").sum()]);
    // Which processes each key stands for, over the whole range.
    let mut proc_cols: Vec<&str> = shown.clone();
    for c in ["host", "pid"] {
        if !proc_cols.contains(&c) {
            proc_cols.push(c);
        }
    }
    let procs = calls.filter(col("pid").is_not_null()).select(by(&proc_cols)).unique(None, UniqueKeepStrategy::Any);
    let opens = super::join(procs, opens_plan(ctx, interval_ns)?, &["host", "pid"], JoinType::Inner)
        .group_by(by(&group))
        .agg([col("opens").sum().alias("tcp_opens")]);

    let mut select = vec![as_time()];
    select.extend(shown.iter().map(|c| col(*c)));
    select.extend(["calls", "unfinished", "tcp_opens"].map(|c| col(c).fill_null(lit(0u64))));
    Ok(super::join(per_key, opens, &group, JoinType::Full)
        .select(select)
        .sort_by_exprs(by(&group), SortMultipleOptions::default()))
}

/// Per key over the range: calls, unfinished, the most in one interval, TCP opens.
pub fn totals(ctx: &Ctx, per_interval: LazyFrame) -> LazyFrame {
    let shown: Vec<Expr> = shown(ctx.by).iter().map(|c| col(*c)).collect();
    per_interval
        .group_by(shown.clone())
        .agg([
            col("calls").sum(),
            col("unfinished").sum(),
            col("calls").max().alias("peak_calls"),
            col("tcp_opens").sum(),
        ])
        .sort_by_exprs(shown, SortMultipleOptions::default())
}

pub fn run(ctx: &Ctx, interval_ns: i64) -> anyhow::Result<Report> {
    let rows = collect(per_interval(ctx, interval_ns)?)?.lazy();
    let mut warnings = Vec::new();
    if ctx.trace.segments.iter().all(|s| s.probes.is_empty()) {
        warnings.push(
            "no segment of this trace recorded application probes (capture with --uprobe, --usdt or --usdt-pair)"
                .to_string(),
        );
    }
    let by = if ctx.by == By::Probe { String::new() } else { format!(" and {}", ctx.by_label()) };
    let interval = ctx.interval_label(interval_ns);
    Ok(Report {
        frames: vec![
            Frame::new(
                format!("Calls per {interval} by probe{by}; tcp_opens: connections the same processes opened"),
                rows.clone(),
            ),
            Frame::new(format!("Calls by probe{by} (peak_calls: most in one {interval})"), totals(ctx, rows)),
        ],
        warnings,
        ..Default::default()
    })
}
