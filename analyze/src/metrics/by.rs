//! `--by`: which key a metric's rows are split by.

use clap::ValueEnum;
use polars::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// Process: pid and its command name
    Pid,
    /// Command name, all pids together
    Comm,
    /// Connection (socket): its addresses and ports
    Conn,
    /// Local port
    Lport,
    /// Remote port
    Rport,
    /// Remote address
    Raddr,
    /// Host that recorded the trace
    Host,
    /// cgroup path of the process
    Cgroup,
    /// Container id (docker, containerd/CRI, cri-o, podman) or systemd unit, from the cgroup path
    Container,
    /// Kubernetes pod uid, from the cgroup path
    Pod,
    /// Application probe (calls only)
    Probe,
    /// Process on its host: what `pid` means in a trace of several hosts
    /// (pids are per host). Not a flag value: `--by pid` becomes it there.
    #[value(skip)]
    HostPid,
}

impl By {
    /// Columns grouped by.
    pub fn keys(self) -> Vec<&'static str> {
        match self {
            By::Pid => vec!["pid"],
            By::Comm => vec!["comm"],
            By::Conn => vec!["host", "capture_id", "sock_id"],
            By::Lport => vec!["lport"],
            By::Rport => vec!["rport"],
            By::Raddr => vec!["raddr"],
            By::Host => vec!["host"],
            By::Cgroup => vec!["cgroup"],
            By::Container => vec!["container"],
            By::Pod => vec!["pod"],
            By::Probe => vec!["probe"],
            By::HostPid => vec!["host", "pid"],
        }
    }

    /// This key for a trace of `hosts` hosts: a pid is one process only on its host.
    pub fn for_hosts(self, hosts: usize) -> By {
        match self {
            By::Pid if hosts > 1 => By::HostPid,
            other => other,
        }
    }

    /// Columns shown, in order: keys and their descriptions.
    pub fn shown(self) -> Vec<&'static str> {
        match self {
            By::Pid => vec!["pid", "comm"],
            By::HostPid => vec!["host", "pid", "comm"],
            By::Conn => vec!["sock_id", "pid", "comm", "laddr", "lport", "raddr", "rport"],
            other => other.keys(),
        }
    }

    /// Aggregations that carry the descriptive columns through a group_by.
    pub fn descriptions(self) -> Vec<Expr> {
        self.description_columns().into_iter().map(|c| col(c).first_non_null().alias(c)).collect()
    }

    /// The columns shown that are no key.
    pub fn description_columns(self) -> Vec<&'static str> {
        let keys = self.keys();
        self.shown().into_iter().filter(|c| !keys.contains(c)).collect()
    }

    /// `base` plus the columns this key needs from the files (host and
    /// capture_id come from segment metadata, not from a column).
    pub fn scan_columns(self, base: &[&'static str]) -> Vec<&'static str> {
        let mut cols = base.to_vec();
        for c in self.shown() {
            if !cols.contains(&c) && !matches!(c, "host" | "capture_id") {
                cols.push(c);
            }
        }
        cols
    }
}
