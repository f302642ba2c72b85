//! Traces for support tickets, from real captures: the capture's manifest
//! against sha256sum, `validate` on damage (a flipped byte, a missing middle
//! segment), and `redact` (metrics unchanged, no original address or name
//! left anywhere in its output).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::*;

/// A capture of a few workload runs, rotated into several segments.
fn captured(out: &Path) -> Value {
    let server = Server::start();
    let cap = Capture::start(out, &["--rotate-size", "4KiB", "--batch-rows", "64"]);
    let client = server.run_client();
    server.run_client();
    server.run_client();
    server.finish();
    let (status, _, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");
    client
}

fn manifest_of(dir: &Path) -> (PathBuf, Value) {
    let path = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with(".manifest.json"))
        .expect("the capture wrote a manifest");
    let v = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    (path, v)
}

fn segments_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    v.sort();
    v
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = analyze(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn the_manifest_holds_each_segments_checksum_and_validate_finds_damage() {
    let _g = serial();
    let dir = tempdir();
    let out = dir.path().join("trace");
    captured(&out);
    let segments = segments_in(&out);
    assert!(segments.len() >= 3, "{segments:?}");

    // Every segment listed, with the size and sha256 coreutils compute.
    let (_, m) = manifest_of(&out);
    assert!(m["finished"].is_string(), "{m}");
    let listed = m["segments"].as_array().unwrap();
    assert_eq!(listed.len(), segments.len());
    for (entry, path) in listed.iter().zip(&segments) {
        assert_eq!(entry["file"], path.file_name().unwrap().to_str().unwrap());
        assert_eq!(entry["bytes"], std::fs::metadata(path).unwrap().len());
        let sum = Command::new("sha256sum").arg(path).output().unwrap();
        let sum = String::from_utf8(sum.stdout).unwrap();
        assert_eq!(entry["sha256"].as_str().unwrap(), sum.split_whitespace().next().unwrap());
    }
    let (code, stdout, stderr) = run(&["validate", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("sound"), "{stdout}");

    // A byte flipped in transit: validate says which file, analysis refuses it.
    let flipped = dir.path().join("flipped");
    copy_dir(&out, &flipped);
    let victim = &segments_in(&flipped)[1];
    // Inside the first data page: the footer, at the end, stays readable.
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[64] ^= 0x40;
    std::fs::write(victim, &bytes).unwrap();
    let (code, stdout, _) = run(&["validate", flipped.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 1, "{stdout}");
    let problems: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r.get("problem").is_some())
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["problem"], "checksum");
    assert!(problems[0]["file"].as_str().unwrap().ends_with(victim.file_name().unwrap().to_str().unwrap()));
    let (code, _, stderr) = run(&["netio", flipped.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("does not match its capture's manifest") && stderr.trim().lines().count() == 1, "{stderr}");

    // A segment missing from the middle: a gap, and the manifest says which.
    let gap = dir.path().join("gap");
    copy_dir(&out, &gap);
    let middle = &segments_in(&gap)[1];
    std::fs::remove_file(middle).unwrap();
    let (code, stdout, _) = run(&["validate", gap.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 1, "{stdout}");
    let kinds: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|r| r.get("problem").map(|p| p.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(kinds, ["missing", "gap"], "{stdout}");
}

#[test]
fn retention_is_recorded_and_not_a_gap() {
    let _g = serial();
    let dir = tempdir();
    let out = dir.path().join("time");
    let cap = Capture::start(&out, &["--rotate-seconds", "1", "--max-segments", "2", "--duration", "4s"]);
    let (status, _, stderr) = cap.wait();
    assert!(status.success(), "{stderr:?}");
    let (_, m) = manifest_of(&out);
    assert_eq!(m["segments"].as_array().unwrap().len(), 2, "{m}");
    assert!(!m["deleted"].as_array().unwrap().is_empty(), "{m}");
    let (code, stdout, stderr) = run(&["validate", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// Every string a file holds: its name, its metadata, every value of every
/// text column (read by pyarrow, not by netrec), one per line.
fn strings_in(files: &[PathBuf]) -> String {
    let script = r#"
import sys, pyarrow as pa, pyarrow.parquet as pq
texts = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
for path in sys.argv[1:]:
    print(path)
    f = pq.ParquetFile(path)
    for k, v in (f.metadata.metadata or {}).items():
        print(k.decode(), v.decode())
    t = f.read()
    for col in t.column_names:
        if any(is_text(t.column(col).type) for is_text in texts):
            for v in t.column(col).to_pylist():
                if v is not None:
                    print(v)
"#;
    let out = Command::new("python3").arg("-c").arg(script).args(files).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn redaction_keeps_every_metric_and_no_original_address_or_name() {
    let _g = serial();
    let dir = tempdir();
    let out = dir.path().join("trace");
    let client = captured(&out);
    let key = dir.path().join("key");
    let red = dir.path().join("redacted");
    let (code, stdout, stderr) = run(&[
        "redact",
        out.to_str().unwrap(),
        "-o",
        red.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--new-key",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(std::fs::metadata(&key).unwrap().len(), 65, "64 hex digits and a newline");

    // Every metric by pid is the same, but for the names and addresses themselves.
    let strip = |rows: Vec<Value>| -> Vec<Value> {
        rows.into_iter()
            .map(|mut r| {
                for f in ["comm", "laddr", "raddr", "host", "cgroup", "container", "pod"] {
                    r.as_object_mut().unwrap().remove(f);
                }
                r
            })
            .collect()
    };
    for cmd in [&["netio"][..], &["churn"], &["latency"], &["netio", "--by", "lport"], &["churn", "--by", "rport"]] {
        let before = analyze_json(&[cmd, &[out.to_str().unwrap()]].concat());
        let after = analyze_json(&[cmd, &[red.to_str().unwrap()]].concat());
        assert!(!before.is_empty());
        // Equal totals sort by key, and a comm's hash sorts elsewhere than its name.
        let sorted = |rows: Vec<Value>| {
            let mut v: Vec<String> = strip(rows).iter().map(Value::to_string).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(before), sorted(after), "{cmd:?}");
    }
    // Subnets stay recognisable: loopback maps to one /8 of its own.
    let conns = analyze_json(&["netio", red.to_str().unwrap(), "--by", "raddr"]);
    let addrs: std::collections::BTreeSet<&str> =
        conns.iter().filter_map(|r| r["raddr"].as_str()).filter(|a| a.contains('.')).collect();
    let firsts: std::collections::BTreeSet<&str> = addrs.iter().map(|a| a.split('.').next().unwrap()).collect();
    assert_eq!(firsts.len(), 1, "127.0.0.0/8 stays one /8: {addrs:?}");
    assert!(!addrs.contains("127.0.0.1"), "{addrs:?}");

    // Nothing original anywhere: rows, metadata, file names.
    let before = strings_in(&segments_in(&out));
    let after = strings_in(&segments_in(&red));
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    let comm = "nr-client";
    assert!(
        before.contains("127.0.0.1") && before.contains(comm) && before.contains(&format!("netrec-{}-", host.trim()))
    );
    for original in ["127.0.0.1", comm, "tcp_workload", "netrec-capture --output"] {
        assert!(!after.contains(original), "{original} is in the redacted trace");
    }
    // A host name may be short ("vm"): as a whole value, or in a file name.
    let host = host.trim();
    assert!(!after.lines().any(|l| l == host || l == format!("netrec.hostname {host}")), "{host} is still a value");
    assert!(!after.contains(&format!("netrec-{host}-")), "{host} is still in a file name");
    assert!(after.contains("netrec.redaction") && after.contains("Crypto-PAn"), "the metadata says how");
    assert!(!after.contains(&std::fs::read_to_string(&key).unwrap().trim().to_string()), "never the key");
    let client_pid = client["pid"].as_u64().unwrap();
    assert!(analyze_json(&["netio", red.to_str().unwrap(), "--pid", &client_pid.to_string()]).len() > 1);

    // The redacted trace is sound, and the same key maps it the same way again.
    assert_eq!(run(&["validate", red.to_str().unwrap()]).0, 0);
    let again = dir.path().join("again");
    let (code, _, stderr) =
        run(&["redact", out.to_str().unwrap(), "-o", again.to_str().unwrap(), "--key-file", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        strings_in(&segments_in(&again)).replace(again.to_str().unwrap(), ""),
        after.replace(red.to_str().unwrap(), "")
    );
    // Never over an existing directory.
    let (code, _, stderr) =
        run(&["redact", out.to_str().unwrap(), "-o", red.to_str().unwrap(), "--key-file", key.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("exists"), "{stderr}");
}

#[test]
fn a_bundle_packs_report_manifest_and_redacted_segments_and_is_read_as_is() {
    let _g = serial();
    let dir = tempdir();
    let out = dir.path().join("trace");
    captured(&out);
    let key = dir.path().join("key");
    let tar = dir.path().join("ticket.tar");
    let (code, stdout, stderr) = run(&[
        "pack",
        out.to_str().unwrap(),
        "-o",
        tar.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--new-key",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // What is inside, by tar's own listing.
    let list = Command::new("tar").arg("tf").arg(&tar).output().unwrap();
    let names = String::from_utf8(list.stdout).unwrap();
    assert!(names.lines().any(|l| l == "manifest.json") && names.lines().any(|l| l == "report.html"), "{names}");
    assert!(names.lines().filter(|l| l.starts_with("segments/") && l.ends_with(".parquet")).count() >= 3, "{names}");
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    assert!(Command::new("tar").arg("xf").arg(&tar).arg("-C").arg(&x).status().unwrap().success());
    let m: Value = serde_json::from_slice(&std::fs::read(x.join("manifest.json")).unwrap()).unwrap();
    assert!(m["redaction"]["addresses"].as_str().unwrap().contains("Crypto-PAn"), "{m}");
    assert_eq!(m["lost_events"], 0);
    for f in m["files"].as_array().unwrap() {
        let sum = Command::new("sha256sum").arg(x.join(f["file"].as_str().unwrap())).output().unwrap();
        assert_eq!(String::from_utf8(sum.stdout).unwrap().split_whitespace().next(), f["sha256"].as_str(), "{f}");
    }

    // Read as it is: validate, and the metrics of the redacted segments.
    let (code, stdout, stderr) = run(&["validate", tar.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let from_tar = analyze_json(&["churn", tar.to_str().unwrap()]);
    let from_dir = analyze_json(&["churn", x.join("segments").to_str().unwrap()]);
    assert_eq!(from_tar, from_dir);

    // A truncated bundle: one line naming it, exit 2.
    let bytes = std::fs::read(&tar).unwrap();
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for cmd in ["validate", "netio"] {
        let (code, _, stderr) = run(&[cmd, cut.to_str().unwrap()]);
        assert_eq!(code, 2, "{cmd}: {stderr}");
        assert!(stderr.contains("cut.tar") && stderr.trim().lines().count() == 1, "{cmd}: {stderr}");
    }
}
