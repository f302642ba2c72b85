//! bench/run --smoke capture: the capture's benchmarks still run end to end,
//! and the kernel's own statistics agree with the stream's known number of
//! calls. (The analyzer's part is tests/analyze/bench.rs, on the debug build:
//! left to bench/run, it would build a release netrec-analyze.)

use std::process::Command;

use crate::support::*;

/// `bench/run --smoke PART` with the debug capture: its report.
fn smoke(part: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("bench/run"))
        .args(["--smoke", part])
        .current_dir(&root)
        .env("NETREC_CAPTURE", CAPTURE)
        .output()
        .unwrap_or_else(|e| panic!("run bench/run --smoke {part}: {e}"));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench/run --smoke {part} failed: {}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

#[test]
fn benchmark_suite_smoke_run() {
    let _g = serial();
    let report = smoke("capture");
    for section in [
        "Kernel cost per event",
        "Loopback stream",
        "redis-benchmark",
        "User space and disk",
        "Bytes on disk per event, by workload",
        "Lost events",
    ] {
        assert!(report.contains(section), "no {section:?} in:\n{report}");
    }
    // The smoke stream sends and receives 20,000 messages, one call each;
    // other traffic on the machine may add runs, never remove them.
    for prog in ["sock_send_length", "sock_recv_length"] {
        let runs: u64 = report
            .lines()
            .find(|l| l.starts_with(&format!("| {prog} |")))
            .and_then(|l| l.split('|').nth(2))
            .map(|c| c.trim().replace(',', "").parse().unwrap())
            .unwrap_or_else(|| panic!("no {prog} row in:\n{report}"));
        assert!(runs >= 20_000, "{prog} ran {runs} times:\n{report}");
    }
    // 200 short connections, each seen from both ends: client CLOSE>SYN_SENT>
    // ESTABLISHED>FIN_WAIT1>FIN_WAIT2>CLOSE, server LISTEN>SYN_RECV>ESTABLISHED>
    // CLOSE_WAIT>LAST_ACK>CLOSE, plus the listener's CLOSE>LISTEN>CLOSE.
    let conns = report
        .lines()
        .find(|l| l.starts_with("| 200 short loopback connections"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(conns.contains("state 2,002"), "{conns}");
    // The default 16 MiB ring buffer keeps up with the stream: nothing lost.
    assert!(
        report.contains("| 16MiB | 65536 |")
            && report.lines().any(|l| l.starts_with("| 16MiB | 65536 |") && l.ends_with("| 0 |")),
        "{report}"
    );
}

/// bench/run --smoke soak: ten seconds of the soak's mixed load (requests,
/// short connections, UDP queries, execs) under one capture; every process's
/// TCP and UDP bytes and the client's connections equal the load's own counts
/// (DuckDB's sums over the segments), and the capture's tables are reported.
#[test]
fn soak_smoke_run_counts_the_mixed_load_exactly() {
    let _g = serial();
    let report = smoke("soak");
    let compared: Vec<&str> = report.lines().filter(|l| l.ends_with("| yes |") || l.ends_with("| NO |")).collect();
    // server and client, TCP and UDP, send and recv; and the connections.
    assert_eq!(compared.len(), 9, "{report}");
    assert!(compared.iter().all(|l| l.ends_with("| yes |")), "{report}");
    assert!(report.contains("| user space sockets |") && report.contains("lost 0"), "{report}");
}
