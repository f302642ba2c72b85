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
const CLOSED_FROM: [&str; 7] =
    ["ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT", "LAST_ACK", "CLOSING", "TIME_WAIT"];

fn one_of(column: &str, states: &[&str]) -> Expr {
    states.iter().map(|s| col(column).eq(lit(*s))).reduce(|a, b| a.or(b)).expect("non-empty")
}

pub fn run(ctx: &Ctx, args: &ChurnArgs) -> anyhow::Result<Report> {
    let events = ctx.events(&connections::scan_columns(ctx))?;
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
    let per_second = ctx
        .filters
        .time_only()
        .apply(state.clone())
        .with_column(super::interval_start(args.interval_ns))
        .group_by(group.clone())
        .agg(aggs);
    let df = collect(per_second)?;

    // Per connection: lifetime from open to close, of the established ones.
    let est = |c: &str| col(c).is_not_null();
    let start = coalesce(&[col("syn_sent_ns"), col("syn_recv_ns"), col("active_est_ns"), col("passive_est_ns")]);
    let mut select: Vec<Expr> = shown.iter().map(|c| col(*c)).collect();
    select.extend([col("close_ns"), (col("close_ns") - start).alias("life_ns")]);
    let established = connections::plan(state, ctx.by).filter(est("active_est_ns").or(est("passive_est_ns")));
    let conns = collect(established.select(select))?;
    let still_open = conns.column("close_ns")?.null_count() as u64;
    let closed =
        ctx.filters.time_only().apply(conns.lazy().filter(est("close_ns")).with_column(col("close_ns").alias("ts_ns")));
    let lifetimes_us: Vec<u64> =
        u64s(&collect(closed.clone().select([(col("life_ns") / lit(1000)).alias("us")]))?, "us")?
            .into_iter()
            .flatten()
            .collect();
    let mut group: Vec<Expr> = vec![super::interval_start(args.interval_ns)];
    group.extend(shown.iter().map(|c| col(*c)));
    let short_df =
        collect(closed.filter(col("life_ns").lt(lit(args.short_ns))).group_by(group).agg([len().alias("n")]))?;
    let short_keys: Vec<Vec<Value>> = shown.iter().map(|c| values(&short_df, c)).collect::<Result<_, _>>()?;
    let mut short: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for (i, (sec, n)) in i64s(&short_df, "second")?.into_iter().zip(u64s(&short_df, "n")?).enumerate() {
        let key: Vec<Value> = short_keys.iter().map(|c| c[i].clone()).collect();
        short.insert((sec.unwrap_or(0), format!("{key:?}")), n.unwrap_or(0));
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
        generated: None,
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
        generated: None,
    });
    Ok(Report { sections, ..Default::default() })
}
