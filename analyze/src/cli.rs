//! Command-line flags, turned into a validated analysis before any work.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

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
  netrec-analyze diff baseline/ candidate/ --per dispatch_command --format markdown  # CI gate
  netrec-analyze check candidate/ --rules netrec-rules.toml                          # CI budgets
  netrec-analyze pack /var/tmp/netrec -o ticket.tar --key-file key --new-key        # for a support ticket
  netrec-analyze report ticket.tar -o report.html                                   # open offline
  netrec-analyze replay samples/nginx-keepalive --kind state                        # event by event
  netrec-analyze replay --follow /var/tmp/netrec --view netio                       # a running capture

Inputs are segment files, directories (searched recursively) or globs.
Exit status: 0 success; 1 --strict found lost events, diff found a regression,
check found a violation; 2 error.";

#[derive(Debug, Parser)]
#[command(name = "netrec-analyze", version, after_help = EXAMPLES)]
/// Analyze netrec capture segments offline: per-second NetIO, connection churn, latency;
/// compare runs in CI; make reports and redacted bundles for support tickets.
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
        /// Split rows by this key
        #[arg(long, value_parser = by_parser(SOCKET_KEYS), default_value = "pid")]
        by: By,
        /// Keep only the N busiest keys (by total bytes over the range)
        #[arg(long, value_name = "N")]
        top: Option<usize>,
    },
    /// Connections opened, closed, failed, reset and short-lived per second; lifetime histogram
    Churn {
        #[command(flatten)]
        common: Common,
        /// Split rows by this key
        #[arg(long, value_parser = by_parser(SOCKET_KEYS), default_value = "pid")]
        by: By,
        /// A connection closed within this long of its open is short-lived
        #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
        short: std::time::Duration,
    },
    /// Connect latency, server handshake time, RTT and application call durations:
    /// log2 histograms and exact percentiles
    Latency {
        #[command(flatten)]
        common: Common,
        /// Split rows by this key (calls have no ports: by lport, rport or raddr their rows have none)
        #[arg(long, value_parser = by_parser(SOCKET_KEYS), default_value = "pid")]
        by: By,
    },
    /// Application calls (--uprobe, --usdt) per second per probe, next to the TCP
    /// connections the same processes opened; totals and peaks per probe
    Calls {
        #[command(flatten)]
        common: Common,
        /// Split rows by the probe alone, or by probe and this key
        #[arg(long, value_parser = by_parser(CALL_KEYS), default_value = "probe")]
        by: By,
    },
    /// Compare two traces key by key: totals, churn, calls and latency, with verdicts
    #[command(after_help = crate::diff::HELP)]
    Diff(crate::diff::DiffArgs),
    /// Check a trace against absolute budgets from a TOML rules file
    #[command(after_help = crate::check::HELP)]
    Check(crate::check::CheckArgs),
    /// Check that a trace or bundle is whole: checksums, footers, gaps, overlaps, losses
    #[command(after_help = crate::validate::HELP)]
    Validate(crate::validate::ValidateArgs),
    /// Write a copy of a trace with addresses (Crypto-PAn) and names (keyed hashes) replaced
    #[command(after_help = crate::redact::HELP)]
    Redact(crate::redact::RedactArgs),
    /// Write one self-contained HTML report of a trace, to open offline in any browser
    #[command(after_help = crate::report::HELP)]
    Report(crate::report::ReportArgs),
    /// Every event in time order, one line each (or per-second views), at the recorded pace if asked;
    /// --follow a capture still running
    #[command(after_help = crate::replay::HELP)]
    Replay(crate::replay::ReplayArgs),
    /// Pack a trace (redacted if asked), its report and a manifest into one archive for a ticket
    #[command(after_help = crate::pack::HELP)]
    Pack(crate::pack::PackArgs),
}

/// Keys of socket metrics (netio, churn, latency).
pub const SOCKET_KEYS: &[By] =
    &[By::Pid, By::Comm, By::Conn, By::Lport, By::Rport, By::Raddr, By::Host, By::Cgroup, By::Container, By::Pod];
/// Keys of application calls.
pub const CALL_KEYS: &[By] = &[By::Probe, By::Pid, By::Comm, By::Host];
/// Keys that mean the same in two runs (pids and sockets do not).
pub const DIFF_KEYS: &[By] = &[By::Comm, By::Probe, By::Lport, By::Rport, By::Raddr, By::Host];

/// `--by`, with only the keys a subcommand splits by: clap rejects the rest
/// and lists these.
pub fn by_parser(allowed: &'static [By]) -> impl TypedValueParser<Value = By> {
    PossibleValuesParser::new(allowed.iter().filter_map(|b| b.to_possible_value()))
        .map(|s| By::from_str(&s, true).expect("clap checked it is one of the possible values"))
}

impl Command {
    /// The trace inputs of a subcommand that reads one trace.
    pub fn inputs(&self) -> Vec<PathBuf> {
        match self {
            Command::Info(c)
            | Command::Latency { common: c, .. }
            | Command::Calls { common: c, .. }
            | Command::Netio { common: c, .. }
            | Command::Churn { common: c, .. } => c.inputs.clone(),
            Command::Diff(d) => vec![d.base.clone(), d.candidate.clone()],
            Command::Check(c) => c.inputs.clone(),
            Command::Validate(v) => v.inputs.clone(),
            Command::Redact(r) => r.inputs.clone(),
            Command::Report(r) => r.inputs.clone(),
            Command::Pack(p) => p.inputs.clone(),
            Command::Replay(r) => r.inputs.iter().cloned().chain(r.follow.clone()).collect(),
        }
    }
}

#[derive(Debug, Args)]
pub struct Common {
    /// Segment files, directories or globs
    #[arg(required = true, value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub selection: Selection,
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

/// Which events an analysis reads: time range, processes, sockets, hosts.
#[derive(Debug, Args, Clone, Default)]
pub struct Selection {
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

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 100ms, 1s, 5m)"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

impl Common {
    pub fn interval_ns(&self) -> i64 {
        self.interval.as_nanos().min(i64::MAX as u128) as i64
    }
}

impl Selection {
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
}
