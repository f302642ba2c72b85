//! `info`: what a trace holds, per host.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::Ctx;
use crate::input::segment::Cost;
use crate::input::SegmentInfo;
use crate::output::{Frame, Report};

/// Columns of one row per host, built as the rows are.
#[derive(Default)]
struct Rows {
    text: Vec<(&'static str, Vec<Option<String>>)>,
    count: Vec<(&'static str, Vec<Option<u64>>)>,
    time: Vec<(&'static str, Vec<i64>)>,
    /// key=value records: a struct column, one field per key any host has.
    map: Vec<(&'static str, Vec<BTreeMap<String, String>>)>,
    /// Column order.
    order: Vec<&'static str>,
}

impl Rows {
    fn slot<T>(order: &mut Vec<&'static str>, cols: &mut Vec<(&'static str, Vec<T>)>, name: &'static str) -> usize {
        match cols.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                order.push(name);
                cols.push((name, Vec::new()));
                cols.len() - 1
            }
        }
    }
    fn text(&mut self, name: &'static str, v: impl Into<Option<String>>) {
        let i = Self::slot(&mut self.order, &mut self.text, name);
        self.text[i].1.push(v.into());
    }
    fn count(&mut self, name: &'static str, v: u64) {
        let i = Self::slot(&mut self.order, &mut self.count, name);
        self.count[i].1.push(Some(v));
    }
    fn time(&mut self, name: &'static str, ns: i64) {
        let i = Self::slot(&mut self.order, &mut self.time, name);
        self.time[i].1.push(ns);
    }
    fn map<K: ToString, V: ToString>(&mut self, name: &'static str, pairs: impl IntoIterator<Item = (K, V)>) {
        let i = Self::slot(&mut self.order, &mut self.map, name);
        self.map[i].1.push(pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    }

    fn frame(self) -> PolarsResult<DataFrame> {
        let mut columns = Vec::new();
        for name in &self.order {
            if let Some((_, v)) = self.text.iter().find(|(n, _)| n == name) {
                columns.push(Column::new((*name).into(), v));
            } else if let Some((_, v)) = self.count.iter().find(|(n, _)| n == name) {
                columns.push(Column::new((*name).into(), v));
            } else if let Some((_, v)) = self.time.iter().find(|(n, _)| n == name) {
                let c = Column::new((*name).into(), v);
                columns.push(c.cast(&DataType::Datetime(TimeUnit::Nanoseconds, None))?);
            } else if let Some((_, rows)) = self.map.iter().find(|(n, _)| n == name) {
                columns.push(record_column(name, rows)?);
            }
        }
        DataFrame::new_infer_height(columns)
    }
}

/// Records as a struct column: numbers where every value of a field is one.
fn record_column(name: &str, rows: &[BTreeMap<String, String>]) -> PolarsResult<Column> {
    let keys: std::collections::BTreeSet<&String> = rows.iter().flat_map(|r| r.keys()).collect();
    let fields: Vec<Series> = keys
        .iter()
        .map(|k| {
            let values: Vec<Option<&str>> = rows.iter().map(|r| r.get(*k).map(String::as_str)).collect();
            let numbers: Option<Vec<Option<u64>>> =
                values.iter().map(|v| v.map_or(Some(None), |v| v.parse::<u64>().ok().map(Some))).collect();
            match numbers {
                Some(n) => Series::new(k.as_str().into(), n),
                None => Series::new(k.as_str().into(), values),
            }
        })
        .collect();
    if fields.is_empty() {
        // No key on any host: an empty string per row.
        return Ok(Column::new(name.into(), vec![""; rows.len()]));
    }
    Ok(StructChunked::from_series(name.into(), rows.len(), fields.iter())?.into_series().into_column())
}

pub fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let mut by_host: BTreeMap<&str, Vec<&SegmentInfo>> = BTreeMap::new();
    for s in &ctx.trace.segments {
        if ctx.filters.host_selected(&s.host) {
            by_host.entry(&s.host).or_default().push(s);
        }
    }
    let mut rows = Rows::default();
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
        let lost_segments: Vec<String> =
            segs.iter().filter(|s| s.lost > 0).map(|s| format!("{}: {}", s.path.display(), s.lost)).collect();
        let last = segs.last().expect("a host has segments");
        rows.text("host", host.to_string());
        rows.text("kernel", last.kernel_release.clone());
        rows.text("command", last.command_line.join(" "));
        rows.time("first", segs.iter().map(|s| s.start.timestamp_nanos_opt().unwrap_or(0)).min().unwrap_or(0));
        rows.time("last", segs.iter().map(|s| s.end.timestamp_nanos_opt().unwrap_or(0)).max().unwrap_or(0));
        rows.count("segments", segs.len() as u64);
        rows.count("events", segs.iter().map(|s| s.events).sum());
        rows.map("events_by_kind", kinds);
        rows.map("events_recorded_by_kind", recorded);
        rows.text("data", data_mode(last));
        rows.text("data_switches", switches.join("\n"));
        rows.count("lost_events", segs.iter().map(|s| s.lost).sum());
        rows.text("lost_by_segment", lost_segments.join("\n"));
        rows.map("mechanisms", &last.mechanisms);
        rows.text("filters", last.filters.to_string());
        rows.map("probes", &last.probes);
        cost_columns(&mut rows, &segs);
    }
    let mut frame = Frame::new("Trace", rows.frame()?.lazy());
    frame.transposed = true;
    Ok(Report { frames: vec![frame], ..Default::default() })
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
fn cost_columns(rows: &mut Rows, segs: &[&SegmentInfo]) {
    let costs: Vec<(&SegmentInfo, &Cost)> = segs.iter().filter_map(|s| s.cost.as_ref().map(|c| (*s, c))).collect();
    if costs.is_empty() {
        rows.text("capture_cpu", "not recorded (segments written before netrec recorded its cost)".to_string());
        rows.text("capture_peak_rss", None);
        rows.text("kernel_ns_per_event", None);
        rows.map::<String, String>("bpf_programs", []);
        rows.text("cost_by_segment", None);
        return;
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
    rows.text("capture_cpu", cpu_text(user, sys, secs));
    rows.text("capture_peak_rss", mib(costs.iter().map(|(_, c)| c.peak_rss_bytes).max().unwrap_or(0)));
    rows.text(
        "kernel_ns_per_event",
        kernel_ns_per_event(&costs)
            .map_or("BPF statistics off (capture with --bpf-stats)".to_string(), |ns| format!("{ns:.0}")),
    );
    rows.map(
        "bpf_programs",
        programs.iter().map(|(name, (runs, ns))| {
            let per_run = if *runs > 0 { *ns as f64 / *runs as f64 } else { 0.0 };
            (name, format!("{runs} runs, {per_run:.0} ns per run"))
        }),
    );
    rows.text("cost_by_segment", per_segment.join("\n"));
}
