//! UDP: bytes sent and consumed per process and remote end, exact, on
//! connected and unconnected sockets, IPv4 and IPv6, with sendmmsg/recvmmsg,
//! MSG_PEEK and a truncated datagram (tests/workloads/udp_workload.c).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support::*;

/// (remote address, remote port) -> (sent, consumed); None: not known.
pub type PerPeer = BTreeMap<(Option<String>, Option<u16>), (u64, u64)>;

/// What one process of the workload says it sent and consumed, per remote end.
pub fn own_counts(v: &Value) -> (u32, PerPeer) {
    let mut per = PerPeer::new();
    for p in v["peers"].as_array().unwrap() {
        let key = (p["addr"].as_str().map(String::from), p["port"].as_u64().map(|n| n as u16));
        per.insert(key, (p["sent"].as_u64().unwrap(), p["consumed"].as_u64().unwrap()));
    }
    (v["pid"].as_u64().unwrap() as u32, per)
}

/// The capture's rows of one process, per remote end.
pub fn recorded(rows: &[Row], pid: u32) -> PerPeer {
    let mut per = PerPeer::new();
    for r in rows.iter().filter(|r| r.pid == Some(pid) && (r.kind == "send" || r.kind == "recv")) {
        assert_eq!(r.protocol.as_deref(), Some("udp"), "pid {pid}: only UDP: {r:?}");
        let e = per.entry((r.raddr.clone(), r.rport)).or_default();
        if r.kind == "send" {
            e.0 += r.bytes.unwrap();
        } else {
            e.1 += r.bytes.unwrap();
        }
    }
    per
}

pub fn totals(per: &PerPeer) -> (u64, u64) {
    per.values().fold((0, 0), |(s, c), (ds, dc)| (s + ds, c + dc))
}

fn run_workload(args: &[&str]) -> (Value, Vec<Row>, PathBuf, tempfile::TempDir) {
    let _g = serial();
    let dir = tempdir();
    let out = dir.path().join("udp");
    let cap = Capture::start(&out, args);
    let run = Command::new(udp_workload()).output().unwrap();
    assert!(run.status.success(), "udp_workload: {}", String::from_utf8_lossy(&run.stderr));
    let (status, _, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");
    let v: Value = serde_json::from_slice(&run.stdout).unwrap();
    let segs = read_segments(&out);
    for s in &segs {
        assert_eq!(s.metadata["netrec.lost_events"], "0", "{}", s.path.display());
    }
    (v, all_rows(&segs), out, dir)
}

/// Per call: every datagram's bytes under the remote end the process itself
/// saw: the connected socket's peer, recvfrom's and recvmsg's and recvmmsg's
/// source, sendto's and sendmsg's and sendmmsg's destination. The one recv()
/// that did not ask for the source has no remote end. MSG_PEEK consumed
/// nothing; the truncated datagram counts what recvfrom returned.
#[test]
fn udp_bytes_per_process_and_remote_end_equal_the_workloads_own() {
    let (v, rows, out, _dir) = run_workload(&[]);
    for role in ["server", "client"] {
        let (pid, want) = own_counts(&v[role]);
        assert_eq!(recorded(&rows, pid), want, "{role} (pid {pid}): per remote end");
    }
    // IPv6 rows say so; the v6 server socket's peer is ::1.
    let (server, _) = own_counts(&v["server"]);
    assert!(rows
        .iter()
        .any(|r| r.pid == Some(server) && r.raddr.as_deref() == Some("::1") && r.family.as_deref() == Some("ipv6")));

    // netio: the protocol column, --protocol selects it.
    let netio = |extra: &[&str]| -> BTreeMap<(u64, String), (u64, u64)> {
        let mut args = vec!["netio", out.to_str().unwrap(), "--by", "pid"];
        args.extend_from_slice(extra);
        analyze_json(&args)
            .into_iter()
            .filter(|r| r["total"] == "key")
            .map(|r| {
                let key = (r["pid"].as_u64().unwrap(), r["protocol"].as_str().unwrap().to_string());
                (key, (r["sent_bytes"].as_u64().unwrap(), r["recv_bytes"].as_u64().unwrap()))
            })
            .collect()
    };
    let udp = netio(&["--protocol", "udp"]);
    for role in ["server", "client"] {
        let (pid, want) = own_counts(&v[role]);
        assert_eq!(udp.get(&(pid as u64, "udp".into())), Some(&totals(&want)), "netio --protocol udp, {role}");
    }
    let tcp = netio(&["--protocol", "tcp"]);
    for role in ["server", "client"] {
        let (pid, _) = own_counts(&v[role]);
        assert!(!tcp.contains_key(&(pid as u64, "tcp".into())), "{role} moved no TCP: {tcp:?}");
    }
}

/// --data 1s: a row per socket, owner and second. Every process's total is
/// still exact; the connected socket keeps its peer, an unconnected one's
/// aggregates have none (its datagrams had many).
#[test]
fn udp_aggregates_keep_every_byte() {
    let (v, rows, _out, _dir) = run_workload(&["--data", "1s"]);
    for role in ["server", "client"] {
        let (pid, want) = own_counts(&v[role]);
        let got = recorded(&rows, pid);
        assert_eq!(totals(&got), totals(&want), "{role} (pid {pid}): {got:?}");
        assert!(rows.iter().filter(|r| r.pid == Some(pid) && r.kind == "send").all(|r| r.samples.is_some()));
    }
    // The client's connected socket: its datagrams all went to the server's port.
    let (client, want) = own_counts(&v["client"]);
    let server_port = want.keys().find_map(|(a, p)| (a.as_deref() == Some("127.0.0.1")).then_some(*p)).flatten();
    let connected: u64 = rows
        .iter()
        .filter(|r| r.pid == Some(client) && r.kind == "send" && r.rport == server_port)
        .map(|r| r.bytes.unwrap())
        .sum();
    assert_eq!(connected, 100 + 200 + 300 + 400 + 500, "the connected socket's sends, under its peer");
}
