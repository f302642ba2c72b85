//! What the capture itself costs, measured per segment and written into it:
//! the process's CPU time and peak RSS, and, when the kernel's BPF
//! statistics are on, each program's run count and run time.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Result};
use libbpf_rs::libbpf_sys;

/// Turns the kernel's BPF run-time statistics on for as long as it lives;
/// the kernel turns them off again when its fd closes, however we exit.
pub struct BpfStats(#[allow(dead_code)] OwnedFd);

impl BpfStats {
    pub fn enable() -> Result<BpfStats> {
        // SAFETY: a plain syscall wrapper; a non-negative result is a new fd we own.
        let fd = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
        if fd < 0 {
            bail!(
                "--bpf-stats: the kernel refused to enable BPF statistics: {}",
                std::io::Error::from_raw_os_error(-fd)
            );
        }
        // SAFETY: see above.
        Ok(BpfStats(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

/// Whether BPF statistics are on (by us or by `kernel.bpf_stats_enabled`).
fn stats_enabled_sysctl() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|s| s.trim() == "1")
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgStats {
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

fn prog_stats(fd: &OwnedFd) -> Option<ProgStats> {
    // SAFETY: bpf_prog_info is plain data; the kernel fills at most `len` bytes.
    let mut info: libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    let rc = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    (rc == 0).then_some(ProgStats { run_cnt: info.run_cnt, run_time_ns: info.run_time_ns })
}

struct Usage {
    user_ns: u64,
    sys_ns: u64,
}

fn usage() -> Usage {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    Usage { user_ns: ns(ru.ru_utime), sys_ns: ns(ru.ru_stime) }
}

/// The process's peak resident set (VmHWM) in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Restarts the peak-RSS mark, so each segment reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// One segment's cost.
#[derive(Debug, Clone, Default)]
pub struct Cost {
    pub cpu_user_ns: u64,
    pub cpu_sys_ns: u64,
    pub peak_rss_bytes: u64,
    /// Per program; empty when BPF statistics were off.
    pub programs: BTreeMap<String, ProgStats>,
}

impl Cost {
    pub fn programs_json(&self) -> String {
        let m: serde_json::Map<String, serde_json::Value> = self
            .programs
            .iter()
            .map(|(name, s)| (name.clone(), serde_json::json!({"run_cnt": s.run_cnt, "run_time_ns": s.run_time_ns})))
            .collect();
        serde_json::Value::Object(m).to_string()
    }
}

/// Measures from one segment's opening to its end.
pub struct Meter {
    programs: Vec<(String, OwnedFd)>,
    start: Usage,
    start_progs: Vec<ProgStats>,
}

impl Meter {
    pub fn new() -> Self {
        reset_peak_rss();
        Meter { programs: Vec::new(), start: usage(), start_progs: Vec::new() }
    }

    /// The loaded programs, once attached; their counts so far belong to the open segment.
    pub fn watch(&mut self, programs: Vec<(String, OwnedFd)>) {
        self.start_progs = vec![ProgStats::default(); programs.len()];
        self.programs = programs;
    }

    /// The cost since the last call (or since `new`), and a new start.
    pub fn segment_done(&mut self) -> Cost {
        let now = usage();
        let mut cost = Cost {
            cpu_user_ns: now.user_ns - self.start.user_ns,
            cpu_sys_ns: now.sys_ns - self.start.sys_ns,
            peak_rss_bytes: peak_rss(),
            programs: BTreeMap::new(),
        };
        let stats_on = stats_enabled_sysctl();
        for (i, (name, fd)) in self.programs.iter().enumerate() {
            let Some(s) = prog_stats(fd) else { continue };
            let before = self.start_progs[i];
            if stats_on || s.run_time_ns > before.run_time_ns {
                let entry = cost.programs.entry(name.clone()).or_default();
                entry.run_cnt += s.run_cnt - before.run_cnt;
                entry.run_time_ns += s.run_time_ns - before.run_time_ns;
            }
            self.start_progs[i] = s;
        }
        self.start = now;
        reset_peak_rss();
        cost
    }
}
