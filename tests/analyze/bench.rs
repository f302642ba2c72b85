//! bench/run's analyzer and replay parts, --smoke: each still runs end to end
//! on a generated trace; netrec-analyze computes the same numbers as the
//! DuckDB SQL of schemas/sql/duckdb.sql for netio, churn and latency, and replay
//! writes one JSON line per row.

use std::process::Command;

use crate::frames::ANALYZE;

/// `bench/run PART --smoke`'s report.
fn smoke(part: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .args([root.join("bench/run").to_str().unwrap(), part, "--smoke"])
        .current_dir(&root)
        .env("NETREC_ANALYZE", ANALYZE)
        .output()
        .expect("run bench/run");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "bench/run {part} --smoke failed: {}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

#[test]
fn analyzer_benchmark_smoke_run_agrees_with_duckdb() {
    let report = smoke("analyzer");
    for metric in ["netio", "churn", "latency"] {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| 100k | {metric} |")))
            .unwrap_or_else(|| panic!("no {metric} row in:\n{report}"));
        assert!(row.contains("| yes: ") && row.contains(" identical"), "{metric}: {row}");
    }
}

#[test]
fn replay_benchmark_smoke_run_writes_every_row() {
    let report = smoke("replay");
    let row = report.lines().find(|l| l.starts_with("| 100k | json |")).unwrap_or_else(|| panic!("{report}"));
    assert!(row.ends_with("| yes |"), "{row}");
}
