//! `info`: what a trace holds, per host.

use std::collections::BTreeMap;

use super::Ctx;
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
        "host", "kernel", "command", "first", "last", "segments", "events", "events_by_kind", "lost_events", "lost_by_segment",
        "mechanisms", "filters", "probes",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    for (host, segs) in by_host {
        let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
        for s in &segs {
            for (k, n) in &s.events_by_kind {
                *kinds.entry(k).or_default() += n;
            }
        }
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
            Value::U64(segs.iter().map(|s| s.lost).sum()),
            Value::from(lost_segments.join("\n")),
            pairs(&last.mechanisms),
            Value::from(last.filters.to_string()),
            pairs(&last.probes),
        ]);
    }
    Report { sections: vec![Section { title: "Trace".into(), columns, rows, generated: None }], ..Default::default() }
}
