//! Loading the BPF object, choosing and attaching its programs, reading its counters.

pub mod calls;
pub mod hooks;
mod libbpf_log;
pub mod listeners;
pub mod tracefs;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{anyhow, bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject};

use crate::abi::skel::{self, NetrecSkel, NetrecSkelBuilder};
use crate::abi::{Kind, PerKind, RawKind};
use crate::cli::{Config, Data, Rtt};
use skel::types::{counter, data_count, data_key, data_switch, rtt_count, rtt_key};

/// Kernel-side counters, cumulative since load.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub lost: PerKind,
    pub untracked: u64,
}

impl Counters {
    /// What was counted since `earlier`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut lost = PerKind::default();
        for (i, v) in lost.iter_mut().enumerate() {
            *v = self.lost[i] - earlier.lost[i];
        }
        Counters { lost, untracked: self.untracked - earlier.untracked }
    }
}

pub struct Probes<'obj> {
    pub skel: NetrecSkel<'obj>,
    links: Vec<Link>,
    /// Every attached program by name, for its run statistics.
    pub programs: Vec<(String, OwnedFd)>,
    pub mechanisms: serde_json::Value,
    /// The next socket id to hand the kernel (its `sock_ids` queue).
    next_sock_id: u64,
    tracefs: Option<tracefs::TracefsGuard>,
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// The capabilities missing for loading tracing programs, if any are.
fn lacking_capabilities() -> Option<String> {
    let eff = effective_capabilities();
    let has = |cap: u32| eff & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) {
        return None;
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .iter()
        .filter(|(c, _)| !has(*c))
        .map(|(_, n)| *n)
        .collect();
    (!missing.is_empty()).then(|| format!("missing capability {} (or run as root)", missing.join(" and ")))
}

fn set_filters(skel: &NetrecSkel<'_>, cfg: &Config) -> Result<()> {
    for pid in &cfg.pids {
        skel.maps.targ_pids.update(&pid.to_ne_bytes(), &[1], MapFlags::ANY).context("filling the --pid filter map")?;
    }
    for port in &cfg.ports {
        skel.maps
            .targ_ports
            .update(&port.to_ne_bytes(), &[1], MapFlags::ANY)
            .context("filling the --port filter map")?;
    }
    if let Some(path) = &cfg.cgroup {
        let dir = std::fs::File::open(path).with_context(|| format!("--cgroup {}", path.display()))?;
        let fd = dir.as_raw_fd() as u32;
        skel.maps
            .targ_cgroup
            .update(&0u32.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .with_context(|| format!("--cgroup {}: not a cgroup v2 directory", path.display()))?;
    }
    Ok(())
}

/// Records per CPU between wake-ups of the reader: about 1/64 of the ring
/// in small data records, a power of two as the kernel side needs. The
/// reader also drains on a timer, so this only bounds how full a burst gets.
fn wakeup_records(ringbuf_size: u32) -> u64 {
    const SMALL_RECORD: u64 = 32 + 8; // netrec_data_event + the ring's header
    let n = (ringbuf_size as u64 / 64 / SMALL_RECORD).max(1);
    1 << (63 - n.leading_zeros()) // the power of two at or below n
}

/// Why per-call data recording is switched to aggregates (bpf/netrec.h's
/// `enum data_switch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSwitch {
    None,
    Budget,
    RingNearFull,
    RingFull,
}

impl DataSwitch {
    fn from_raw(raw: u32) -> DataSwitch {
        match data_switch(raw) {
            data_switch::DATA_SWITCH_NONE => DataSwitch::None,
            data_switch::DATA_SWITCH_BUDGET => DataSwitch::Budget,
            data_switch::DATA_SWITCH_RING_NEAR_FULL => DataSwitch::RingNearFull,
            _ => DataSwitch::RingFull,
        }
    }

    fn raw(self) -> u32 {
        match self {
            DataSwitch::None => data_switch::DATA_SWITCH_NONE.0,
            DataSwitch::Budget => data_switch::DATA_SWITCH_BUDGET.0,
            DataSwitch::RingNearFull => data_switch::DATA_SWITCH_RING_NEAR_FULL.0,
            DataSwitch::RingFull => data_switch::DATA_SWITCH_RING_FULL.0,
        }
    }
}

/// Takes and deletes the entries of a table the kernel no longer adds to
/// (`past` says which). One batch read and one batch delete per drain: a
/// syscall per entry cost about 1 µs each with tens of thousands of RTT
/// entries a second. `everything` (at stop) walks the table key by key
/// afterwards too, for anything the batch read left.
fn drain<K, V>(map: &libbpf_rs::MapMut, what: &str, everything: bool, past: impl Fn(&K) -> bool) -> Result<Vec<(K, V)>>
where
    K: plain::Plain + Default,
    V: plain::Plain + Default,
{
    let decode = |key: &[u8], value: &[u8]| -> Option<(K, V)> {
        let (mut k, mut v) = (K::default(), V::default());
        (plain::copy_from_bytes(&mut k, key).is_ok() && plain::copy_from_bytes(&mut v, value).is_ok()).then_some((k, v))
    };
    let mut out = Vec::new();
    let mut taken: Vec<u8> = Vec::new();
    let batch = map.lookup_batch(4096, MapFlags::ANY, MapFlags::ANY).with_context(|| format!("reading {what}"))?;
    for (key, value) in batch {
        if let Some((k, v)) = decode(&key, &value).filter(|(k, _)| past(k)) {
            taken.extend_from_slice(&key);
            out.push((k, v));
        }
    }
    let n = (taken.len() / map.key_size() as usize) as u32;
    if n > 0 {
        map.delete_batch(&taken, n, MapFlags::ANY, MapFlags::ANY).with_context(|| format!("deleting {what}"))?;
    }
    if everything {
        let keys: Vec<Vec<u8>> = map.keys().collect();
        for key in keys {
            let Some(value) = map.lookup(&key, MapFlags::ANY).with_context(|| format!("reading {what}"))? else {
                continue;
            };
            if let Some(kv) = decode(&key, &value) {
                map.delete(&key).with_context(|| format!("deleting {what}"))?;
                out.push(kv);
            }
        }
    }
    Ok(out)
}

/// Opens, configures, loads and attaches every probe.
/// `clock_offset_ns` (wall clock minus CLOCK_BOOTTIME) aligns the kernel's
/// data intervals with the wall clock's seconds.
pub fn start<'obj>(
    open_object: &'obj mut MaybeUninit<OpenObject>,
    cfg: &Config,
    clock_offset_ns: i64,
) -> Result<Probes<'obj>> {
    // Say so before mounting tracefs fails for the same reason.
    if let Some(missing) = lacking_capabilities() {
        bail!("the kernel will refuse to load the BPF programs: {missing}");
    }
    // Syscall tracepoints (splice) and old kernels' kprobes need tracefs.
    let tracefs = tracefs::ensure_mounted()?;
    let kernel = hooks::Kernel::inspect(tracefs::events())?;
    let plan = hooks::plan(cfg.attach, &kernel)?;
    libbpf_log::capture();

    let mut open = NetrecSkelBuilder::default().open(open_object).context("opening the BPF object")?;
    for p in hooks::managed() {
        (p.prog.open)(&mut open.progs).set_autoload(plan.loads(p.name()));
    }
    // Application-call programs only when asked for: the uprobe ones read
    // their BPF cookie, a helper kernels before 5.15 refuse to load.
    let uprobes = cfg.probes.iter().any(|p| matches!(p.target, crate::calls::Target::Function { .. }));
    let usdts = cfg.probes.iter().any(|p| matches!(p.target, crate::calls::Target::Usdt { .. }));
    if uprobes && !kernel.cookies {
        bail!(
            "--uprobe: this kernel ({}) has no BPF cookies (Linux 5.15), which tell one uprobe from another; --usdt probes work here",
            kernel.release
        );
    }
    let p = &mut open.progs;
    for prog in [&mut p.call_entry, &mut p.call_exit] {
        prog.set_autoload(uprobes);
    }
    for prog in [&mut p.usdt_fire, &mut p.usdt_start, &mut p.usdt_done] {
        prog.set_autoload(usdts);
    }
    open.maps.events.set_max_entries(cfg.ringbuf_size).context("sizing the ring buffer")?;
    open.maps.socks.set_max_entries(cfg.max_sockets).context("sizing the socket table")?;
    // Entries live about two intervals; half the socket table moving data in both.
    open.maps.data_counts.set_max_entries(cfg.max_sockets / 2).context("sizing the data aggregate table")?;
    let rodata = open.maps.rodata_data.as_deref_mut().ok_or_else(|| anyhow!("BPF .rodata is not mmapped"))?;
    rodata.filter_pid = !cfg.pids.is_empty();
    rodata.filter_port = !cfg.ports.is_empty();
    rodata.filter_cgroup = cfg.cgroup.is_some();
    if let Some(comm) = &cfg.comm {
        rodata.filter_comm = true;
        for (dst, src) in rodata.targ_comm.iter_mut().zip(comm.bytes()) {
            *dst = src as i8;
        }
    }
    rodata.wakeup_records = wakeup_records(cfg.ringbuf_size);
    rodata.recvmsg_nargs = plan.recvmsg_nargs;
    rodata.kprobe_counts_splice = plan.kprobe_counts_splice;
    rodata.rtt_buckets = cfg.rtt == Rtt::Buckets;
    rodata.data_always_aggregated = matches!(cfg.data, Data::Aggregates(_));
    rodata.data_interval_ns = cfg.data.interval().as_nanos() as u64;
    rodata.clock_offset_ns = clock_offset_ns as u64;

    // The capabilities were checked above: an EPERM now comes from a sysctl,
    // lockdown or the verifier, and libbpf's log says which.
    let mut skel = open.load().map_err(|e| {
        anyhow::Error::new(e).context(format!("loading the BPF programs; libbpf said:\n{}", libbpf_log::recent()))
    })?;
    set_filters(&skel, cfg)?;
    // Socket ids before the first program runs.
    let next_sock_id = refill_sock_ids(&skel.maps.sock_ids, 1)?;

    // Probe by probe in the plan's order; within a probe, return hooks
    // before entry hooks, so no call is seen entering but never leaving.
    let mut links = Vec::new();
    let mut attached: Vec<&str> = Vec::new();
    let mut prog_fds = Vec::new();
    let mut mechanisms = serde_json::Map::new();
    for (hook, programs) in &plan.hooks {
        let mut sections = Vec::new();
        for p in programs {
            let prog = (p.prog.loaded)(&mut skel.progs);
            sections.push(prog.section().to_string_lossy().into_owned());
            if attached.contains(&p.name()) {
                continue;
            }
            links.push(prog.attach().with_context(|| {
                format!(
                    "attaching {} ({} for {}; try another --attach); libbpf said:\n{}",
                    prog.section().to_string_lossy(),
                    hook.mechanism,
                    hook.probe,
                    libbpf_log::recent()
                )
            })?);
            attached.push(p.name());
            prog_fds
                .push((p.name().to_string(), prog.as_fd().try_clone_to_owned().context("duplicating a program fd")?));
        }
        mechanisms.insert(hook.probe.into(), format!("{}: {}", hook.mechanism, sections.join(", ")).into());
    }
    // After attaching, so a listen() in between is seen by one side or the other.
    listeners::seed(&skel.maps.listeners, cfg);
    links.extend(calls::attach(&mut skel, &cfg.probes, &cfg.pids)?);
    if !cfg.probes.is_empty() {
        mechanisms.insert("call".into(), "uprobe+uretprobe, usdt (netrec.probes)".into());
        let p = &skel.progs;
        let loaded = [
            (uprobes, &p.call_entry),
            (uprobes, &p.call_exit),
            (usdts, &p.usdt_fire),
            (usdts, &p.usdt_start),
            (usdts, &p.usdt_done),
        ];
        for (_, prog) in loaded.into_iter().filter(|(on, _)| *on) {
            let fd = prog.as_fd().try_clone_to_owned().context("duplicating a program fd")?;
            prog_fds.push((prog.name().to_string_lossy().into_owned(), fd));
        }
    }
    Ok(Probes {
        skel,
        links,
        programs: prog_fds,
        mechanisms: serde_json::Value::Object(mechanisms),
        next_sock_id,
        tracefs: Some(tracefs),
    })
}

/// Pushes fresh socket ids (`next`, `next + 1`, …) until the kernel's queue
/// is full; returns the next one still to hand out.
fn refill_sock_ids(queue: &libbpf_rs::MapMut, mut next: u64) -> Result<u64> {
    loop {
        match queue.update(&[], &next.to_ne_bytes(), MapFlags::ANY) {
            Ok(()) => next += 1,
            // Full (E2BIG): the ids taken since the last refill are back.
            Err(e) if e.kind() == libbpf_rs::ErrorKind::TooBig => return Ok(next),
            Err(e) => return Err(anyhow::Error::new(e).context("refilling the kernel's socket ids")),
        }
    }
}

impl Probes<'_> {
    /// Unmounts tracefs if this capture mounted it: attaching was its last use.
    pub fn release_tracefs(&mut self) {
        self.tracefs = None;
    }

    /// Gives the kernel fresh socket ids for those it took since the last call.
    pub fn refill_sock_ids(&mut self) -> Result<()> {
        self.next_sock_id = refill_sock_ids(&self.skel.maps.sock_ids, self.next_sock_id)?;
        Ok(())
    }

    /// Detaches every program, last attached first (entry probes before
    /// their return probes); the maps stay readable.
    pub fn detach(&mut self) {
        while self.links.pop().is_some() {}
    }

    /// Takes the kernel's RTT counts of seconds before `before_second`
    /// (CLOCK_BOOTTIME; None: all, after detaching), deleting them.
    pub fn drain_rtt(&self, before_second: Option<u64>) -> Result<Vec<(rtt_key, rtt_count)>> {
        let mut out: Vec<(rtt_key, rtt_count)> =
            drain(&self.skel.maps.rtt_counts, "RTT counts", before_second.is_none(), |k: &rtt_key| {
                before_second.is_none_or(|s| k.second < s)
            })?;
        out.sort_by_key(|(_, c)| c.ts);
        Ok(out)
    }

    /// Takes the kernel's data aggregates of intervals before `before`
    /// (interval numbers; None: all, after detaching), deleting them.
    pub fn drain_data(&self, before: Option<u64>) -> Result<Vec<(data_key, data_count)>> {
        let mut out: Vec<(data_key, data_count)> =
            drain(&self.skel.maps.data_counts, "data aggregates", before.is_none(), |k: &data_key| {
                before.is_none_or(|b| k.interval < b)
            })?;
        out.sort_by_key(|(k, c)| (k.interval, c.sock_id, k.pid));
        Ok(out)
    }

    /// Why per-call data recording is switched to aggregates now, if it is.
    pub fn data_switch(&self) -> DataSwitch {
        let bss = self.skel.maps.bss_data.as_deref().expect("the BPF .bss is mmapped");
        // SAFETY: a u32 in the mmapped .bss that the kernel side writes too.
        DataSwitch::from_raw(unsafe { std::ptr::read_volatile(&bss.data_aggregating) })
    }

    /// Switches per-call data recording to aggregates, or back.
    pub fn set_data_switch(&mut self, why: DataSwitch) {
        let bss = self.skel.maps.bss_data.as_deref_mut().expect("the BPF .bss is mmapped");
        // SAFETY: as in data_switch.
        unsafe { std::ptr::write_volatile(&mut bss.data_aggregating, why.raw()) };
    }

    /// Reads the kernel's loss counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let read = |idx: u32| -> Result<u64> {
            let per_cpu = self
                .skel
                .maps
                .counters
                .lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY)
                .context("reading the counters map")?
                .unwrap_or_default();
            Ok(per_cpu.iter().map(|v| u64::from_ne_bytes(v[..8].try_into().expect("u64 values"))).sum())
        };
        let mut c = Counters { untracked: read(counter::COUNTER_SOCK_UNTRACKED.0)?, ..Default::default() };
        for k in Kind::ALL {
            c.lost[k.index()] = read(counter::COUNTER_LOST_BASE.0 + k.raw())?;
        }
        // A call the kernel had no room to track is a lost call.
        c.lost[Kind::Call.index()] += read(counter::COUNTER_CALL_UNTRACKED.0)?;
        Ok(c)
    }
}
