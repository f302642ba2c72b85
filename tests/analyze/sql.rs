//! schemas/sql/duckdb.sql and spark.sql, run by DuckDB and by Spark (local mode) on the shipped samples and on a
//! trace of three hosts in a hive layout (two of them with the same socket
//! ids and capture id, so a connection not keyed by host would merge), gives netrec-analyze's
//! numbers row by row (bench/analyzer.py --check compares them).

use std::path::Path;
use std::process::Command;

use super::frames::ANALYZE;

#[test]
fn duckdb_and_spark_sql_give_the_analyzers_numbers_on_samples_and_several_hosts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = tempfile::tempdir().unwrap();
    let fleet = work.path().join("fleet");
    // As `netrec-capture --layout hive` lays a fleet out: Spark takes the
    // host from the partition, the analyzer and DuckDB from the footers.
    for (host, seed) in [("db-1", "1"), ("db-2", "1"), ("web-1", "2")] {
        let out = fleet.join(format!("host={host}")).join("date=2026-11-18");
        let gen = Command::new("python3")
            .arg(root.join("bench/gen_trace.py"))
            .args(["--events", "30k", "--host", host, "--seed", seed, "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(gen.status.success(), "{}", String::from_utf8_lossy(&gen.stderr));
    }
    let mut traces: Vec<String> = ["mariadb-logins", "mariadb-short-connections", "nginx-keepalive", "redis-benchmark"]
        .iter()
        .map(|s| root.join("samples").join(s).to_string_lossy().into_owned())
        .collect();
    traces.push(fleet.to_string_lossy().into_owned());
    let check = Command::new("python3")
        .arg(root.join("bench/analyzer.py"))
        .args(["--analyzer", ANALYZE, "--work", work.path().to_str().unwrap(), "--engines", "duckdb,spark", "--check"])
        .args(&traces)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{report}{}", String::from_utf8_lossy(&check.stderr));
    assert_eq!(report.lines().filter(|l| l.contains(": same: ")).count(), traces.len() * 4 * 2, "{report}");
    let fleet_churn = report.lines().find(|l| l.contains("fleet churn spark")).unwrap();
    assert!(fleet_churn.contains("lifetime of "), "{fleet_churn}");
}
