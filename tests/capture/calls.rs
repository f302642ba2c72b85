//! Application probes on a program built by the test, whose calls and
//! durations are known: tests/workloads/calls.c.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

use crate::support::*;

const MS: u64 = 1_000_000;

/// Compiles the workload into `dir` (gcc is on every machine these tests run on).
fn build_workload(dir: &Path) -> PathBuf {
    compile_c(&dir.join("calls_workload"), &["calls.c", "calls_twin.c"], &["-O0", "-g", "-pthread"])
}

/// A running workload: started, waiting for "go".
struct Workload {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    pid: u32,
}

impl Workload {
    fn start(bin: &Path) -> Workload {
        let mut child = Command::new(bin).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn workload");
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        Workload { child, stdin, lines, pid: first["pid"].as_u64().unwrap() as u32 }
    }

    /// Runs the plan; returns its own measurement of each call, once it holds.
    fn run(&mut self) -> Vec<Value> {
        writeln!(self.stdin.as_mut().unwrap(), "go").unwrap();
        let mut calls = Vec::new();
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if line == "holding" {
                return calls;
            }
            calls.push(serde_json::from_str(&line).unwrap());
        }
        panic!("the workload ended before holding");
    }

    fn release(mut self) {
        drop(self.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

/// Every call of work() from 5 threads, recursion 4 deep, a call still
/// running at stop: exact counts, each duration within the caller's own
/// measurement, exact depths, return values and arguments.
#[test]
fn calls_are_paired_per_thread_and_depth() {
    let _g = serial();
    let dir = tempdir();
    let bin = build_workload(dir.path());
    let out = dir.path().join("segments");
    let b = bin.to_str().unwrap();
    let (work, recurse, hold) = (format!("{b}:work"), format!("{b}:recurse"), format!("{b}:hold"));
    let cap = Capture::start(&out, &["--uprobe", &work, "--uprobe", &recurse, "--uprobe", &hold]);
    let mut w = Workload::start(&bin);
    let pid = w.pid;
    let own = w.run();
    let (status, _, stderr) = cap.stop();
    w.release();
    assert!(status.success(), "{stderr:?}");

    let segs = read_segments(&out);
    let rows: Vec<Row> = all_rows(&segs).into_iter().filter(|r| r.kind == "call" && r.pid == Some(pid)).collect();
    let of = |probe: &str| rows.iter().filter(|r| r.probe.as_deref() == Some(probe)).cloned().collect::<Vec<_>>();

    // work(): 10 x 10 ms and 3 x 40 ms on the main thread, 4 threads x 5 x 20 ms.
    let work_rows = of("work");
    let own_work: Vec<&Value> = own.iter().filter(|c| c["fn"] == "work").collect();
    assert_eq!(work_rows.len(), 33);
    assert_eq!(own_work.len(), 33);
    // Per thread and argument, in order, each traced duration lies inside
    // the caller's own measurement and within 2 ms of it (a busy CI machine
    // may preempt the caller between its clock read and the call).
    let mut traced: BTreeMap<(u32, i64), Vec<u64>> = BTreeMap::new();
    let mut sorted = work_rows.clone();
    sorted.sort_by_key(|r| r.ts_kernel_ns);
    for r in &sorted {
        assert_eq!(r.retval, Some(r.arg0.unwrap() * 2), "work(ms) returns ms * 2");
        assert_eq!(r.depth, Some(0));
        traced.entry((r.tid.unwrap(), r.arg0.unwrap())).or_default().push(r.duration_ns.unwrap());
    }
    let mut measured: BTreeMap<(u32, i64), Vec<u64>> = BTreeMap::new();
    for c in &own_work {
        measured
            .entry((c["tid"].as_u64().unwrap() as u32, c["arg"].as_i64().unwrap()))
            .or_default()
            .push(c["ns"].as_u64().unwrap());
    }
    assert_eq!(traced.keys().collect::<Vec<_>>(), measured.keys().collect::<Vec<_>>(), "same threads, same arguments");
    assert_eq!(traced.len(), 1 + 1 + 4, "main thread x 2 arguments, 4 worker threads");
    for (key, durations) in &traced {
        let mine = &measured[key];
        assert_eq!(durations.len(), mine.len(), "{key:?}");
        for (t, m) in durations.iter().zip(mine) {
            assert!(*t <= *m && *t + 2 * MS >= *m, "{key:?}: traced {t} ns, measured by the caller {m} ns");
            assert!(*t >= key.1 as u64 * MS, "{key:?}: {t} ns is shorter than the sleep");
        }
    }

    // recurse(3, 10): four nested calls, depth k lasting about (4 - k) x 10 ms.
    let mut rec = of("recurse");
    rec.sort_by_key(|r| r.depth);
    assert_eq!(rec.iter().map(|r| r.depth.unwrap()).collect::<Vec<_>>(), [0, 1, 2, 3]);
    // Bounds that hold however late a loaded machine wakes the sleeper: at
    // least its sleeps, and within its caller after the caller's own sleep.
    let outer = own.iter().find(|c| c["fn"] == "recurse").unwrap()["ns"].as_u64().unwrap();
    for (i, r) in rec.iter().enumerate() {
        let want = (4 - r.depth.unwrap() as u64) * 10 * MS;
        let d = r.duration_ns.unwrap();
        let within = if i == 0 { outer } else { rec[i - 1].duration_ns.unwrap() - 10 * MS };
        assert!(d >= want && d <= within, "depth {:?}: {d} ns, want at least {want} and at most {within}", r.depth);
        assert_eq!(r.retval, r.arg0, "recurse(d, ms) returns d");
        assert_eq!(r.arg0, Some(3 - r.depth.unwrap() as i64));
    }
    assert!(outer - rec[0].duration_ns.unwrap() < 2 * MS, "the outermost call as its caller measured it: {outer} ns");

    // hold() had not returned when the capture stopped.
    let held = of("hold");
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].duration_ns, held[0].retval), (None, None), "unfinished: no duration, no return value");

    // Probes and their addresses are in the metadata; nothing was lost.
    let probes: Vec<Value> = serde_json::from_str(&segs[0].metadata["netrec.probes"]).unwrap();
    assert_eq!(probes.iter().map(|p| p["probe"].as_str().unwrap()).collect::<Vec<_>>(), ["work", "recurse", "hold"]);
    assert!(probes.iter().all(|p| p["address"].as_str().unwrap().starts_with("0x") && p["binary"] == b));
    assert!(segs.iter().all(|s| s.metadata["netrec.lost_events"] == "0"));

    // The analyzer's percentiles: the median is a 20 ms call, the maximum a 40 ms one (+ 2 ms).
    let lat = analyze_json(&["latency", out.to_str().unwrap(), "--by", "comm"]);
    let work = lat.iter().find(|r| r["metric"] == "call:work").unwrap();
    assert_eq!(work["count"], 33);
    let p50 = work["p50_us"].as_u64().unwrap();
    assert!((20_000..22_000).contains(&p50), "median work() is a 20 ms call: {p50} us");
    let max = work["max_us"].as_u64().unwrap();
    assert!((40_000..42_000).contains(&max), "longest is a 40 ms call: {max} us");
}

/// --pid limits the probes to one of two identical processes; a static
/// function is probed by its address when its name is not unique.
#[test]
fn pid_filter_and_static_functions() {
    let _g = serial();
    let dir = tempdir();
    let bin = build_workload(dir.path());
    let out = dir.path().join("segments");
    let mut a = Workload::start(&bin);
    let mut b = Workload::start(&bin);
    let work = format!("{}:work", bin.display());
    // helper() in calls.c: its address from the symbol table, as the ambiguity error suggests.
    let nm = Command::new("nm").arg(&bin).output().unwrap();
    let helpers: Vec<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter(|l| l.ends_with(" t helper"))
        .map(|l| format!("0x{}", l.split(' ').next().unwrap().trim_start_matches('0')))
        .collect();
    assert_eq!(helpers.len(), 2);
    let helper = format!("{}:{}", bin.display(), helpers[0]);
    let pid = a.pid.to_string();
    let cap = Capture::start(&out, &["--pid", &pid, "--uprobe", &work, "--uprobe", &helper]);
    a.run();
    b.run();
    let (status, _, stderr) = cap.stop();
    let a_pid = a.pid;
    a.release();
    b.release();
    assert!(status.success(), "{stderr:?}");
    let rows: Vec<Row> = all_rows(&read_segments(&out)).into_iter().filter(|r| r.kind == "call").collect();
    assert_eq!(rows.iter().filter(|r| r.probe.as_deref() == Some("work")).count(), 33);
    assert!(rows.iter().all(|r| r.pid == Some(a_pid)), "only the --pid process");
    assert_eq!(rows.iter().filter(|r| r.probe.as_deref() == Some("helper")).count(), 1, "one helper() is called once");
}

/// Mistakes in probe flags: one line naming the flag, exit 2, before any
/// BPF is loaded and without leaving a segment behind.
#[test]
fn probe_flag_errors_are_one_line() {
    let dir = tempdir();
    let bin = build_workload(dir.path());
    let b = bin.display().to_string();
    let out = dir.path().join("never");
    for (flag, spec, needle) in [
        ("--uprobe", format!("{b}:wrok"), "did you mean: work".to_string()),
        ("--uprobe", format!("{b}:helper"), "helper is ambiguous".into()),
        ("--uprobe", format!("{b}:0x1"), "no function starts at 0x1".into()),
        ("--uprobe", "no-such-binary-here:main".into(), "not in PATH".into()),
        ("--uprobe", "/etc/hostname:main".into(), "not a 64-bit ELF".into()),
        ("--uprobe", b.clone(), "expected [NAME=]BINARY:FUNCTION".into()),
        ("--usdt", format!("{b}:prov:name"), "has no USDT probes".into()),
        ("--usdt-pair", format!("{b}:prov:start"), "expected [NAME=]BINARY:PROVIDER:START:DONE".into()),
    ] {
        let o = Command::new(CAPTURE)
            .args(["--output", out.to_str().unwrap(), "--duration", "1s", flag, &spec])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flag} {spec}: {err}");
        assert!(err.contains(&format!("{flag} {spec}: ")) && err.contains(&needle), "{flag} {spec}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert!(!out.exists(), "nothing written");
}
