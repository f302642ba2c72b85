//! The filters every subcommand shares, applied lazily to the event scan.

use chrono::{DateTime, Utc};
use polars::prelude::*;

use crate::input::container::test_str;

/// A --from/--to value: a point in time, or an offset from the trace start.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeBound {
    At(DateTime<Utc>),
    AfterStart(std::time::Duration),
}

impl TimeBound {
    pub fn parse(s: &str) -> Result<TimeBound, String> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(TimeBound::At(t.with_timezone(&Utc)));
        }
        let offset = s.strip_prefix('+').unwrap_or(s);
        humantime::parse_duration(offset).map(TimeBound::AfterStart).map_err(|_| {
            format!("{s:?} is neither RFC 3339 (2026-11-22T10:00:00Z) nor an offset from the trace start (90s, +5m)")
        })
    }

    pub fn resolve(&self, trace_start_ns: i64) -> i64 {
        match self {
            TimeBound::At(t) => t.timestamp_nanos_opt().unwrap_or(i64::MAX),
            TimeBound::AfterStart(d) => trace_start_ns.saturating_add(d.as_nanos() as i64),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Inclusive start, exclusive end, ns since the epoch.
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    pub ports: Vec<u16>,
    pub hosts: Vec<String>,
    /// cgroup paths: the cgroup itself and every cgroup below it.
    pub cgroups: Vec<String>,
    /// Container ids or their prefixes (docker's 12-digit short ids), or systemd unit names.
    pub containers: Vec<String>,
    /// Transport protocols (tcp, udp).
    pub protocols: Vec<String>,
}

fn any_of<T: Clone>(values: &[T], make: impl Fn(T) -> Expr) -> Option<Expr> {
    values.iter().cloned().map(make).reduce(|a, b| a.or(b))
}

impl Filters {
    /// Keeps the rows that pass every filter given (needs ts_ns, and the
    /// pid/comm/lport/rport/host columns of the filters in use).
    pub fn apply(&self, lf: LazyFrame) -> LazyFrame {
        let mut conds = Vec::new();
        if let Some(from) = self.from_ns {
            conds.push(col("ts_ns").gt_eq(lit(from)));
        }
        if let Some(to) = self.to_ns {
            conds.push(col("ts_ns").lt(lit(to)));
        }
        conds.extend(any_of(&self.pids, |p| col("pid").eq(lit(p))));
        conds.extend(any_of(&self.comms, |c| col("comm").eq(lit(c))));
        conds.extend(any_of(&self.ports, |p| col("lport").eq(lit(p)).or(col("rport").eq(lit(p)))));
        conds.extend(any_of(&self.hosts, |h| col("host").eq(lit(h))));
        conds.extend(any_of(&self.cgroups, |c| {
            let below = format!("{}/", c.trim_end_matches('/'));
            test_str(col("cgroup"), move |p| p == c || p.starts_with(&below))
        }));
        conds.extend(any_of(&self.protocols, |p| col("protocol").eq(lit(p))));
        conds.extend(any_of(&self.containers, |c| test_str(col("container"), move |p| p.starts_with(&c))));
        match conds.into_iter().reduce(|a, b| a.and(b)) {
            Some(c) => lf.filter(c),
            None => lf,
        }
    }

    /// Columns these filters read beyond every metric's own (ts, pid, comm, host):
    /// ports only for --port (two columns fewer to decode otherwise).
    /// `base` and the columns the filters read, each once.
    pub fn with_columns(&self, base: &[&'static str]) -> Vec<&'static str> {
        let mut cols = base.to_vec();
        for c in self.columns() {
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
        cols
    }

    /// Whether rows of `host` are selected (`--host`).
    pub fn host_selected(&self, host: &str) -> bool {
        self.hosts.is_empty() || self.hosts.iter().any(|h| h == host)
    }

    pub fn columns(&self) -> Vec<&'static str> {
        let mut cols = Vec::new();
        if !self.ports.is_empty() {
            cols.extend(["lport", "rport"]);
        }
        if !self.cgroups.is_empty() {
            cols.push("cgroup");
        }
        if !self.containers.is_empty() {
            cols.push("container");
        }
        if !self.protocols.is_empty() {
            cols.push("protocol");
        }
        cols
    }

    /// The same filters without the time range.
    pub fn without_time(&self) -> Filters {
        Filters { from_ns: None, to_ns: None, ..self.clone() }
    }

    /// The same filters without --port (for rows that have no ports).
    pub fn without_ports(&self) -> Filters {
        Filters { ports: Vec::new(), ..self.clone() }
    }

    /// Only the time range of these filters.
    pub fn time_only(&self) -> Filters {
        Filters { from_ns: self.from_ns, to_ns: self.to_ns, ..Filters::default() }
    }

    /// Whether a segment's time span overlaps the selected range.
    pub fn overlaps(&self, start_ns: i64, end_ns: i64) -> bool {
        self.from_ns.is_none_or(|f| end_ns > f) && self.to_ns.is_none_or(|t| start_ns < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse_as_times_or_offsets() {
        assert_eq!(TimeBound::parse("+90s").unwrap().resolve(1_000), 1_000 + 90_000_000_000);
        assert_eq!(TimeBound::parse("2m").unwrap(), TimeBound::AfterStart(std::time::Duration::from_secs(120)));
        let t = TimeBound::parse("2026-11-22T10:00:00Z").unwrap().resolve(0);
        assert_eq!(t, DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().timestamp_nanos_opt().unwrap());
        assert!(TimeBound::parse("yesterday").is_err());
    }
}
