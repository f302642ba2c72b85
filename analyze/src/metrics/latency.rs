//! `latency`: connect latency, server handshake time, RTT and application
//! call durations as log2 histograms with exact percentiles.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::connections;
use super::Ctx;
use crate::frame::{collect, i64s, u64s, values};
use crate::histogram::summarize;
use crate::output::{Report, Section, Value};

/// Samples of one metric for one key.
type Samples = BTreeMap<(String, String), (Vec<Value>, Vec<u64>)>;

fn add(samples: &mut Samples, metric: &str, key: Vec<Value>, us: u64) {
    samples.entry((metric.to_string(), format!("{key:?}"))).or_insert_with(|| (key, Vec::new())).1.push(us);
}

pub fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let shown = ctx.by.shown();
    let mut samples: Samples = BTreeMap::new();

    // connect (SYN_SENT -> ESTABLISHED) and handshake (SYN_RECV -> ESTABLISHED), per connection.
    let events = ctx.trace.events(&connections::scan_columns(ctx.by))?;
    let conns = collect(connections::plan(connections::state_rows(events, ctx), ctx.by))?;
    let keys: Vec<Vec<Value>> = shown.iter().map(|c| values(&conns, c)).collect::<Result<_, _>>()?;
    let (syn_s, est_a, syn_r, est_p) = (
        i64s(&conns, "syn_sent_ns")?,
        i64s(&conns, "active_est_ns")?,
        i64s(&conns, "syn_recv_ns")?,
        i64s(&conns, "passive_est_ns")?,
    );
    for i in 0..conns.height() {
        let key = || keys.iter().map(|c| c[i].clone()).collect::<Vec<_>>();
        if let (Some(a), Some(b)) = (syn_s[i], est_a[i]) {
            if ctx.filters.in_range(b) && b >= a {
                add(&mut samples, "connect", key(), ((b - a) / 1000) as u64);
            }
        }
        if let (Some(a), Some(b)) = (syn_r[i], est_p[i]) {
            if ctx.filters.in_range(b) && b >= a {
                add(&mut samples, "handshake", key(), ((b - a) / 1000) as u64);
            }
        }
    }

    // rtt: every srtt sample.
    let cols = ctx.by.scan_columns(&["ts", "kind", "srtt_us", "pid", "comm", "lport", "rport"]);
    let rtt = ctx.filters.apply(ctx.trace.events(&cols)?.filter(col("kind").eq(lit("rtt"))));
    let mut select: Vec<Expr> = shown.iter().map(|c| col(*c)).collect();
    select.push(col("srtt_us"));
    let rtt = collect(rtt.select(select))?;
    let rkeys: Vec<Vec<Value>> = shown.iter().map(|c| values(&rtt, c)).collect::<Result<_, _>>()?;
    for (i, v) in u64s(&rtt, "srtt_us")?.into_iter().enumerate() {
        if let Some(v) = v {
            add(&mut samples, "rtt", rkeys.iter().map(|c| c[i].clone()).collect(), v);
        }
    }

    // call:<probe>: every finished call's duration. Calls have no ports.
    let cols = ctx.by.scan_columns(&["ts", "kind", "probe", "duration_ns", "pid", "comm"]);
    let finished = col("kind").eq(lit("call")).and(col("duration_ns").is_not_null());
    let calls = ctx.filters.without_ports().apply(ctx.trace.events(&cols)?.filter(finished));
    let mut select: Vec<Expr> = shown.iter().map(|c| col(*c)).collect();
    select.extend([col("probe"), col("duration_ns")]);
    let calls = collect(calls.select(select))?;
    let ckeys: Vec<Vec<Value>> = shown.iter().map(|c| values(&calls, c)).collect::<Result<_, _>>()?;
    let probes = values(&calls, "probe")?;
    for (i, ns) in u64s(&calls, "duration_ns")?.into_iter().enumerate() {
        if let (Some(ns), Value::Str(probe)) = (ns, &probes[i]) {
            add(&mut samples, &format!("call:{probe}"), ckeys.iter().map(|c| c[i].clone()).collect(), ns / 1000);
        }
    }

    let mut columns = vec!["metric".to_string()];
    columns.extend(shown.iter().map(|s| s.to_string()));
    columns.extend(["count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "buckets"].map(String::from));
    let order = |m: &str| ["connect", "handshake", "rtt"].iter().position(|x| *x == m).unwrap_or(9);
    let mut entries: Vec<_> = samples.into_iter().collect();
    entries.sort_by(|a, b| order(&a.0 .0).cmp(&order(&b.0 .0)).then(a.0 .1.cmp(&b.0 .1)));
    let mut rows = Vec::new();
    for ((metric, _), (key, us)) in entries {
        let s = summarize(us).expect("a key exists only with samples");
        let mut row = vec![Value::from(metric)];
        row.extend(key);
        row.extend([s.count, s.p50, s.p90, s.p99, s.p999, s.max].map(Value::from));
        row.push(Value::Buckets(s.buckets));
        rows.push(row);
    }
    Ok(Report {
        sections: vec![Section { title: format!("Latency by {} (microseconds)", ctx.by_label()), columns, rows }],
        ..Default::default()
    })
}
