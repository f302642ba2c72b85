//! Per-socket aggregates in the kernel (`--data 1s`), and per-call recording
//! that switches to them past `--data-budget` or when the ring buffer nears
//! full: the same bytes and calls as a row per call, and nothing lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::*;

/// Sleeps until `offset` past the start of the next wall-clock second.
fn at_next_second(offset: Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    std::thread::sleep(Duration::from_secs(1) - Duration::from_nanos(now.subsec_nanos() as u64) + offset);
}

fn pair() -> Value {
    let w = Command::new(tcp_workload()).arg("pair").output().expect("run the workload");
    assert!(w.status.success(), "workload: {}", String::from_utf8_lossy(&w.stderr));
    serde_json::from_slice(&w.stdout).unwrap()
}

fn pid_of(w: &Value, role: &str) -> u32 {
    w[role]["pid"].as_u64().unwrap() as u32
}

/// netio's per-second rows, keyed by (second, pid).
fn netio_per_second(dir: &Path) -> BTreeMap<(String, u64), (u64, u64)> {
    analyze_json(&["netio", dir.to_str().unwrap(), "--by", "pid"])
        .into_iter()
        .filter(|r| r.get("time").is_some())
        .map(|r| {
            let key = (r["time"].as_str().unwrap().to_string(), r["pid"].as_u64().unwrap());
            (key, (r["sent_bytes"].as_u64().unwrap(), r["recv_bytes"].as_u64().unwrap()))
        })
        .collect()
}

/// Calls per (pid, kind): a row per call counts one, an aggregate its samples.
fn calls(rows: &[Row]) -> BTreeMap<(u32, String), u64> {
    let mut out = BTreeMap::new();
    for r in rows.iter().filter(|r| r.kind == "send" || r.kind == "recv") {
        *out.entry((r.pid.unwrap(), r.kind.clone())).or_default() += r.samples.map_or(1, u64::from);
    }
    out
}

fn metadata_json(dir: &Path, key: &str) -> Vec<Value> {
    read_segments(dir).iter().map(|s| serde_json::from_str(&s.metadata[key]).unwrap()).collect()
}

#[test]
fn aggregates_give_the_per_call_numbers_byte_for_byte() {
    let _g = serial();
    let dir = tempdir();
    let (per_call, aggregated) = (dir.path().join("calls"), dir.path().join("aggregates"));
    // Both record the same calls at once; the first never switches for the rate.
    let cap_calls = Capture::start(&per_call, &["--data-budget", "0"]);
    let cap_agg = Capture::start(&aggregated, &["--data", "1s"]);
    // The two captures stamp a call a few hundred ns apart: start away from a second's edge.
    at_next_second(Duration::from_millis(20));
    let w = pair();
    for cap in [cap_calls, cap_agg] {
        let (status, _, stderr) = cap.stop();
        assert!(status.success(), "{stderr:?}");
    }

    let (rows_calls, rows_agg) = (all_rows(&read_segments(&per_call)), all_rows(&read_segments(&aggregated)));
    let data =
        |rows: &[Row]| -> Vec<Row> { rows.iter().filter(|r| r.kind == "send" || r.kind == "recv").cloned().collect() };
    let (data_calls, data_agg) = (data(&rows_calls), data(&rows_agg));
    assert!(data_calls.iter().all(|r| r.samples.is_none()), "a row per call");
    assert!(data_agg.iter().all(|r| r.samples.is_some()), "only aggregates");
    assert!(data_agg.len() * 2 < data_calls.len(), "{} aggregates for {} calls", data_agg.len(), data_calls.len());

    // Each aggregate: one per socket, owner, direction and second, at the second's start.
    let offset: i64 = read_segments(&aggregated)[0].metadata["netrec.clock_offset_ns"].parse().unwrap();
    let mut seen = std::collections::HashSet::new();
    for r in &data_agg {
        let ts = r.ts_kernel_ns as i64 + offset;
        assert_eq!(ts % 1_000_000_000, 0, "{r:?} is not at a second's start");
        assert!(seen.insert((r.sock_id, r.pid, r.kind.clone(), ts)), "two aggregates for {r:?}");
    }

    // The workload's own counts, per process; the same calls; the same per-second netio.
    for (role, counts) in [("client", &w["client"]), ("served", &w["served"])] {
        let pid = pid_of(&w, role);
        assert_eq!(totals_for(&rows_calls, pid), expected(counts), "{role}: per call");
        assert_eq!(totals_for(&rows_agg, pid), expected(counts), "{role}: aggregates");
    }
    assert_eq!(calls(&data_agg), calls(&data_calls), "calls per process and direction");
    // Per connection too: the short connections are born in memory earlier
    // ones freed, and none may take another's entry.
    let per_connection = |rows: &[Row]| -> BTreeMap<(u32, u16, u16, String), u64> {
        let mut out = BTreeMap::new();
        for r in rows {
            *out.entry((r.pid.unwrap(), r.lport.unwrap(), r.rport.unwrap(), r.kind.clone())).or_default() +=
                r.bytes.unwrap();
        }
        out
    };
    assert_eq!(per_connection(&data_agg), per_connection(&data_calls), "bytes per connection");
    let (netio_calls, netio_agg) = (netio_per_second(&per_call), netio_per_second(&aggregated));
    assert!(!netio_calls.is_empty());
    assert_eq!(netio_agg, netio_calls, "netio per second and process");

    // State rows stay raw: the same transitions in both.
    let states = |rows: &[Row]| rows.iter().filter(|r| r.kind == "state").count();
    assert_eq!(states(&rows_agg), states(&rows_calls));
    let data_md = &metadata_json(&aggregated, "netrec.data")[0];
    assert_eq!((data_md["mode"].as_str(), data_md["interval_ns"].as_u64()), (Some("1s"), Some(1_000_000_000)));
}

/// One capture's record of the burst.
struct Burst {
    dir: PathBuf,
    rows: Vec<Row>,
    switches: Vec<Value>,
}

fn burst_capture(dir: &Path, name: &str, args: &[&str]) -> (Burst, Value, Value) {
    let out = dir.join(name);
    let cap = Capture::start(&out, args);
    // A full-rate stream (one event per send and per receive) and, during
    // it, the workload's connections and their state changes.
    let burst =
        Command::new(stream_workload()).args(["1000000", "64"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let during = pair();
    assert!(burst.wait_with_output().unwrap().status.success());
    // Quiet long enough to switch back (5 s at least in aggregates), then
    // traffic recorded a row per call again.
    std::thread::sleep(Duration::from_secs(8));
    let after = pair();
    let (status, _, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");
    assert!(stderr.iter().any(|l| l.contains("data recorded as 1 s aggregates")), "{stderr:?}");
    let segs = read_segments(&out);
    for s in &segs {
        assert_eq!(s.metadata["netrec.lost_events"], "0", "{name}: {}", s.metadata["netrec.lost_events_by_kind"]);
    }
    let switches =
        metadata_json(&out, "netrec.data_switches").into_iter().flat_map(|v| v.as_array().unwrap().clone()).collect();
    (Burst { dir: out, rows: all_rows(&segs), switches }, during, after)
}

#[test]
fn a_burst_far_beyond_the_budget_loses_no_byte_and_no_state_event() {
    let _g = serial();
    let dir = tempdir();
    // Past the rate budget (user space switches), and a ring buffer too small
    // for the stream with no budget (the kernel switches as it nears full).
    for (name, args, reason) in [
        // A ring that holds over a second of the stream: the budget, checked
        // every 200 ms, switches before the ring fills.
        ("budget", &["--data-budget", "20000", "--ringbuf-size", "64MiB"][..], "over --data-budget 20000"),
        ("ring", &["--data-budget", "0", "--ringbuf-size", "64KiB"][..], "the ring buffer was"),
    ] {
        let (b, during, after) = burst_capture(dir.path(), name, args);
        assert_eq!(b.switches.first().map(|s| s["to"].clone()), Some("aggregates".into()), "{name}: {:?}", b.switches);
        assert!(b.switches[0]["reason"].as_str().unwrap().contains(reason), "{name}: {:?}", b.switches);
        assert_eq!(b.switches.last().map(|s| s["to"].clone()), Some("calls".into()), "{name}: {:?}", b.switches);

        // Every byte and every call of the stream (both its processes are `stream`).
        let stream_rows: Vec<Row> = b.rows.iter().filter(|r| r.comm.as_deref() == Some("stream")).cloned().collect();
        let sum =
            |kind: &str, f: &dyn Fn(&Row) -> u64| -> u64 { stream_rows.iter().filter(|r| r.kind == kind).map(f).sum() };
        for kind in ["send", "recv"] {
            assert_eq!(sum(kind, &|r| r.bytes.unwrap_or(0)), 64_000_000, "{name}: {kind} bytes");
            assert_eq!(sum(kind, &|r| r.samples.map_or(1, u64::from)), 1_000_000, "{name}: {kind} calls");
        }
        assert!(stream_rows.iter().any(|r| r.samples.is_some()), "{name}: the stream was aggregated");

        // The connections made during the burst: every byte, every state.
        for w in [&during, &after] {
            for role in ["client", "served"] {
                assert_eq!(totals_for(&b.rows, pid_of(w, role)), expected(&w[role]), "{name}: {role}");
            }
            let port = w["server"]["port"].as_u64().unwrap() as u16;
            short_connections_complete(&b.rows, &w["client"], pid_of(w, "server"), port);
        }
        // After switching back, a row per call.
        let after_pids = [pid_of(&after, "client"), pid_of(&after, "served")];
        assert!(
            b.rows
                .iter()
                .filter(|r| r.pid.is_some_and(|p| after_pids.contains(&p)) && r.kind == "send")
                .all(|r| r.samples.is_none()),
            "{name}: aggregates after the switch back"
        );
        // info says what happened.
        let info = analyze_json(&["info", b.dir.to_str().unwrap()]);
        let text = info[0]["data_switches"].as_str().unwrap();
        assert!(text.contains("to aggregates") && text.contains("to calls"), "{name}: {text}");
    }
}
