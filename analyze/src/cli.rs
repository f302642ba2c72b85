//! Command-line flags, turned into a validated analysis before any work.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use crate::metrics::by::By;
use crate::output::Format;
use crate::query::{Filters, TimeBound};

const EXAMPLES: &str = "\
Examples:
  netrec-analyze info samples/mariadb-short-connections
  netrec-analyze netio samples/redis-benchmark --top 5
  netrec-analyze churn /var/tmp/netrec --short 50ms --by comm
  netrec-analyze latency 'traces/*.parquet' --from +30s --to +90s --format json
  netrec-analyze netio traces/ --strict --format csv > netio.csv   # CI: fail on lost events
  netrec-analyze calls samples/mariadb-logins --by comm         # logins/s next to TCP opens/s
  netrec-analyze netio /var/tmp/netrec --by container            # per docker/Kubernetes container
  netrec-analyze churn /var/tmp/netrec --by pod --container 3f4e1c2b9a8d

Inputs are segment files, directories (searched recursively) or globs.
Exit status: 0 success, 1 --strict found lost events, 2 error.";

#[derive(Debug, Parser)]
#[command(name = "netrec-analyze", version, after_help = EXAMPLES)]
/// Analyze netrec capture segments offline: per-second NetIO, connection churn, latency.
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What the trace holds per host: kernel, command, time range, events, losses, probes
    Info(Common),
    /// Bytes sent and consumed per second per process (or --by key)
    Netio {
        #[command(flatten)]
        common: Common,
        /// Keep only the N busiest keys (by total bytes over the range)
        #[arg(long, value_name = "N")]
        top: Option<usize>,
    },
    /// Connections opened, closed, failed, reset and short-lived per second; lifetime histogram
    Churn {
        #[command(flatten)]
        common: Common,
        /// A connection closed within this long of its open is short-lived
        #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
        short: std::time::Duration,
    },
    /// Connect latency, server handshake time, RTT and application call durations:
    /// log2 histograms and exact percentiles
    Latency(Common),
    /// Application calls (--uprobe, --usdt) per second per probe, next to the TCP
    /// connections the same processes opened; totals and peaks per probe
    Calls(Common),
}

impl Command {
    pub fn common(&self) -> &Common {
        match self {
            Command::Info(c) | Command::Latency(c) | Command::Calls(c) => c,
            Command::Netio { common, .. } | Command::Churn { common, .. } => common,
        }
    }
}

#[derive(Debug, Args)]
pub struct Common {
    /// Segment files, directories or globs
    #[arg(required = true, value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    /// Start of the range: RFC 3339 time, or an offset from the trace start (+30s)
    #[arg(long, value_name = "TIME", value_parser = TimeBound::parse)]
    pub from: Option<TimeBound>,
    /// End of the range (exclusive), same forms as --from
    #[arg(long, value_name = "TIME", value_parser = TimeBound::parse)]
    pub to: Option<TimeBound>,
    /// Only this process (repeatable)
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Only processes with this command name (repeatable)
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,
    /// Only sockets with this local or remote port (repeatable)
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Only segments recorded on this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only processes in this cgroup or below it, e.g. /system.slice/docker-<id>.scope (repeatable)
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroups: Vec<String>,
    /// Only sockets of this transport protocol (repeatable)
    #[arg(long = "protocol", value_enum, value_name = "PROTOCOL")]
    pub protocols: Vec<Protocol>,
    /// Only processes in this container: its id or a prefix of it (docker ps' 12 digits), or a systemd unit (repeatable)
    #[arg(long = "container", value_name = "ID")]
    pub containers: Vec<String>,
    /// Split rows by this key [default: pid; for calls: probe only]
    #[arg(long, value_enum)]
    pub by: Option<By>,
    /// Bucket width for per-interval rows (1s, 10s, 1m)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Show times in the local time zone instead of UTC
    #[arg(long)]
    pub local: bool,
    /// Fail (exit 1) if the capture lost events in the analyzed range
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// As the `protocol` column writes it.
    fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 100ms, 1s, 5m)"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

impl Common {
    /// Filters with --from/--to resolved against the trace start.
    pub fn filters(&self, trace_start_ns: i64) -> Result<Filters> {
        let from_ns = self.from.as_ref().map(|b| b.resolve(trace_start_ns));
        let to_ns = self.to.as_ref().map(|b| b.resolve(trace_start_ns));
        if let (Some(f), Some(t)) = (from_ns, to_ns) {
            if f >= t {
                bail!("--from must be before --to");
            }
        }
        Ok(Filters {
            from_ns,
            to_ns,
            pids: self.pids.clone(),
            comms: self.comms.clone(),
            ports: self.ports.clone(),
            hosts: self.hosts.clone(),
            cgroups: self.cgroups.clone(),
            containers: self.containers.clone(),
            protocols: self.protocols.iter().map(|p| p.name().to_string()).collect(),
        })
    }

    pub fn interval_ns(&self) -> i64 {
        self.interval.as_nanos().min(i64::MAX as u128) as i64
    }
}
