//! The CI gate on the real kernel: one workload (tests/workloads/gate_workload.c)
//! captured again and again compares equal; the same workload changed three
//! ways is caught, with exactly the metrics those changes move.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

const REQUESTS: &str = "300";
/// The baseline: 10 requests per connection, 1000-byte requests, 2000-byte
/// replies, handle() sleeping 1 ms.
const BASE: [&str; 4] = ["10", "1000", "2000", "1"];
/// Changed three ways: a connection per request, 4000-byte replies, handle() 3 ms.
const CHANGED: [&str; 4] = ["1", "1000", "4000", "3"];

fn gate_workload() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        compile_c(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("gate_workload"), &["gate_workload.c"], &["-O0", "-g"])
    })
}

/// One capture of one run of the workload, with handle() probed.
fn capture(out: &Path, knobs: &[&str; 4]) {
    let bin = gate_workload();
    let probe = format!("{}:handle", bin.display());
    let cap = Capture::start(out, &["--uprobe", &probe]);
    let run = Command::new(bin).arg(REQUESTS).args(knobs).output().unwrap();
    assert!(run.status.success(), "gate_workload: {}", String::from_utf8_lossy(&run.stderr));
    let (status, _, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");
}

/// `diff` of two captures of the workload's processes: exit code and JSON rows.
fn diff(base: &Path, cand: &Path) -> (i32, Vec<serde_json::Value>) {
    let (b, c) = (base.to_str().unwrap(), cand.to_str().unwrap());
    let out = analyze(&["diff", b, c, "--comm", "gate-client", "--comm", "gate-server", "--format", "json"]);
    let code = out.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "diff: {}", String::from_utf8_lossy(&out.stderr));
    (code, String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

fn with_verdict(rows: &[serde_json::Value], verdict: &str) -> BTreeSet<(String, String)> {
    rows.iter()
        .filter(|r| r["verdict"] == verdict && r.get("metric").is_some())
        .map(|r| (r["comm"].as_str().unwrap_or("").to_string(), r["metric"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn diff_passes_a_repeated_workload_and_catches_a_changed_one() {
    let _g = serial();
    let dir = tempdir();
    let runs: Vec<PathBuf> = (0..6).map(|i| dir.path().join(format!("base{i}"))).collect();
    for run in &runs {
        capture(run, &BASE);
    }
    // No false alarms: the first run against each of five more.
    for run in &runs[1..] {
        let (code, rows) = diff(&runs[0], run);
        let changed: Vec<_> =
            rows.iter().filter(|r| r["verdict"] == "regressed" || r["verdict"] == "improved").collect();
        assert_eq!(code, 0, "{}: {changed:#?}", run.display());
        assert!(changed.is_empty(), "{}: {changed:#?}", run.display());
        // The exact counts are equal, not just close.
        let unchanged = with_verdict(&rows, "unchanged");
        for key in [("gate-client", "opened_active"), ("gate-server", "sent_bytes"), ("gate-server", "calls:handle")] {
            assert!(unchanged.contains(&(key.0.into(), key.1.into())), "{key:?} in {rows:#?}");
        }
    }

    // Real changes: exactly what they move. A connection per request opens,
    // closes and ends short-lived ten times as many connections on both
    // sides; a larger reply is more bytes sent by the server and consumed
    // by the client; a slower handle() is its latency.
    let changed = dir.path().join("changed");
    capture(&changed, &CHANGED);
    let (code, rows) = diff(&runs[0], &changed);
    assert_eq!(code, 1);
    let mut want = BTreeSet::new();
    for comm in ["gate-client", "gate-server"] {
        for metric in ["opened", "closed", "short_lived"] {
            want.insert((comm.to_string(), metric.to_string()));
        }
    }
    for (comm, metric) in [
        ("gate-client", "opened_active"),
        ("gate-server", "opened_passive"),
        ("gate-client", "recv_bytes"),
        ("gate-server", "sent_bytes"),
        ("gate-server", "call:handle"),
    ] {
        want.insert((comm.to_string(), metric.to_string()));
    }
    assert_eq!(with_verdict(&rows, "regressed"), want, "{rows:#?}");
    // What did not change stays unchanged: requests, calls.
    let unchanged = with_verdict(&rows, "unchanged");
    for key in [("gate-client", "sent_bytes"), ("gate-server", "recv_bytes"), ("gate-server", "calls:handle")] {
        assert!(unchanged.contains(&(key.0.into(), key.1.into())), "{key:?} in {rows:#?}");
    }
}
