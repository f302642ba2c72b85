//! Attaching the application probes through libbpf, and collecting the
//! calls still running when the capture stops.

use std::path::Path;

use anyhow::{anyhow, Result};
use libbpf_rs::{Link, MapCore, MapFlags, ProgramMut, UprobeOpts, UsdtOpts};

use super::libbpf_log;
use crate::abi::skel::types::{call_frame, call_frame_key, event_kind, netrec_call_event};
use crate::abi::skel::NetrecSkel;
use crate::calls::{AppProbe, Target};

/// libbpf's "any process".
const ALL_PROCESSES: i32 = -1;

fn attach_function(
    prog: &ProgramMut<'_>,
    pid: i32,
    binary: &Path,
    (symbol, offset): (&Option<String>, u64),
    cookie: u64,
    retprobe: bool,
) -> libbpf_rs::Result<Link> {
    let opts = UprobeOpts { func_name: symbol.clone(), cookie, retprobe, ..Default::default() };
    prog.attach_uprobe_with_opts(pid, binary, offset as usize, opts)
}

fn attach_usdt(
    prog: &ProgramMut<'_>,
    pid: i32,
    binary: &Path,
    provider: &str,
    name: &str,
    cookie: u64,
) -> libbpf_rs::Result<Link> {
    prog.attach_usdt_with_opts(pid, binary, provider, name, UsdtOpts { cookie, ..Default::default() })
}

/// Attaches every probe, once per --pid or once for all processes.
/// Return and done probes go first: a call that enters before its return
/// probe exists would otherwise look unfinished forever.
pub fn attach(skel: &mut NetrecSkel<'_>, probes: &[AppProbe], pids: &[u32]) -> Result<Vec<Link>> {
    let targets: Vec<i32> =
        if pids.is_empty() { vec![ALL_PROCESSES] } else { pids.iter().map(|&p| p as i32).collect() };
    let progs = &mut skel.progs;
    let mut links = Vec::new();
    for (cookie, probe) in probes.iter().enumerate() {
        let cookie = cookie as u64;
        let bin = probe.binary.as_path();
        let fail = |e: libbpf_rs::Error| {
            anyhow!(
                "{} {}: attaching failed: {e}; libbpf said:\n{}",
                probe.arg.flag,
                probe.arg.text,
                libbpf_log::recent()
            )
        };
        for &pid in &targets {
            match &probe.target {
                Target::Function { symbol, offset } => {
                    let at = (symbol, *offset);
                    links.push(attach_function(&progs.call_exit, pid, bin, at, cookie, true).map_err(fail)?);
                    links.push(attach_function(&progs.call_entry, pid, bin, at, cookie, false).map_err(fail)?);
                }
                Target::Usdt { provider, name } => {
                    links.push(attach_usdt(&progs.usdt_fire, pid, bin, provider, name, cookie).map_err(fail)?);
                }
                Target::UsdtPair { provider, start, done } => {
                    for d in done {
                        links.push(attach_usdt(&progs.usdt_done, pid, bin, provider, d, cookie).map_err(fail)?);
                    }
                    links.push(attach_usdt(&progs.usdt_start, pid, bin, provider, start, cookie).map_err(fail)?);
                }
            }
        }
    }
    Ok(links)
}

/// Calls that had entered but not returned, read after detaching: each
/// becomes a row without a duration.
pub fn unfinished(skel: &NetrecSkel<'_>) -> Result<Vec<netrec_call_event>> {
    let map = &skel.maps.call_frames;
    let mut out = Vec::new();
    for key in map.keys() {
        let Some(value) = map.lookup(&key, MapFlags::ANY).map_err(|e| anyhow!("reading calls in progress: {e}"))?
        else {
            continue; // deleted meanwhile
        };
        // Copies: the map's byte buffers carry no alignment guarantee.
        let (mut k, mut f) = (call_frame_key::default(), call_frame::default());
        if plain::copy_from_bytes(&mut k, &key).is_err() || plain::copy_from_bytes(&mut f, &value).is_err() {
            continue;
        }
        out.push(netrec_call_event {
            kind: event_kind::EVENT_CALL.0,
            pid: f.pid,
            tid: k.tid,
            probe: k.probe,
            ts_ns: f.ts_ns,
            args: f.args,
            depth: k.depth,
            finished: 0,
            comm: f.comm,
            ..Default::default()
        });
    }
    out.sort_by_key(|e| e.ts_ns);
    Ok(out)
}
