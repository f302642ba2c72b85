//! `calls`: application calls per interval per probe, next to the TCP
//! connections the calling processes opened in the same interval (logins
//! per second beside connections per second).

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;

use super::by::By;
use super::Ctx;
use crate::frame::{collect, i64s, u64s, values};
use crate::output::{Report, Section, Value};

/// A process: host and pid.
type Proc = (String, u64);

fn text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::U64(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The shown key of a row: probe, then the --by columns.
fn shown(by: By) -> Vec<&'static str> {
    match by {
        By::Probe => vec!["probe"],
        By::Pid => vec!["probe", "pid", "comm"],
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
        .group_by([col("second"), col("probe"), col("host"), col("pid"), col("comm")])
        .agg([
            len().cast(DataType::UInt64).alias("calls"),
            is_call.and(col("duration_ns").is_null()).cast(DataType::UInt64).sum().alias("unfinished"),
        ]))
}

/// Per interval and process: TCP connections it opened (actively or passively).
fn opens_plan(ctx: &Ctx, interval_ns: i64) -> anyhow::Result<LazyFrame> {
    let events = ctx.events(&["ts", "kind", "old_state", "new_state", "pid", "comm", "lport", "rport"])?;
    let opened = col("kind")
        .eq(lit("state"))
        .and(col("new_state").eq(lit("ESTABLISHED")))
        .and(col("old_state").eq(lit("SYN_SENT")).or(col("old_state").eq(lit("SYN_RECV"))))
        .and(col("pid").is_not_null());
    Ok(ctx
        .filters
        .apply(events.filter(opened))
        .with_column(super::interval_start(interval_ns))
        .group_by([col("second"), col("host"), col("pid")])
        .agg([len().cast(DataType::UInt64).alias("opens")]))
}

#[derive(Default)]
struct Counts {
    calls: u64,
    unfinished: u64,
    tcp_opens: u64,
}

pub fn run(ctx: &Ctx, interval_ns: i64) -> anyhow::Result<Report> {
    let calls = collect(calls_plan(ctx, interval_ns)?)?;
    let opens = collect(opens_plan(ctx, interval_ns)?)?;
    let shown = shown(ctx.by);

    // Calls per (interval, key), and which processes each key stands for.
    let seconds = i64s(&calls, "second")?;
    let key_cols: Vec<Vec<Value>> = shown.iter().map(|c| values(&calls, c)).collect::<Result<_, _>>()?;
    let (hosts, pids) = (values(&calls, "host")?, u64s(&calls, "pid")?);
    let (n, unfinished) = (u64s(&calls, "calls")?, u64s(&calls, "unfinished")?);
    let mut rows: BTreeMap<(Vec<String>, i64), Counts> = BTreeMap::new();
    let mut keys: BTreeMap<Vec<String>, (Vec<Value>, BTreeSet<Proc>)> = BTreeMap::new();
    for i in 0..calls.height() {
        let key: Vec<Value> = key_cols.iter().map(|c| c[i].clone()).collect();
        let id: Vec<String> = key.iter().map(text).collect();
        let entry = keys.entry(id.clone()).or_insert_with(|| (key, BTreeSet::new()));
        if let Some(pid) = pids[i] {
            entry.1.insert((text(&hosts[i]), pid));
        }
        let c = rows.entry((id, seconds[i].unwrap_or(0))).or_default();
        c.calls += n[i].unwrap_or(0);
        c.unfinished += unfinished[i].unwrap_or(0);
    }

    // Connections opened by those processes, interval by interval.
    let mut opened: BTreeMap<Proc, Vec<(i64, u64)>> = BTreeMap::new();
    let (o_sec, o_host, o_pid, o_n) =
        (i64s(&opens, "second")?, values(&opens, "host")?, u64s(&opens, "pid")?, u64s(&opens, "opens")?);
    for i in 0..opens.height() {
        if let (Some(sec), Some(pid), Some(k)) = (o_sec[i], o_pid[i], o_n[i]) {
            opened.entry((text(&o_host[i]), pid)).or_default().push((sec, k));
        }
    }
    for (id, (_, procs)) in &keys {
        for p in procs {
            for &(sec, k) in opened.get(p).map(Vec::as_slice).unwrap_or_default() {
                rows.entry((id.clone(), sec)).or_default().tcp_opens += k;
            }
        }
    }

    let mut columns = vec![ctx.interval_label(interval_ns)];
    columns.extend(shown.iter().map(|s| s.to_string()));
    columns.extend(["calls", "unfinished", "tcp_opens"].map(String::from));
    let mut ordered: Vec<(&(Vec<String>, i64), &Counts)> = rows.iter().collect();
    ordered.sort_by(|a, b| a.0 .1.cmp(&b.0 .1).then_with(|| a.0 .0.cmp(&b.0 .0)));
    let per_interval = ordered
        .iter()
        .map(|((id, sec), c)| {
            let mut row = vec![Value::Time(*sec)];
            row.extend(keys[id].0.iter().cloned());
            row.extend([c.calls, c.unfinished, c.tcp_opens].map(Value::from));
            row
        })
        .collect();

    let mut total_cols: Vec<String> = shown.iter().map(|s| s.to_string()).collect();
    total_cols.extend(["calls", "unfinished", "peak_calls", "tcp_opens"].map(String::from));
    let totals = keys
        .iter()
        .map(|(id, (key, _))| {
            // Rows are ordered by key, then interval: one key's rows are one range.
            let mine = rows.range((id.clone(), i64::MIN)..=(id.clone(), i64::MAX)).map(|(_, c)| c);
            let (mut calls, mut unfinished, mut peak, mut tcp_opens) = (0, 0, 0, 0);
            for c in mine {
                calls += c.calls;
                unfinished += c.unfinished;
                peak = peak.max(c.calls);
                tcp_opens += c.tcp_opens;
            }
            let mut row = key.clone();
            row.extend([calls, unfinished, peak, tcp_opens].map(Value::from));
            row
        })
        .collect();

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
        sections: vec![
            Section {
                title: format!("Calls per {interval} by probe{by}; tcp_opens: connections the same processes opened"),
                columns,
                rows: per_interval,
                generated: None,
            },
            Section {
                title: format!("Calls by probe{by} (peak_calls: most in one {interval})"),
                columns: total_cols,
                rows: totals,
                generated: None,
            },
        ],
        warnings,
        ..Default::default()
    })
}
