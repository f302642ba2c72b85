//! bench/run analyzer --smoke: the analyzer benchmark still runs end to end on
//! a generated trace, and netrec-analyze computes the same numbers as the
//! DuckDB SQL of bench/duckdb.sql for netio, churn and latency.

use std::process::Command;

use crate::frames::ANALYZE;

#[test]
fn analyzer_benchmark_smoke_run_agrees_with_duckdb() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .args([root.join("bench/run").to_str().unwrap(), "analyzer", "--smoke"])
        .current_dir(&root)
        .env("NETREC_ANALYZE", ANALYZE)
        .output()
        .expect("run bench/run");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench/run analyzer --smoke failed: {}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    for metric in ["netio", "churn", "latency"] {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| 100k | {metric} |")))
            .unwrap_or_else(|| panic!("no {metric} row in:\n{report}"));
        assert!(row.contains("| yes: ") && row.contains(" identical"), "{metric}: {row}");
    }
}

/// bench/run replay --smoke: the replay benchmark runs end to end, and the
/// JSON replay writes one line per row of the generated trace.
#[test]
fn replay_benchmark_smoke_run_writes_every_row() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .args([root.join("bench/run").to_str().unwrap(), "replay", "--smoke"])
        .current_dir(&root)
        .env("NETREC_ANALYZE", ANALYZE)
        .output()
        .expect("run bench/run");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench/run replay --smoke failed: {}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = report.lines().find(|l| l.starts_with("| 100k | json |")).unwrap_or_else(|| panic!("{report}"));
    assert!(row.ends_with("| yes |"), "{row}");
}
