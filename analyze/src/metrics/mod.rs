//! The analyses: each builds lazy plans over the trace, one per frame of its report.

pub mod by;
pub mod calls;
pub mod churn;
pub mod connections;
pub mod distribution;
pub mod info;
pub mod latency;
pub mod netio;

use polars::prelude::{
    col, concat, lit, DataType, Expr, JoinArgs, JoinCoalesce, JoinType, LazyFrame, PolarsResult, TimeUnit, UnionArgs,
};

use crate::input::Trace;
use crate::output::TIME;
use crate::query::Filters;
use by::By;

/// The `time` column, in ns: the start of the interval each event's ts_ns falls in.
pub fn interval_start(interval_ns: i64) -> Expr {
    ((col("ts_ns") / lit(interval_ns)) * lit(interval_ns)).alias(TIME)
}

/// Joins on `on`, a null key matching a null key (a row with no comm, a call with no probe).
pub fn join(left: LazyFrame, right: LazyFrame, on: &[&str], how: JoinType) -> LazyFrame {
    let on: Vec<Expr> = on.iter().map(|c| col(*c)).collect();
    let args = JoinArgs { nulls_equal: true, ..JoinArgs::new(how) }.with_coalesce(JoinCoalesce::CoalesceColumns);
    left.join(right, on.clone(), on, args)
}

/// Collected partial results (a host's, a pass's) as one frame, one after
/// another: they are in memory already, so neither copied together nor
/// read in parallel.
pub fn union(parts: Vec<LazyFrame>) -> PolarsResult<LazyFrame> {
    concat(parts, UnionArgs { rechunk: false, parallel: false, ..Default::default() })
}

/// The `time` column as the timestamp it is (UTC), for output.
pub fn as_time() -> Expr {
    col(TIME).cast(DataType::Datetime(TimeUnit::Nanoseconds, None))
}

/// What every analysis needs: the trace, the filters, the split. Cloned to
/// run another split over the same trace.
#[derive(Clone)]
pub struct Ctx {
    pub trace: std::sync::Arc<Trace>,
    pub filters: Filters,
    pub by: By,
}

impl Ctx {
    /// Every host the trace was recorded on, in order.
    fn host_names(&self) -> std::collections::BTreeSet<&str> {
        self.trace.segments.iter().map(|s| s.host.as_str()).collect()
    }

    /// Hosts the trace was recorded on that --host selects.
    pub fn hosts(&self) -> usize {
        self.host_names().into_iter().filter(|h| self.filters.host_selected(h)).count()
    }

    /// The trace one host at a time: a Ctx per selected host over that
    /// host's segments only (the whole trace when it has one host).
    /// Connections, and so churn's and latency's plans, never span hosts, and
    /// their partial results merge exactly (counts add, value counts add):
    /// memory is then about one host's, not the fleet's (latency over ten
    /// hosts of 20 M events by pid: 2,684 MiB in one pass, 651 MiB host by host).
    pub fn host_by_host(&self) -> Vec<Ctx> {
        let mut hosts = self.host_names();
        let all = hosts.len();
        hosts.retain(|h| self.filters.host_selected(h));
        if all < 2 || hosts.is_empty() {
            vec![self.clone()]
        } else {
            hosts
                .into_iter()
                .map(|h| {
                    let segments = self.trace.segments.iter().filter(|s| s.host == h).cloned().collect();
                    let trace = Trace { segments, skipped_in_progress: Vec::new(), unpacked: Vec::new() };
                    Ctx { trace: std::sync::Arc::new(trace), ..self.clone() }
                })
                .collect()
        }
    }

    /// Whether rows of different hosts never share a key.
    pub fn keyed_by_host(&self) -> bool {
        self.by.keys().contains(&"host")
    }

    pub fn by_label(&self) -> &'static str {
        match self.by {
            By::Pid => "pid",
            By::Comm => "comm",
            By::Conn => "conn",
            By::Lport => "lport",
            By::Rport => "rport",
            By::Raddr => "raddr",
            By::Host => "host",
            By::Cgroup => "cgroup",
            By::Container => "container",
            By::Pod => "pod",
            By::Probe => "probe",
            By::HostPid => "pid (per host)",
        }
    }

    pub fn interval_label(&self, interval_ns: i64) -> String {
        if interval_ns == 1_000_000_000 {
            "second".into()
        } else {
            humantime::format_duration(std::time::Duration::from_nanos(interval_ns as u64)).to_string()
        }
    }

    /// The trace's events with `columns` and those the filters read.
    pub fn events(&self, columns: &[&'static str]) -> polars::prelude::PolarsResult<polars::prelude::LazyFrame> {
        self.trace.events(&self.columns(columns))
    }

    /// `columns` and those the filters read.
    pub fn columns(&self, columns: &[&'static str]) -> Vec<&'static str> {
        self.filters.with_columns(columns)
    }

    /// Events the capture lost in segments overlapping the selected range.
    pub fn lost_events(&self) -> (u64, Vec<String>) {
        let mut total = 0;
        let mut where_ = Vec::new();
        for s in &self.trace.segments {
            let (a, b) = (s.start.timestamp_nanos_opt().unwrap_or(0), s.end.timestamp_nanos_opt().unwrap_or(i64::MAX));
            if s.lost > 0 && self.filters.host_selected(&s.host) && self.filters.overlaps(a, b) {
                total += s.lost;
                where_.push(format!("{} ({} lost)", s.path.display(), s.lost));
            }
        }
        (total, where_)
    }
}
