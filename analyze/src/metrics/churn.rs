//! `churn`: connections opened, closed, failed, reset and short-lived, per interval.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::connections;
use super::Ctx;
use crate::frame::{collect, i64s, u64s, values};
use crate::histogram::summarize;
use crate::output::{Report, Section, Value};

pub struct ChurnArgs {
    pub interval_ns: i64,
    pub short_ns: i64,
}

/// Transitions into CLOSE that mean an abort (RST sent or received), not a FIN exchange.
const ABORT_FROM: [&str; 4] = ["ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT1", "SYN_RECV"];
/// Transitions into CLOSE of a connection that had been established.
const CLOSED_FROM: [&str; 7] = ["ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT", "LAST_ACK", "CLOSING", "TIME_WAIT"];

fn one_of(column: &str, states: &[&str]) -> Expr {
    states.iter().map(|s| col(column).eq(lit(*s))).reduce(|a, b| a.or(b)).expect("non-empty")
}

pub fn run(ctx: &Ctx, args: &ChurnArgs) -> anyhow::Result<Report> {
    let events = ctx.trace.events(&connections::scan_columns(ctx.by))?;
    let state = connections::state_rows(events, ctx);
    let keys = ctx.by.keys();
    let shown = ctx.by.shown();
    let count = |cond: Expr, name: &str| cond.cast(DataType::UInt64).sum().alias(name);

    // Per-interval counts straight from the transitions.
    let old = |s: &str| col("old_state").eq(lit(s));
    let new = |s: &str| col("new_state").eq(lit(s));
    let mut group: Vec<Expr> = vec![col("second")];
    group.extend(keys.iter().map(|k| col(*k)));
    let mut aggs = vec![
        count(old("SYN_SENT").and(new("ESTABLISHED")), "opened_active"),
        count(old("SYN_RECV").and(new("ESTABLISHED")), "opened_passive"),
        count(new("CLOSE").and(one_of("old_state", &CLOSED_FROM)), "closed"),
        count(old("SYN_SENT").and(new("CLOSE")), "failed"),
        count(new("CLOSE").and(one_of("old_state", &ABORT_FROM)), "resets"),
    ];
    aggs.extend(ctx.by.descriptions());
    // state_rows applied every other filter already.
    let per_second = ctx.filters.time_only().apply(state.clone()).with_column(super::interval_start(args.interval_ns)).group_by(group.clone()).agg(aggs);
    let df = collect(per_second)?;

    // Per connection: lifetime from open to close.
    let conns = collect(connections::plan(state, ctx.by))?;
    let (syn_s, syn_r, est_a, est_p, close) = (
        i64s(&conns, "syn_sent_ns")?,
        i64s(&conns, "syn_recv_ns")?,
        i64s(&conns, "active_est_ns")?,
        i64s(&conns, "passive_est_ns")?,
        i64s(&conns, "close_ns")?,
    );
    let conn_keys: Vec<Vec<Value>> = shown.iter().map(|c| values(&conns, c)).collect::<Result<_, _>>()?;
    let mut short: BTreeMap<(i64, String), u64> = BTreeMap::new();
    let mut lifetimes_us = Vec::new();
    let mut still_open = 0u64;
    for i in 0..conns.height() {
        let established = est_a[i].is_some() || est_p[i].is_some();
        let (Some(start), true) = (syn_s[i].or(syn_r[i]).or(est_a[i]).or(est_p[i]), established) else { continue };
        let Some(end) = close[i] else {
            still_open += 1;
            continue;
        };
        if !ctx.filters.in_range(end) {
            continue;
        }
        let life = end - start;
        lifetimes_us.push((life / 1000) as u64);
        if life < args.short_ns {
            let key: Vec<Value> = conn_keys.iter().map(|c| c[i].clone()).collect();
            *short.entry(((end / args.interval_ns) * args.interval_ns, format!("{key:?}"))).or_default() += 1;
        }
    }

    let mut columns = vec!["second".to_string()];
    columns.extend(shown.iter().map(|s| s.to_string()));
    let counters = ["opened_active", "opened_passive", "closed", "failed", "resets"];
    columns.extend(counters.iter().map(|s| s.to_string()));
    columns.push("short_lived".into());
    let seconds = i64s(&df, "second")?;
    let key_cols: Vec<Vec<Value>> = shown.iter().map(|c| values(&df, c)).collect::<Result<_, _>>()?;
    let counts: Vec<Vec<Option<u64>>> = counters.iter().map(|c| u64s(&df, c)).collect::<Result<_, _>>()?;
    let mut rows: BTreeMap<(i64, String), Vec<Value>> = BTreeMap::new();
    for i in 0..df.height() {
        let key: Vec<Value> = key_cols.iter().map(|c| c[i].clone()).collect();
        let sec = seconds[i].unwrap_or(0);
        let skey = (sec, format!("{key:?}"));
        let mut row = vec![Value::Time(sec)];
        row.extend(key);
        row.extend(counts.iter().map(|c| Value::from(c[i])));
        row.push(short.remove(&skey).unwrap_or(0).into());
        rows.insert(skey, row);
    }
    // Seconds with only short-lived closes: can happen when --by splits hide them.
    for ((sec, _), n) in short {
        let mut row = vec![Value::Time(sec)];
        row.extend(shown.iter().map(|_| Value::Null));
        row.extend(counters.iter().map(|_| Value::U64(0)));
        row.push(n.into());
        rows.insert((sec, String::new()), row);
    }

    let mut sections = vec![Section {
        title: format!(
            "Connections per {} by {} (short-lived: under {})",
            ctx.interval_label(args.interval_ns),
            ctx.by_label(),
            humantime::format_duration(std::time::Duration::from_nanos(args.short_ns as u64))
        ),
        columns,
        rows: rows.into_values().collect(),
    }];
    let life_cols = ["metric", "count", "still_open", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "buckets"];
    let mut life_row = vec![Value::from("lifetime")];
    match summarize(lifetimes_us) {
        Some(s) => life_row.extend([
            s.count.into(),
            still_open.into(),
            s.p50.into(),
            s.p90.into(),
            s.p99.into(),
            s.p999.into(),
            s.max.into(),
            Value::Buckets(s.buckets),
        ]),
        None => life_row.extend([
            0u64.into(),
            still_open.into(),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Buckets(vec![]),
        ]),
    }
    sections.push(Section {
        title: "Lifetime of closed connections (open to close)".into(),
        columns: life_cols.iter().map(|s| s.to_string()).collect(),
        rows: vec![life_row],
    });
    Ok(Report { sections, ..Default::default() })
}
