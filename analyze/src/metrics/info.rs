//! `info`: what a trace holds, per host.

use std::collections::BTreeMap;

use super::Ctx;
use crate::input::segment::Cost;
use crate::input::SegmentInfo;
use crate::output::{Report, Section, Value};

pub fn run(ctx: &Ctx) -> Report {
    let mut by_host: BTreeMap<&str, Vec<&SegmentInfo>> = BTreeMap::new();
    for s in &ctx.trace.segments {
        if ctx.filters.hosts.is_empty() || ctx.filters.hosts.contains(&s.host) {
            by_host.entry(&s.host).or_default().push(s);
        }
    }
    let columns: Vec<String> = [
        "host",
        "kernel",
        "command",
        "first",
        "last",
        "segments",
        "events",
        "events_by_kind",
        "events_recorded_by_kind",
        "data",
        "data_switches",
        "lost_events",
        "lost_by_segment",
        "mechanisms",
        "filters",
        "probes",
        "capture_cpu",
        "capture_peak_rss",
        "kernel_ns_per_event",
        "bpf_programs",
        "cost_by_segment",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    for (host, segs) in by_host {
        let (mut kinds, mut recorded): (BTreeMap<&str, u64>, BTreeMap<&str, u64>) = Default::default();
        for s in &segs {
            for (k, n) in &s.events_by_kind {
                *kinds.entry(k).or_default() += n;
            }
            for (k, n) in &s.events_recorded_by_kind {
                *recorded.entry(k).or_default() += n;
            }
        }
        let switches: Vec<String> = segs
            .iter()
            .filter_map(|s| s.data.as_ref())
            .flat_map(|d| d.switches.iter().map(|w| format!("{} to {}: {}", w.ts, w.to, w.reason)))
            .collect();
        let pairs = |m: &BTreeMap<String, String>| Value::Map(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        let lost_segments: Vec<String> =
            segs.iter().filter(|s| s.lost > 0).map(|s| format!("{}: {}", s.path.display(), s.lost)).collect();
        let last = segs.last().expect("a host has segments");
        rows.push(vec![
            Value::from(host),
            Value::from(last.kernel_release.as_str()),
            Value::from(last.command_line.join(" ")),
            Value::Time(segs.iter().map(|s| s.start.timestamp_nanos_opt().unwrap_or(0)).min().unwrap_or(0)),
            Value::Time(segs.iter().map(|s| s.end.timestamp_nanos_opt().unwrap_or(0)).max().unwrap_or(0)),
            Value::U64(segs.len() as u64),
            Value::U64(segs.iter().map(|s| s.events).sum()),
            Value::Map(kinds.iter().map(|(k, n)| (k.to_string(), n.to_string())).collect()),
            Value::Map(recorded.iter().map(|(k, n)| (k.to_string(), n.to_string())).collect()),
            Value::from(data_mode(last)),
            Value::from(switches.join("\n")),
            Value::U64(segs.iter().map(|s| s.lost).sum()),
            Value::from(lost_segments.join("\n")),
            pairs(&last.mechanisms),
            Value::from(last.filters.to_string()),
            pairs(&last.probes),
        ]);
        rows.last_mut().expect("just pushed").extend(cost_columns(&segs));
    }
    Report { sections: vec![Section { title: "Trace".into(), columns, rows, generated: None }], ..Default::default() }
}

/// How send/recv were recorded, in words.
fn data_mode(s: &SegmentInfo) -> String {
    let secs = |ns: u64| format!("{}", humantime::format_duration(std::time::Duration::from_nanos(ns)));
    match &s.data {
        None => "a row per call".into(),
        Some(d) if d.mode == "calls" && d.budget_events_per_s == 0 => {
            format!("a row per call; {} aggregates while the ring buffer is nearly full", secs(d.interval_ns))
        }
        Some(d) if d.mode == "calls" => format!(
            "a row per call; {} aggregates past {} events/s or while the ring buffer is nearly full",
            secs(d.interval_ns),
            d.budget_events_per_s
        ),
        Some(d) => format!("aggregates per socket and {} (samples = calls)", secs(d.interval_ns)),
    }
}

fn seconds(s: &SegmentInfo) -> f64 {
    (s.end - s.start).num_nanoseconds().unwrap_or(0) as f64 / 1e9
}

/// Kernel run time per written event, when BPF statistics were on.
fn kernel_ns_per_event(costs: &[(&SegmentInfo, &Cost)]) -> Option<f64> {
    let with_stats: Vec<_> = costs.iter().filter(|(_, c)| !c.programs.is_empty()).collect();
    // Per event the programs handled: an aggregate row stands for its calls.
    let events: u64 = with_stats.iter().map(|(s, _)| s.events_recorded()).sum();
    let run_ns: u64 = with_stats.iter().flat_map(|(_, c)| c.programs.values().map(|p| p.1)).sum();
    (events > 0).then(|| run_ns as f64 / events as f64)
}

/// What the capture cost, in total and per segment (segments that recorded it).
fn cost_columns(segs: &[&SegmentInfo]) -> Vec<Value> {
    let costs: Vec<(&SegmentInfo, &Cost)> = segs.iter().filter_map(|s| s.cost.as_ref().map(|c| (*s, c))).collect();
    if costs.is_empty() {
        let none = Value::from("not recorded (segments written before netrec recorded its cost)");
        return vec![none, Value::Null, Value::Null, Value::Map(Vec::new()), Value::Null];
    }
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    let cpu_text = |user: u64, sys: u64, secs: f64| {
        let pct = if secs > 0.0 { (user + sys) as f64 / 1e9 / secs * 100.0 } else { 0.0 };
        format!("{:.2} s user + {:.2} s sys in {secs:.0} s: {pct:.2} % of one CPU", user as f64 / 1e9, sys as f64 / 1e9)
    };
    let user: u64 = costs.iter().map(|(_, c)| c.cpu_user_ns).sum();
    let sys: u64 = costs.iter().map(|(_, c)| c.cpu_sys_ns).sum();
    let secs: f64 = costs.iter().map(|(s, _)| seconds(s)).sum();
    let mut programs: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (_, c) in &costs {
        for (name, (runs, ns)) in &c.programs {
            let p = programs.entry(name).or_default();
            p.0 += runs;
            p.1 += ns;
        }
    }
    let per_segment: Vec<String> = costs
        .iter()
        .map(|(s, c)| {
            let kernel =
                kernel_ns_per_event(&[(s, c)]).map_or(String::new(), |ns| format!(", kernel {ns:.0} ns per event"));
            format!(
                "{}: {}, peak RSS {}{kernel}",
                s.path.display(),
                cpu_text(c.cpu_user_ns, c.cpu_sys_ns, seconds(s)),
                mib(c.peak_rss_bytes)
            )
        })
        .collect();
    vec![
        Value::from(cpu_text(user, sys, secs)),
        Value::from(mib(costs.iter().map(|(_, c)| c.peak_rss_bytes).max().unwrap_or(0))),
        kernel_ns_per_event(&costs)
            .map_or(Value::from("BPF statistics off (capture with --bpf-stats)"), |ns| Value::from(format!("{ns:.0}"))),
        Value::Map(
            programs
                .iter()
                .map(|(name, (runs, ns))| {
                    let per_run = if *runs > 0 { *ns as f64 / *runs as f64 } else { 0.0 };
                    (name.to_string(), format!("{runs} runs, {per_run:.0} ns per run"))
                })
                .collect(),
        ),
        Value::from(per_segment.join("\n")),
    ]
}
