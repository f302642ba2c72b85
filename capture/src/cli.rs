//! Command-line flags, turned into a validated [`Config`] before any work starts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use crate::calls::{self, AppProbe, ProbeArg};

const EXAMPLES: &str = "\
Examples:
  # Record everything for 30 seconds
  netrec-capture --output /var/tmp/netrec --duration 30s

  # One MySQL server, printing per-second traffic while recording
  netrec-capture -o /var/tmp/netrec --pid $(pidof mariadbd) --live

  # Flight recorder: 1-minute segments, keep at most 2 GiB
  netrec-capture -o /var/tmp/netrec --port 3306 --rotate-seconds 60 --max-disk 2GiB

  # A flood of short MySQL connections: every login, next to the TCP traffic
  netrec-capture -o /var/tmp/netrec --uprobe mariadbd:login_connection \
      --uprobe mariadbd:dispatch_command --duration 1m

  # PostgreSQL query latency from its USDT probes (query__start + query__done)
  netrec-capture -o /var/tmp/netrec --usdt /usr/lib/postgresql/15/bin/postgres:postgresql:query

  # A kernel before 6.3: auto uses fentry (else kprobes) for bytes; force kprobes
  netrec-capture -o /var/tmp/netrec --attach kprobe --duration 1m

  # What the capture costs, kernel side included (netrec-analyze info shows it)
  netrec-capture -o /var/tmp/netrec --bpf-stats --duration 1m

  # A loaded host: bytes and calls per socket and second, counted in the kernel
  netrec-capture -o /var/tmp/netrec --data 1s --duration 10m

Application probes: FUNCTION is a plain name (login_connection), a C++ name
without or with parameters (THD::init, login_connection(THD*)) or the symbol
as in the binary (_Z16login_connectionP3THD). --usdt PROVIDER:BASE records a
start/done pair as one call when BASE__start and BASE__done (or _start/_done,
__begin/__end, _entry/_return) exist; --usdt-pair names the two probes
explicitly. Rows are named by the function or provider:name; prefix NAME= to
choose. --pid and --comm limit these probes too; --port does not apply.

Data recording: --data calls (the default) writes a row per send and receive.
Past --data-budget events per second, or when the ring buffer nears full, it
switches to per-socket aggregates (one send and one recv row per socket and
second, `samples` = calls) until the rate is back under half the budget;
bytes stay exact, and every switch is in the segment's metadata (netrec-analyze
info shows them). --data INTERVAL (1s, 100ms) always records aggregates.

Segments are written as <dir>/netrec-<host>-<start>-<n>.parquet; a segment being
written is named *.parquet.inprogress and renamed when complete. Stop with Ctrl-C or
SIGTERM: the current segment is finalized and the exit status is 0.

Exit status: 0 success, 2 error (bad flag, missing privilege, unwritable output).";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rtt {
    /// Per socket and second, one row per srtt bucket (1/32 of a power of two wide): its first value and count
    Buckets,
    /// One row per srtt change
    All,
}

/// How send and receive are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    /// A row per call, aggregates of 1 s past the budget.
    Calls,
    /// Always aggregates: per socket and interval of this length.
    Aggregates(Duration),
}

impl Data {
    pub fn interval(self) -> Duration {
        match self {
            Data::Calls => Duration::from_secs(1),
            Data::Aggregates(d) => d,
        }
    }

    /// As metadata and --help name it.
    pub fn describe(self) -> String {
        match self {
            Data::Calls => "calls".into(),
            Data::Aggregates(d) => humantime::format_duration(d).to_string(),
        }
    }
}

fn parse_data(s: &str) -> Result<Data, String> {
    if s == "calls" {
        return Ok(Data::Calls);
    }
    let d = humantime::parse_duration(s).map_err(|_| format!("{s:?}: expected calls or an interval (1s, 100ms)"))?;
    // Whole milliseconds, so intervals tile the wall clock's seconds; at most
    // a minute, so one socket's calls in an interval fit the u32 `samples`.
    if d < Duration::from_millis(1) || d > Duration::from_secs(60) || d.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!("{s:?}: an interval must be whole milliseconds between 1ms and 60s"));
    }
    if 1_000_000_000 % d.as_nanos() != 0 && d.as_nanos() % 1_000_000_000 != 0 {
        return Err(format!("{s:?}: an interval must divide a second (100ms, 250ms) or be whole seconds"));
    }
    Ok(Data::Aggregates(d))
}

/// Where segments go under --output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// All in the output directory
    Flat,
    /// host=<host>/date=<YYYY-MM-DD>/ below it: a partitioned dataset for Spark, Trino, DuckDB
    Hive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Attach {
    /// Best mechanism this kernel offers, probe by probe
    Auto,
    /// fentry/fexit programs
    Fentry,
    /// kprobe/kretprobe programs
    Kprobe,
    /// tracepoints and raw tracepoints
    Tracepoint,
}

/// Record TCP traffic, connection states, RTT and process events with eBPF into
/// zstd-compressed Parquet segments.
#[derive(Debug, Parser)]
#[command(name = "netrec-capture", version, after_help = EXAMPLES)]
pub struct Args {
    /// Directory for the segments (created with mode 0700 if missing)
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,

    /// Stop after this long (30s, 5m, 1h); default: until Ctrl-C or SIGTERM
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Only processes with this pid (repeatable)
    #[arg(short, long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// Only processes whose command name is exactly NAME (at most 15 bytes)
    #[arg(short, long, value_name = "NAME")]
    pub comm: Option<String>,

    /// Only sockets whose local or remote port is PORT (repeatable)
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,

    /// Only processes in this cgroup v2 directory or below it
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// Start a new segment after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub rotate_seconds: u64,

    /// Segment directories: flat, or hive (host=<host>/date=<YYYY-MM-DD>/, the capture's manifest at the top)
    #[arg(long, value_enum, default_value_t = Layout::Flat)]
    pub layout: Layout,

    /// Start a new segment once the current one reaches this size (64MiB, 1GB)
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_bytes)]
    pub rotate_size: u64,

    /// Delete the oldest segments of this capture to stay under this total size
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub max_disk: Option<u64>,

    /// Keep at most this many segments of this capture, deleting the oldest
    #[arg(long, value_name = "N")]
    pub max_segments: Option<usize>,

    /// Size of the kernel ring buffer: a power of two, at least 4KiB (8MiB
    /// is 8x what a full-rate loopback stream needs; see BENCHMARKS.md)
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_bytes)]
    pub ringbuf_size: u64,

    /// Sockets the kernel tracks at once to attribute events to their owner
    #[arg(long, value_name = "N", default_value_t = 131072)]
    pub max_sockets: u32,

    /// Events per Arrow batch handed to the segment writer
    #[arg(long, value_name = "N", default_value_t = 16384)]
    pub batch_rows: usize,

    /// Record every call of FUNCTION in BINARY (path or name in PATH): entry
    /// time, duration, first 3 integer arguments, return value (repeatable)
    #[arg(long = "uprobe", value_name = "[NAME=]BINARY:FUNCTION")]
    pub uprobes: Vec<String>,

    /// Record every firing of a USDT probe with its first 3 arguments; a base
    /// NAME whose NAME__start and NAME__done exist is recorded as calls (repeatable)
    #[arg(long = "usdt", value_name = "[NAME=]BINARY:PROVIDER:NAME")]
    pub usdts: Vec<String>,

    /// Record a USDT start probe and its done probe(s) as one call with a
    /// duration; several DONE probes are separated by commas (repeatable)
    #[arg(long = "usdt-pair", value_name = "[NAME=]BINARY:PROVIDER:START:DONE")]
    pub usdt_pairs: Vec<String>,

    /// Which kind of kernel hook to use; auto takes, probe by probe, a
    /// tracepoint, else fentry, else a kprobe (recorded in netrec.mechanisms)
    #[arg(long, value_enum, default_value_t = Attach::Auto)]
    pub attach: Attach,

    /// Print bytes sent and received per process every second while capturing
    #[arg(long)]
    pub live: bool,

    /// How RTT samples are recorded: buckets keeps percentiles within 1/32
    /// of all's with a fraction of the rows (on loopback srtt changes with
    /// nearly every segment)
    #[arg(long, value_enum, default_value_t = Rtt::Buckets)]
    pub rtt: Rtt,

    /// How sends and receives are recorded: calls (a row each, aggregates
    /// past --data-budget) or an interval such as 1s (always a row per
    /// socket, direction and interval, with the bytes and number of calls)
    #[arg(long, value_name = "calls|INTERVAL", default_value = "calls", value_parser = parse_data)]
    pub data: Data,

    /// With --data calls: send/recv events per second above which data is
    /// recorded as 1 s aggregates until the rate is under half of it; 0 never
    /// switches for the rate (a nearly full ring buffer still does)
    #[arg(long, value_name = "EVENTS_PER_SEC", default_value_t = 100_000)]
    pub data_budget: u64,

    /// Turn on the kernel's BPF run-time statistics while capturing (restored
    /// at exit), so each segment records its programs' run counts and times
    #[arg(long)]
    pub bpf_stats: bool,

    /// Print nothing but errors and lost-event warnings
    #[arg(short, long)]
    pub quiet: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 5m, 1h)"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    parse_size::parse_size(s).map_err(|e| format!("{e} (examples: 64MiB, 1GB, 4096)"))
}

fn is_cgroup2(path: &std::path::Path) -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC }
}

/// What a capture run does, every value checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub output: PathBuf,
    pub duration: Option<Duration>,
    pub pids: Vec<u32>,
    pub comm: Option<String>,
    pub ports: Vec<u16>,
    pub cgroup: Option<PathBuf>,
    pub rotate_every: Duration,
    pub layout: Layout,
    pub rotate_size: u64,
    pub max_disk: Option<u64>,
    pub max_segments: Option<usize>,
    pub ringbuf_size: u32,
    pub max_sockets: u32,
    pub batch_rows: usize,
    pub attach: Attach,
    /// Application probes; the index is the BPF cookie.
    pub probes: Vec<AppProbe>,
    pub live: bool,
    pub rtt: Rtt,
    pub data: Data,
    pub data_budget: u64,
    pub bpf_stats: bool,
    pub quiet: bool,
    pub command_line: Vec<String>,
}

impl Config {
    pub fn from_args(args: Args, command_line: Vec<String>) -> Result<Config> {
        for pid in &args.pids {
            if !PathBuf::from(format!("/proc/{pid}")).exists() {
                bail!("--pid {pid}: no such process");
            }
        }
        if let Some(comm) = &args.comm {
            if comm.is_empty() || comm.len() > 15 {
                bail!("--comm {comm:?}: must be 1 to 15 bytes (the kernel keeps 15 bytes of a command name)");
            }
        }
        if let Some(cg) = &args.cgroup {
            let meta = std::fs::metadata(cg).with_context(|| format!("--cgroup {}", cg.display()))?;
            if !meta.is_dir() || !is_cgroup2(cg) {
                bail!("--cgroup {}: not a cgroup v2 directory (expected something under /sys/fs/cgroup)", cg.display());
            }
        }
        if args.rotate_seconds == 0 {
            bail!("--rotate-seconds: must be at least 1");
        }
        if args.rotate_size < 4096 {
            bail!("--rotate-size {}: must be at least 4KiB", args.rotate_size);
        }
        if args.max_segments == Some(0) {
            bail!("--max-segments: must be at least 1");
        }
        if let Some(max) = args.max_disk {
            if max < args.rotate_size {
                bail!("--max-disk {max}: must be at least --rotate-size ({})", args.rotate_size);
            }
        }
        let rb = args.ringbuf_size;
        if !rb.is_power_of_two() || !(4096..=(1 << 30)).contains(&rb) {
            bail!("--ringbuf-size {rb}: must be a power of two between 4KiB and 1GiB");
        }
        if args.max_sockets < 1024 {
            bail!("--max-sockets {}: must be at least 1024", args.max_sockets);
        }
        if args.batch_rows == 0 || args.batch_rows > 1 << 24 {
            bail!("--batch-rows {}: must be between 1 and 16777216", args.batch_rows);
        }
        let mut probe_args = Vec::new();
        for (flag, texts) in [("--uprobe", &args.uprobes), ("--usdt", &args.usdts), ("--usdt-pair", &args.usdt_pairs)] {
            for text in texts {
                probe_args.push(ProbeArg::parse(flag, text)?);
            }
        }
        let probes = calls::resolve(&probe_args)?;
        Ok(Config {
            output: args.output,
            duration: args.duration,
            pids: args.pids,
            comm: args.comm,
            ports: args.ports,
            cgroup: args.cgroup,
            rotate_every: Duration::from_secs(args.rotate_seconds),
            layout: args.layout,
            rotate_size: args.rotate_size,
            max_disk: args.max_disk,
            max_segments: args.max_segments,
            ringbuf_size: rb as u32,
            max_sockets: args.max_sockets,
            batch_rows: args.batch_rows,
            attach: args.attach,
            probes,
            live: args.live,
            rtt: args.rtt,
            data: args.data,
            data_budget: args.data_budget,
            bpf_stats: args.bpf_stats,
            quiet: args.quiet,
            command_line,
        })
    }

    /// The filters as recorded in segment metadata.
    pub fn filters_json(&self) -> serde_json::Value {
        serde_json::json!({
            "pid": self.pids,
            "comm": self.comm,
            "port": self.ports,
            "cgroup": self.cgroup.as_ref().map(|p| p.display().to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[&str]) -> Result<Config> {
        let mut argv = vec!["netrec-capture", "--output", "/tmp/x"];
        argv.extend_from_slice(extra);
        let args = Args::try_parse_from(&argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        Config::from_args(args, vec![])
    }

    #[test]
    fn defaults_are_valid() {
        let c = config(&[]).unwrap();
        assert_eq!(c.ringbuf_size, 8 << 20);
        assert_eq!(c.rotate_every, Duration::from_secs(60));
        assert_eq!(c.rotate_size, 256 << 20);
    }

    #[test]
    fn durations_and_sizes_parse() {
        let c = config(&["--duration", "5m", "--rotate-size", "1MiB", "--max-disk", "10MB"]).unwrap();
        assert_eq!(c.duration, Some(Duration::from_secs(300)));
        assert_eq!(c.rotate_size, 1 << 20);
        assert_eq!(c.max_disk, Some(10_000_000));
    }

    #[test]
    fn data_modes_parse() {
        assert_eq!(config(&[]).unwrap().data, Data::Calls);
        assert_eq!(config(&["--data", "1s"]).unwrap().data, Data::Aggregates(Duration::from_secs(1)));
        assert_eq!(config(&["--data", "250ms"]).unwrap().data.interval(), Duration::from_millis(250));
        assert_eq!(config(&["--data", "5s"]).unwrap().data.describe(), "5s");
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (flags, needle) in [
            (&["--ringbuf-size", "3000"][..], "--ringbuf-size"),
            (&["--comm", "a-name-longer-than-15"], "--comm"),
            (&["--rotate-seconds", "0"], "--rotate-seconds"),
            (&["--max-segments", "0"], "--max-segments"),
            (&["--duration", "soon"], "--duration"),
            (&["--pid", "4294967295"], "--pid"),
            (&["--cgroup", "/nonexistent"], "--cgroup"),
            (&["--data", "often"], "--data"),
            (&["--data", "0s"], "--data"),
            (&["--data", "300ms"], "--data"),
            (&["--data", "2m"], "--data"),
        ] {
            let err = format!("{:#}", config(flags).unwrap_err());
            assert!(err.contains(needle), "{flags:?}: {err}");
        }
    }
}
