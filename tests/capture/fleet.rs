//! `--layout hive`: a capture's segments as a dataset partitioned by host
//! and date, which DuckDB reads with its partition columns and
//! netrec-analyze reads as it reads a flat directory, manifest checks included.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::support::*;

fn parquet_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            parquet_under(&p, found);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            found.push(p);
        }
    }
}

#[test]
fn hive_layout_is_a_partitioned_dataset_every_reader_agrees_on() {
    let _g = serial();
    let dir = tempdir();
    let out = dir.path().join("bucket");
    let server = Server::start();
    let cap = Capture::start(&out, &["--layout", "hive", "--rotate-seconds", "1"]);
    let client = server.run_client();
    std::thread::sleep(Duration::from_millis(1300));
    let second = server.run_client();
    let served = server.finish();
    let (status, _, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");

    // Every segment under host=<hostname>/date=<its UTC start date>/, the manifest at the top.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let mut paths = Vec::new();
    parquet_under(&out, &mut paths);
    assert!(paths.len() >= 2, "{paths:?}");
    let mut dates = Vec::new();
    for p in &paths {
        let seg = read_segment(p);
        let date = seg.metadata["netrec.segment_start"][..10].to_string();
        assert_eq!(
            p.parent().unwrap(),
            out.join(format!("host={host}")).join(format!("date={date}")),
            "{}",
            p.display()
        );
        dates.push(date);
    }
    let top: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let manifest = top.iter().find(|n| n.ends_with(".manifest.json")).unwrap_or_else(|| panic!("{top:?}"));
    let listed: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join(manifest)).unwrap()).unwrap();
    for e in listed["segments"].as_array().unwrap() {
        assert!(out.join(e["file"].as_str().unwrap()).is_file(), "{e}");
    }

    // DuckDB: the partition columns, and the workload's exact bytes.
    let pid = client["pid"].as_u64().unwrap();
    let q = format!(
        "import duckdb; print(duckdb.sql(\"select host, date::varchar, sum(bytes) from read_parquet('{}/**/*.parquet', hive_partitioning = true) \
         where kind = 'send' and pid = {pid} group by all\").fetchall())",
        out.display()
    );
    let duck = Command::new("python3").args(["-c", &q]).output().unwrap();
    assert!(duck.status.success(), "{}", String::from_utf8_lossy(&duck.stderr));
    let text = String::from_utf8(duck.stdout).unwrap();
    assert!(text.contains(&format!("('{host}', '{}', {})", dates[0], expected(&client).0)), "{text}");

    // netrec-analyze: the tree as a trace; checksums checked against the manifest above the partitions.
    let rows = analyze_json(&["netio", out.to_str().unwrap(), "--by", "pid"]);
    for c in [&client, &second, &served] {
        let p = c["pid"].as_u64().unwrap();
        let sent: u64 = rows
            .iter()
            .filter(|r| r["total"] == "key" && r["pid"] == p)
            .map(|r| r["sent_bytes"].as_u64().unwrap())
            .sum();
        assert_eq!(sent, expected(c).0, "pid {p}");
    }
    let valid = analyze(&["validate", out.to_str().unwrap()]);
    assert!(valid.status.success(), "{}", String::from_utf8_lossy(&valid.stdout));
    // A ticket bundle of it keeps the partitions, so its manifest still checks every segment.
    let tar = dir.path().join("ticket.tar");
    let packed = analyze(&["pack", out.to_str().unwrap(), "-o", tar.to_str().unwrap()]);
    assert!(packed.status.success(), "{}", String::from_utf8_lossy(&packed.stderr));
    let valid = analyze(&["validate", tar.to_str().unwrap()]);
    assert!(valid.status.success(), "{}", String::from_utf8_lossy(&valid.stdout));
    let listing = Command::new("tar").arg("tf").arg(&tar).output().unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(listing.contains(&format!("segments/host={host}/date={}/", dates[0])), "{listing}");

    let mut bytes = std::fs::read(&paths[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&paths[0], bytes).unwrap();
    let damaged = analyze(&["netio", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&damaged.stderr);
    assert_eq!(damaged.status.code(), Some(2), "{err}");
    assert!(err.contains("does not match its capture's manifest"), "{err}");
}
