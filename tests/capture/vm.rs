//! The static netrec-capture on other kernels. Here (6.18) it records with
//! tracepoints; under qemu (tests/vm/boot.sh) it boots Debian's 5.10 (bullseye)
//! and 6.1 cloud kernels, which lack sock_send_length/sock_recv_length, and
//! 6.12 (bookworm-backports), which has all three mechanisms, and records with
//! `--attach auto` and each mechanism forced, and again recording per-socket
//! aggregates (`--data 1s`). Every run must give the workload's own byte
//! counts per process, the same connections and the same state sequences,
//! each row attributed to the socket's owner, and the UDP workload's bytes
//! per process and remote end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::prelude::*;
use serde_json::Value;

use crate::support::*;
use crate::udp::{own_counts, recorded, totals};

/// Client connections the workload opens: 2 plain, sendfile, peek, 20 short.
const CONNECTIONS: usize = 24;

/// Builds the static executable the README documents, in its own target dir.
fn static_capture() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("static");
    let triple = "x86_64-unknown-linux-gnu";
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--locked", "--release", "-p", "netrec-capture", "--features", "static", "--target", triple])
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("LIBBPF_SYS_LIBRARY_PATH", "/usr/lib/x86_64-linux-gnu")
        .output()
        .expect("run cargo build for the static capture");
    assert!(out.status.success(), "static build failed: {}", String::from_utf8_lossy(&out.stderr));
    target.join(triple).join("release/netrec-capture")
}

/// One capture of `tcp_workload pair`: its rows and the workload's own counts.
struct Run {
    name: String,
    dir: PathBuf,
    segments: Vec<Segment>,
    workload: Value,
    /// tests/workloads/udp_workload.c's own counts, run after it.
    udp: Value,
    /// The capture's exit status and what it printed on stderr.
    exit: Option<i32>,
    stderr: Vec<String>,
}

impl Run {
    fn pid(&self, role: &str) -> u32 {
        self.workload[role]["pid"].as_u64().unwrap() as u32
    }

    fn mechanisms(&self) -> Value {
        serde_json::from_str(&self.segments[0].metadata["netrec.mechanisms"]).unwrap()
    }
}

fn host_run(capture: &Path, dir: &Path) -> Run {
    let out = dir.join("host");
    let cap = Capture::start_binary(capture, &out, &[]);
    let w = Command::new(tcp_workload()).arg("pair").output().expect("run the workload");
    assert!(w.status.success(), "workload: {}", String::from_utf8_lossy(&w.stderr));
    let u = Command::new(udp_workload()).output().expect("run the UDP workload");
    assert!(u.status.success(), "udp workload: {}", String::from_utf8_lossy(&u.stderr));
    let (status, _, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");
    Run {
        name: "6.18 host".into(),
        segments: read_segments(&out),
        dir: out,
        workload: serde_json::from_slice(&w.stdout).unwrap(),
        udp: serde_json::from_slice(&u.stdout).unwrap(),
        exit: status.code(),
        stderr,
    }
}

/// Boots the VM on Debian's `series` kernel (5.10, 6.1, 6.12) and takes its
/// runs back from the tagged console lines.
fn vm_runs(capture: &Path, dir: &Path, series: &str, modes: &[&str]) -> (String, Vec<Run>) {
    let boot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vm/boot.sh");
    let out = Command::new("bash")
        .arg(boot)
        .arg(capture)
        .arg(tcp_workload())
        .arg(modes.join(","))
        .arg(udp_workload())
        .env("NETREC_VM_KERNEL", series)
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "boot.sh failed: {}\n{console}", String::from_utf8_lossy(&out.stderr));
    assert!(console.contains("vm-done"), "the VM did not finish:\n{console}");

    let mut kernel = String::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut segment: Option<(PathBuf, String, String)> = None; // path, sha256, base64
    let flush = |segment: &mut Option<(PathBuf, String, String)>| {
        if let Some((path, sha, b64)) = segment.take() {
            let bytes = BASE64_STANDARD.decode(&b64).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            std::fs::write(&path, &bytes).unwrap();
            let got = Command::new("sha256sum").arg(&path).output().unwrap();
            assert!(String::from_utf8_lossy(&got.stdout).starts_with(&sha), "{} arrived damaged", path.display());
        }
    };
    for line in console.lines().map(|l| l.trim_end_matches('\r')) {
        // The firmware's screen-clearing codes may precede the first tag.
        let Some(line) = line.find("vm-").map(|i| &line[i..]) else { continue };
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "vm-kernel" => kernel = rest.to_string(),
            "vm-run" => {
                flush(&mut segment);
                let out = dir.join(rest);
                std::fs::create_dir_all(&out).unwrap();
                runs.push(Run {
                    name: format!("{series} VM --attach {rest}"),
                    dir: out,
                    segments: Vec::new(),
                    workload: Value::Null,
                    udp: Value::Null,
                    exit: None,
                    stderr: Vec::new(),
                });
            }
            "vm-workload" => runs.last_mut().unwrap().workload = serde_json::from_str(rest).unwrap(),
            "vm-udp" => runs.last_mut().unwrap().udp = serde_json::from_str(rest).unwrap(),
            "vm-exit" => runs.last_mut().unwrap().exit = rest.rsplit(' ').next().and_then(|s| s.parse().ok()),
            "vm-stderr" => runs.last_mut().unwrap().stderr.push(rest.to_string()),
            "vm-segment" => {
                flush(&mut segment);
                let mut f = rest.split(' ');
                let (_mode, name, sha) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
                segment = Some((runs.last().unwrap().dir.join(name), sha.to_string(), String::new()));
            }
            "vm-b64" => segment.as_mut().expect("base64 outside a segment").2.push_str(rest),
            _ => {}
        }
    }
    flush(&mut segment);
    for run in &mut runs {
        run.segments = read_segments(&run.dir);
    }
    (kernel, runs)
}

/// What must be the same on every kernel and mechanism.
#[derive(Debug, PartialEq, Eq)]
struct Facts {
    /// (sent, received) of the server and of the client.
    totals: [(u64, u64); 2],
    /// Connections the client opened and the server accepted, and how many closed.
    opened: [usize; 2],
    closed: [usize; 2],
    /// Server sockets with one accept row (every hook: the accept syscalls, inet_csk_accept).
    accepted: usize,
    /// Each socket's state sequence, counted, per side.
    sequences: [BTreeMap<Vec<(String, String)>, usize>; 2],
}

fn facts(run: &Run) -> Facts {
    let rows = all_rows(&run.segments);
    let md = &run.segments[0].metadata;
    assert_eq!(md["netrec.lost_events"], "0", "{}", run.name);
    let (server, client) = (run.pid("server"), run.pid("client"));
    assert_eq!(run.pid("served"), server);
    let port = run.workload["server"]["port"].as_u64().unwrap() as u16;
    let other = run.workload["server"]["other_port"].as_u64().unwrap() as u16;

    // Sockets of the workload's connections, by side; every row of each
    // carries its owner, also those raised in softirq.
    let mut by_sock: HashMap<u64, Vec<&Row>> = HashMap::new();
    for r in rows.iter().filter(|r| r.sock_id.is_some()) {
        by_sock.entry(r.sock_id.unwrap()).or_default().push(r);
    }
    let mut sequences: [BTreeMap<Vec<(String, String)>, usize>; 2] = Default::default();
    let mut opened = [0; 2];
    let mut closed = [0; 2];
    let mut accepted = 0;
    for sock_rows in by_sock.values_mut() {
        let side = if sock_rows.iter().any(|r| r.rport == Some(port) || r.rport == Some(other)) {
            1
        } else if sock_rows.iter().any(|r| (r.lport == Some(port) || r.lport == Some(other)) && r.rport != Some(0)) {
            0
        } else {
            continue;
        };
        let owner = [server, client][side];
        sock_rows.sort_by_key(|r| r.ts_kernel_ns);
        for r in sock_rows.iter() {
            assert_eq!(r.pid, Some(owner), "{}: {r:?}", run.name);
        }
        let seq: Vec<(String, String)> = sock_rows
            .iter()
            .filter(|r| r.kind == "state")
            .map(|r| (r.old_state.clone().unwrap(), r.new_state.clone().unwrap()))
            .collect();
        // When the handshake's last ACK and the first data segment are
        // processed on two CPUs at once, the kernel may create a second child
        // for one request and destroy it at once (SYN_RECV -> CLOSE); it is
        // recorded faithfully, but it is not a connection.
        if !seq.iter().any(|(_, n)| n == "ESTABLISHED") {
            continue;
        }
        if seq.iter().any(|(o, n)| (o == "CLOSE" && n == "SYN_SENT") || (o == "LISTEN" && n == "SYN_RECV")) {
            opened[side] += 1;
        }
        if seq.last().is_some_and(|(_, n)| n == "CLOSE") {
            closed[side] += 1;
        }
        if side == 0 && sock_rows.iter().filter(|r| r.kind == "accept").count() == 1 {
            accepted += 1;
        }
        *sequences[side].entry(seq).or_default() += 1;
    }
    // RTT samples on the workload's connections, and the SYN the client's own
    // full listener dropped, retransmitted: counts vary with timing, presence not.
    assert!(rows.iter().any(|r| r.kind == "rtt" && r.pid == Some(server)), "{}: no rtt", run.name);
    let syn_port = run.workload["client"]["retransmit_port"].as_u64().unwrap() as u16;
    assert!(
        rows.iter().any(|r| r.kind == "retransmit" && r.pid == Some(client) && r.rport == Some(syn_port)),
        "{}: no retransmit of the dropped SYN",
        run.name
    );
    Facts { totals: [totals_for(&rows, server), totals_for(&rows, client)], opened, closed, accepted, sequences }
}

/// The UDP workload's bytes, per process and remote end as each process saw
/// it (per socket and second only in totals, for aggregates). skb_consume_udp
/// (fentry, kprobes) reads every datagram's source from its headers, so the
/// one recv() that did not ask for it is known there: the server's.
fn udp_matches(run: &Run) {
    let aggregated = run.name.ends_with("-1s");
    let from_headers = !mech(run, "recv").starts_with("tracepoint");
    let rows = all_rows(&run.segments);
    for role in ["server", "client"] {
        let (pid, mut want) = own_counts(&run.udp[role]);
        let got = recorded(&rows, pid);
        if aggregated {
            assert_eq!(totals(&got), totals(&want), "{}: UDP {role}: {got:?}", run.name);
            continue;
        }
        if from_headers {
            if let Some((_, unasked)) = want.remove(&(None, None)) {
                let server = want.keys().find(|(a, _)| a.as_deref() == Some("127.0.0.1")).cloned().unwrap();
                want.get_mut(&server).unwrap().1 += unasked;
            }
        }
        assert_eq!(got, want, "{}: UDP {role} (pid {pid}) per remote end", run.name);
    }
}

/// The runs of `modes` on Debian's `series` kernel, each checked against a
/// capture here and the workload's own counts; `refused`: modes expected to
/// exit 2 with one line containing each of their strings.
fn runs_match_the_host(series: &str, modes: &[&str], refused: &[(&str, &[&str])]) -> BTreeMap<String, Run> {
    let dir = tempdir();
    // boot.sh refuses anything but a static executable: the VM has no libraries.
    let capture = static_capture();
    let host = host_run(&capture, dir.path());
    let (kernel, vm) = vm_runs(&capture, dir.path(), series, modes);
    assert!(kernel.starts_with(&format!("{series}.")), "the VM ran {kernel}");
    assert_eq!(vm.len(), modes.len());
    let mut runs: BTreeMap<String, Run> =
        vm.into_iter().map(|r| (r.name.rsplit(' ').next().unwrap().to_string(), r)).collect();
    for (mode, needles) in refused {
        let run = runs.remove(*mode).unwrap();
        assert_eq!(run.exit, Some(2), "{}: {:?}", run.name, run.stderr);
        assert_eq!(run.stderr.len(), 1, "{}: {:?}", run.name, run.stderr);
        for n in *needles {
            assert!(run.stderr[0].contains(n), "{}: {:?}", run.name, run.stderr);
        }
    }
    // The workload's own counts are the truth, and the same on every kernel.
    let truth = |run: &Run| [expected(&run.workload["served"]), expected(&run.workload["client"])];
    let reference = facts(&host);
    udp_matches(&host);
    assert_eq!(reference.totals, truth(&host), "host");
    assert_eq!(reference.opened, [CONNECTIONS; 2]);
    assert_eq!(reference.closed, [CONNECTIONS; 2]);
    assert_eq!(reference.accepted, CONNECTIONS, "one accept row per connection the server accepted");
    for run in runs.values() {
        assert_eq!(run.exit, Some(0), "{}: {:?}", run.name, run.stderr);
        assert_eq!(truth(run), truth(&host), "{}: the workload itself moved other sizes", run.name);
        assert_eq!(facts(run), reference, "{} differs from the 6.18 tracepoint capture", run.name);
        udp_matches(run);
        // The host's analyzer reads what came out of the VM.
        let netio = analyze_json(&["netio", run.dir.to_str().unwrap()]);
        let per_pid: HashSet<(u64, u64, u64)> = netio
            .iter()
            .filter(|r| r["total"] == "key")
            .map(|r| (r["pid"].as_u64().unwrap(), r["sent_bytes"].as_u64().unwrap(), r["recv_bytes"].as_u64().unwrap()))
            .collect();
        for (role, (sent, recv)) in [("served", truth(run)[0]), ("client", truth(run)[1])] {
            let pid = run.workload[role]["pid"].as_u64().unwrap();
            assert!(per_pid.contains(&(pid, sent, recv)), "{}: netio {netio:?}", run.name);
        }
    }
    for probe in ["send", "recv", "state", "rtt"] {
        assert!(mech(&host, probe).starts_with("tracepoint"), "{}", host.mechanisms());
    }
    runs
}

/// Which hooks fed a probe, as the run's segment records it.
fn mech(run: &Run, probe: &str) -> String {
    run.mechanisms()[probe].as_str().unwrap().to_string()
}

/// The aggregate run wrote aggregates: fewer send/recv rows than calls,
/// every call counted, through the same hooks as the run per call.
fn aggregated_like(calls: &Run, aggregated: &Run) {
    let data_rows = |run: &Run| -> Vec<Row> {
        all_rows(&run.segments).into_iter().filter(|r| r.kind == "send" || r.kind == "recv").collect()
    };
    let (per_call, agg) = (data_rows(calls), data_rows(aggregated));
    assert!(per_call.iter().all(|r| r.samples.is_none()), "{}", calls.name);
    assert!(agg.iter().all(|r| r.samples.is_some()), "{}: a per-call row", aggregated.name);
    assert!(agg.len() < per_call.len(), "{}: {} rows for {} calls", aggregated.name, agg.len(), per_call.len());
    assert_eq!(mech(aggregated, "send"), mech(calls, "send"));
}

/// No sock_*_length tracepoints before 6.3: forcing them fails in one line.
const NO_DATA_TRACEPOINTS: &[&str] = &["--attach tracepoint: cannot record send", "sock_send_length"];

#[test]
fn same_totals_states_and_owners_on_6_1_with_kprobe_and_fentry() {
    let _g = serial();
    let modes = ["auto", "kprobe", "fentry", "kprobe-1s", "fentry-1s", "tracepoint"];
    let runs = runs_match_the_host("6.1", &modes, &[("tracepoint", NO_DATA_TRACEPOINTS)]);
    let (auto, kprobe, fentry) = (&runs["auto"], &runs["kprobe"], &runs["fentry"]);
    aggregated_like(kprobe, &runs["kprobe-1s"]);
    aggregated_like(fentry, &runs["fentry-1s"]);
    assert!(
        mech(auto, "send").starts_with("fentry:") && mech(auto, "recv").starts_with("fentry:"),
        "{}",
        auto.mechanisms()
    );
    assert!(mech(auto, "state").starts_with("tracepoint:"), "{}", auto.mechanisms());
    for probe in ["send", "recv", "recv_splice", "state", "rtt", "retransmit"] {
        assert!(mech(kprobe, probe).starts_with("kprobe:"), "{}", kprobe.mechanisms());
        assert!(mech(fentry, probe).starts_with("fentry:"), "{}", fentry.mechanisms());
    }
    assert!(mech(kprobe, "send").contains("kprobe/tcp_sendpage"), "sendfile on 6.1: {}", kprobe.mechanisms());
}

/// Debian 11's kernel: no atomics that return a value (5.12), no BPF
/// cookies (5.15), the pre-5.19 tcp_recvmsg with `nonblock`.
#[test]
fn same_totals_states_and_owners_on_5_10() {
    let _g = serial();
    let modes = ["auto", "kprobe", "fentry", "fentry-1s", "tracepoint", "uprobe"];
    // Without cookies uprobes cannot tell their probe apart: refused in one line.
    let no_cookies: &[&str] = &["--uprobe: this kernel (5.10", "no BPF cookies (Linux 5.15)"];
    let runs = runs_match_the_host("5.10", &modes, &[("tracepoint", NO_DATA_TRACEPOINTS), ("uprobe", no_cookies)]);
    aggregated_like(&runs["fentry"], &runs["fentry-1s"]);
    let (auto, kprobe) = (&runs["auto"], &runs["kprobe"]);
    assert!(mech(auto, "send").starts_with("fentry:"), "{}", auto.mechanisms());
    assert!(mech(auto, "recv").contains("fexit/tcp_recvmsg"), "{}", auto.mechanisms());
    for probe in ["send", "recv", "state", "rtt", "retransmit"] {
        assert!(mech(kprobe, probe).starts_with("kprobe:"), "{}", kprobe.mechanisms());
    }
}

/// 6.12 has tracepoints, fentry and kprobes: all three on the same workload.
#[test]
fn same_totals_states_and_owners_on_6_12_with_every_mechanism() {
    let _g = serial();
    let modes = ["auto", "tracepoint", "fentry", "kprobe", "tracepoint-1s"];
    let runs = runs_match_the_host("6.12", &modes, &[]);
    aggregated_like(&runs["tracepoint"], &runs["tracepoint-1s"]);
    assert!(mech(&runs["auto"], "send").starts_with("tracepoint:"), "{}", runs["auto"].mechanisms());
    for (mode, probe) in
        [("tracepoint", "send"), ("fentry", "send"), ("kprobe", "send"), ("fentry", "recv"), ("kprobe", "recv")]
    {
        assert!(mech(&runs[mode], probe).starts_with(&format!("{mode}:")), "{mode}: {}", runs[mode].mechanisms());
    }
}
