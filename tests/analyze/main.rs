//! netrec-analyze, the real binary: hand-made frames with known answers, bad
//! inputs, output snapshots, and the shipped samples against their recorders' counts.

mod bench;
mod frames;
mod gate;
mod redact;
mod replay;
mod report;
mod samples;
mod sql;
mod validate;

use frames::*;
use serde_json::Value;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// Two processes; events on and around second boundaries.
fn netio_frame(d: &std::path::Path) {
    write_segment(
        d,
        &SegmentSpec::default(),
        &[
            io("send", T0, 10, "client", 100),         // exactly on second 0
            io("recv", T0 + SEC - 1, 10, "client", 7), // last ns of second 0
            io("send", T0 + SEC, 10, "client", 1000),  // exactly on second 1
            io("recv", T0 + SEC + 5 * MS, 20, "server", 1000),
            io("send", T0 + SEC + 6 * MS, 20, "server", 5),
            io("recv", T0 + 2 * SEC + 1, 20, "server", 50),
        ],
    );
}

#[test]
fn netio_sums_per_second_per_process() {
    let d = dir();
    netio_frame(d.path());
    let rows = json_rows(&["netio", s(d.path())]);
    let per: Vec<(String, u64, u64, u64)> = rows
        .iter()
        .filter(|r| r.get("time").is_some())
        .map(|r| {
            (
                r["time"].as_str().unwrap().to_string(),
                r["pid"].as_u64().unwrap(),
                r["sent_bytes"].as_u64().unwrap(),
                r["recv_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per,
        vec![
            ("2026-01-01T00:00:00Z".into(), 10, 100, 7),
            ("2026-01-01T00:00:01Z".into(), 20, 5, 1000),
            ("2026-01-01T00:00:01Z".into(), 10, 1000, 0),
            ("2026-01-01T00:00:02Z".into(), 20, 0, 50),
        ]
    );
    let all = rows.iter().find(|r| r["total"] == "all").unwrap();
    assert_eq!((all["sent_bytes"].as_u64(), all["recv_bytes"].as_u64()), (Some(1105), Some(1057)));
    assert!(rows.iter().all(|r| r["lost_events"] == 0));

    // --by comm --top 1 keeps the busiest; --interval widens buckets; filters narrow.
    let top = json_rows(&["netio", s(d.path()), "--by", "comm", "--top", "1"]);
    assert!(top.iter().filter(|r| r.get("time").is_some()).all(|r| r["comm"] == "client"));
    let wide = json_rows(&["netio", s(d.path()), "--interval", "10s", "--pid", "20"]);
    assert_eq!(wide[0]["sent_bytes"], 5);
    assert_eq!(wide[0]["recv_bytes"], 1050);
    let ranged = json_rows(&["netio", s(d.path()), "--from", "+1s", "--to", "2026-01-01T00:00:02Z"]);
    assert_eq!(ranged.iter().filter(|r| r.get("time").is_some()).count(), 2);
}

/// Connections: one spanning two segments, one still open, a short one,
/// a failed connect, a reset, and state rows whose owner was unknown.
fn churn_frame(d: &std::path::Path) {
    let first = SegmentSpec { end: T0 + 10 * SEC, ..Default::default() };
    write_segment(
        d,
        &first,
        &[
            // sock 1: long-lived, opens in segment 0, closes in segment 1 (lifetime 12 s)
            state(T0, 1, Some(7), "CLOSE", "SYN_SENT"),
            state(T0 + 100 * US, 1, Some(7), "SYN_SENT", "ESTABLISHED"),
            // sock 2: short (50 ms), server side, owner unknown on its first rows
            state(T0 + SEC, 2, None, "LISTEN", "SYN_RECV"),
            state(T0 + SEC + 20 * US, 2, None, "SYN_RECV", "ESTABLISHED"),
            state(T0 + SEC + 50 * MS, 2, Some(8), "ESTABLISHED", "FIN_WAIT1"),
            state(T0 + SEC + 50 * MS, 2, Some(8), "FIN_WAIT1", "FIN_WAIT2"),
            state(T0 + SEC + 50 * MS, 2, Some(8), "FIN_WAIT2", "CLOSE"),
            // sock 3: failed connect
            state(T0 + 2 * SEC, 3, Some(7), "CLOSE", "SYN_SENT"),
            state(T0 + 2 * SEC + 3 * SEC, 3, Some(7), "SYN_SENT", "CLOSE"),
            // sock 4: still open at the end
            state(T0 + 3 * SEC, 4, Some(7), "CLOSE", "SYN_SENT"),
            state(T0 + 3 * SEC + 400 * US, 4, Some(7), "SYN_SENT", "ESTABLISHED"),
            rtt(T0 + 4 * SEC, 4, 7, 250),
            rtt(T0 + 4 * SEC + 1, 4, 7, 350),
        ],
    );
    let second = SegmentSpec { index: 1, start: T0 + 10 * SEC, end: T0 + 20 * SEC, ..Default::default() };
    write_segment(
        d,
        &second,
        &[
            state(T0 + 12 * SEC, 1, Some(7), "ESTABLISHED", "FIN_WAIT1"),
            state(T0 + 12 * SEC + 10, 1, Some(7), "FIN_WAIT1", "FIN_WAIT2"),
            state(T0 + 12 * SEC + 20, 1, Some(7), "FIN_WAIT2", "CLOSE"),
            // sock 5: reset while established, 30 ms after the connect
            state(T0 + 13 * SEC, 5, Some(7), "CLOSE", "SYN_SENT"),
            state(T0 + 13 * SEC + 200 * US, 5, Some(7), "SYN_SENT", "ESTABLISHED"),
            state(T0 + 13 * SEC + 30 * MS, 5, Some(7), "ESTABLISHED", "CLOSE"),
        ],
    );
}

fn sum(rows: &[Value], field: &str) -> u64 {
    rows.iter().filter(|r| r.get("time").is_some()).map(|r| r[field].as_u64().unwrap()).sum()
}

#[test]
fn churn_counts_connections_across_segments() {
    let d = dir();
    churn_frame(d.path());
    let rows = json_rows(&["churn", s(d.path()), "--by", "host"]);
    assert_eq!(sum(&rows, "opened_active"), 3, "socks 1, 4, 5");
    assert_eq!(sum(&rows, "opened_passive"), 1, "sock 2, owner unknown when it opened");
    assert_eq!(sum(&rows, "closed"), 3, "socks 1, 2, 5");
    assert_eq!(sum(&rows, "failed"), 1);
    assert_eq!(sum(&rows, "resets"), 1);
    assert_eq!(sum(&rows, "short_lived"), 2, "socks 2 (50 ms) and 5 (30 ms) are under 100 ms");
    let life = rows.iter().find(|r| r["metric"] == "lifetime").unwrap();
    assert_eq!(life["count"], 3);
    assert_eq!(life["still_open"], 1);
    assert_eq!(life["max_us"], 12_000_000, "sock 1 spans both segments");
    assert_eq!(life["p50_us"], 50_000);
    let at = |sec: &str| rows.iter().find(|r| r["time"] == sec).cloned().unwrap();
    assert_eq!(at("2026-01-01T00:00:12Z")["closed"], 1);
    assert_eq!(at("2026-01-01T00:00:13Z")["short_lived"], 1);

    // A longer threshold; a pid filter drops rows whose owner was unknown.
    let rows = json_rows(&["churn", s(d.path()), "--short", "1s"]);
    assert_eq!(sum(&rows, "short_lived"), 2);
    let csv = analyze(&["churn", s(d.path()), "--format", "csv"]);
    assert_eq!(csv.code, 0, "sections with other columns get their own header: {}", csv.stderr);
    assert!(csv.stdout.contains("\nmetric,count,still_open,"), "{}", csv.stdout);
    let rows = json_rows(&["churn", s(d.path()), "--pid", "8"]);
    assert_eq!(sum(&rows, "opened_passive"), 0);
    assert_eq!(sum(&rows, "closed"), 1);
}

#[test]
fn latency_has_exact_percentiles_and_log2_buckets() {
    let d = dir();
    churn_frame(d.path());
    let rows = json_rows(&["latency", s(d.path()), "--by", "host"]);
    let metric =
        |m: &str| rows.iter().find(|r| r["metric"] == m).cloned().unwrap_or_else(|| panic!("no {m}: {rows:?}"));
    let connect = metric("connect");
    assert_eq!(connect["count"], 3, "socks 1 (100 us), 4 (400 us), 5 (200 us)");
    assert_eq!((connect["p50_us"].as_u64(), connect["max_us"].as_u64()), (Some(200), Some(400)));
    let buckets: Vec<(u64, u64)> = connect["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["le_us"].as_u64().unwrap(), b["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(buckets.last(), Some(&(511, 1)));
    assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 3);
    assert_eq!(buckets.iter().find(|b| b.0 == 127), Some(&(127, 1)));
    assert_eq!(metric("handshake")["p99_us"], 20);
    let rtt = metric("rtt");
    assert_eq!(
        (rtt["count"].as_u64(), rtt["p50_us"].as_u64(), rtt["max_us"].as_u64()),
        (Some(2), Some(250), Some(350))
    );
}

/// A version 1 segment (no call columns) and a version 2 segment with calls
/// of two probes by two processes, beside the connections those processes open.
fn calls_frame(d: &std::path::Path) {
    write_segment(d, &SegmentSpec::default(), &[io("send", T0 + 10 * MS, 30, "mariadbd", 10)]);
    let v2 = SegmentSpec { index: 1, start: T0 + SEC, end: T0 + 5 * SEC, schema_version: 2, ..Default::default() };
    let mut ev = vec![
        // second 1: 3 logins by pid 8 (1, 2, 3 ms), one connection pid 8 accepted
        call(T0 + SEC, 8, "mariadbd", "login", Some(MS as u64)),
        call(T0 + SEC + 100 * MS, 8, "mariadbd", "login", Some(2 * MS as u64)),
        call(T0 + 2 * SEC - 1, 8, "mariadbd", "login", Some(3 * MS as u64)),
        state(T0 + SEC + 50 * MS, 1, Some(8), "SYN_RECV", "ESTABLISHED"),
        // second 2: a login still running at stop, a query by pid 9
        call(T0 + 2 * SEC, 8, "mariadbd", "login", None),
        call(T0 + 2 * SEC + 5, 9, "worker", "query", Some(40 * US as u64)),
        // second 3: connections opened by pid 8 with no login; by pid 7 (no calls)
        state(T0 + 3 * SEC, 2, Some(8), "SYN_RECV", "ESTABLISHED"),
        state(T0 + 3 * SEC + 1, 3, Some(8), "SYN_SENT", "ESTABLISHED"),
        state(T0 + 3 * SEC + 2, 4, Some(7), "SYN_SENT", "ESTABLISHED"),
    ];
    ev.sort_by_key(|e| e.ts);
    write_segment(d, &v2, &ev);
}

#[test]
fn calls_per_second_beside_connections_opened() {
    let d = dir();
    calls_frame(d.path());
    let rows = json_rows(&["calls", s(d.path())]);
    let per: Vec<(String, String, u64, u64, u64)> = rows
        .iter()
        .filter(|r| r.get("time").is_some())
        .map(|r| {
            (
                r["time"].as_str().unwrap()[17..19].to_string(),
                r["probe"].as_str().unwrap().to_string(),
                r["calls"].as_u64().unwrap(),
                r["unfinished"].as_u64().unwrap(),
                r["tcp_opens"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per,
        vec![
            ("01".into(), "login".into(), 3, 0, 1),
            ("02".into(), "login".into(), 1, 1, 0),
            ("02".into(), "query".into(), 1, 0, 0),
            ("03".into(), "login".into(), 0, 0, 2),
        ]
    );
    let total = |probe: &str| rows.iter().find(|r| r.get("time").is_none() && r["probe"] == probe).cloned().unwrap();
    let login = total("login");
    assert_eq!(
        (
            login["calls"].as_u64(),
            login["unfinished"].as_u64(),
            login["peak_calls"].as_u64(),
            login["tcp_opens"].as_u64()
        ),
        (Some(4), Some(1), Some(3), Some(3))
    );

    // --by pid splits; --pid narrows; the version 1 segment only adds nothing.
    let by_pid = json_rows(&["calls", s(d.path()), "--by", "pid", "--pid", "9"]);
    assert!(by_pid.iter().all(|r| r["pid"] == 9 && r["comm"] == "worker" && r["probe"] == "query"), "{by_pid:?}");
    assert_eq!(by_pid.len(), 2, "one second, one total");

    // latency: one row per probe, exact percentiles in microseconds; the unfinished call has none.
    let lat = json_rows(&["latency", s(d.path()), "--by", "comm"]);
    let login = lat.iter().find(|r| r["metric"] == "call:login").unwrap();
    assert_eq!(
        (login["count"].as_u64(), login["p50_us"].as_u64(), login["max_us"].as_u64()),
        (Some(3), Some(2000), Some(3000))
    );
    let query = lat.iter().find(|r| r["metric"] == "call:query").unwrap();
    assert_eq!(
        (query["count"].as_u64(), query["p99_us"].as_u64(), query["comm"].as_str()),
        (Some(1), Some(40), Some("worker"))
    );

    // The version 1 segment is still read for the other analyses.
    let netio = json_rows(&["netio", s(d.path())]);
    assert!(netio.iter().any(|r| r["pid"] == 30 && r["sent_bytes"] == 10));

    // --by keys that calls have not are refused by the parser, and probe
    // elsewhere, in one line that lists the keys there are.
    for (args, needle) in [
        (
            &["calls", "--by", "lport"][..],
            "invalid value 'lport' for '--by <BY>' [possible values: probe, pid, comm, host]",
        ),
        (&["netio", "--by", "probe"], "invalid value 'probe' for '--by <BY>' [possible values: pid, comm, conn,"),
    ] {
        let mut full = args.to_vec();
        full.insert(1, s(d.path()));
        let r = analyze(&full);
        assert_eq!(r.code, 2);
        assert!(r.stderr.contains(needle) && r.stderr.lines().count() == 1, "{}", r.stderr);
    }
}

#[test]
fn losses_are_reported_and_strict_fails() {
    let d = dir();
    write_segment(
        d.path(),
        &SegmentSpec { end: T0 + 10 * SEC, lost: 5, ..Default::default() },
        &[io("send", T0, 1, "a", 10)],
    );
    write_segment(
        d.path(),
        &SegmentSpec { index: 1, start: T0 + 10 * SEC, end: T0 + 20 * SEC, ..Default::default() },
        &[io("send", T0 + 11 * SEC, 1, "a", 10)],
    );
    let table = analyze(&["netio", s(d.path())]);
    assert_eq!(table.code, 0);
    assert!(table.stdout.starts_with("warning: the capture lost 5 events"), "{}", table.stdout);
    let rows = json_rows(&["netio", s(d.path())]);
    assert!(rows.iter().all(|r| r["lost_events"] == 5));
    let strict = analyze(&["netio", s(d.path()), "--strict"]);
    assert_eq!(strict.code, 1, "{}", strict.stderr);
    assert!(strict.stderr.contains("--strict"));
    // A range clear of the lossy segment is clean, even with --strict.
    let clean = analyze(&["netio", s(d.path()), "--from", "+10s", "--strict", "--format", "json"]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    assert!(clean.stdout.contains("\"lost_events\":0"));
    let info = json_rows(&["info", s(d.path())]);
    assert_eq!(info[0]["lost_events"], 5);
    assert!(info[0]["lost_by_segment"].as_str().unwrap().contains("00000.parquet: 5"));
    assert_eq!(info[0]["events"], 2);
    assert_eq!(info[0]["mechanisms"]["send"], "raw_tracepoint:sock/sock_send_length");
}

#[test]
fn info_shows_what_the_capture_cost() {
    let d = dir();
    let sec10 = |i: i64| SegmentSpec {
        index: i as u32,
        start: T0 + i * 10 * SEC,
        end: T0 + (i + 1) * 10 * SEC,
        ..Default::default()
    };
    let send = |i: i64| [io("send", T0 + i * 10 * SEC, 1, "a", 10)];
    let mib = 1 << 20;
    // Two segments of 1.5 s user + 0.5 s sys each, with their peak RSS and runs.
    for (i, rss, programs) in [
        (0, 40 * mib, r#"{"sock_send_length":{"run_cnt":1,"run_time_ns":600}}"#),
        (1, 48 * mib, r#"{"sock_send_length":{"run_cnt":2,"run_time_ns":1000}}"#),
    ] {
        let spec = SegmentSpec { cost: Some((1_500_000_000, 500_000_000, rss, programs)), ..sec10(i) };
        write_segment(d.path(), &spec, &send(i));
    }
    // Written before the capture recorded its cost: left out of the totals.
    write_segment(d.path(), &sec10(2), &send(2));
    let info = json_rows(&["info", s(d.path())]);
    assert_eq!(info[0]["capture_cpu"], "3.00 s user + 1.00 s sys in 20 s: 20.00 % of one CPU");
    assert_eq!(info[0]["capture_peak_rss"], "48.0 MiB");
    assert_eq!(info[0]["kernel_ns_per_event"], "800", "1,600 ns of program runs for 2 events");
    assert_eq!(info[0]["bpf_programs"]["sock_send_length"], "3 runs, 533 ns per run");
    let per_segment = info[0]["cost_by_segment"].as_str().unwrap();
    assert_eq!(per_segment.lines().count(), 2, "{per_segment}");
    assert!(per_segment.lines().next().unwrap().ends_with("00000.parquet: 1.50 s user + 0.50 s sys in 10 s: 20.00 % of one CPU, peak RSS 40.0 MiB, kernel 600 ns per event"), "{per_segment}");

    // Without BPF statistics, CPU and memory are still there.
    let d = dir();
    write_segment(d.path(), &SegmentSpec { cost: Some((100_000_000, 0, mib, "{}")), ..sec10(0) }, &send(0));
    let info = json_rows(&["info", s(d.path())]);
    assert_eq!(info[0]["capture_cpu"], "0.10 s user + 0.00 s sys in 10 s: 1.00 % of one CPU");
    assert!(info[0]["kernel_ns_per_event"].as_str().unwrap().contains("--bpf-stats"));
    // A broken cost entry names the file and the key.
    let d = dir();
    write_segment(d.path(), &SegmentSpec { cost: Some((1, 1, 1, "[1]")), ..sec10(0) }, &send(0));
    let r = analyze(&["info", s(d.path())]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("netrec.bpf_programs") && r.stderr.contains("00000.parquet") && r.stderr.lines().count() == 1,
        "{}",
        r.stderr
    );
}

#[test]
fn bad_inputs_get_one_line_naming_the_file_or_flag() {
    let d = dir();
    let p = d.path();
    std::fs::create_dir(p.join("empty")).unwrap();
    std::fs::write(p.join("notes.parquet"), b"this is not parquet").unwrap();
    let good = write_segment(p, &SegmentSpec::default(), &[io("send", T0, 1, "a", 10)]);
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(p.join("truncated.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let newer = tempfile::tempdir().unwrap();
    let newer_file = write_segment(newer.path(), &SegmentSpec { schema_version: 99, ..Default::default() }, &[]);
    // A Parquet file of somebody else's.
    let foreign = p.join("foreign.parquet");
    {
        use std::sync::Arc;
        let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "x",
            arrow_schema::DataType::Int32,
            false,
        )]));
        let batch =
            arrow_array::RecordBatch::try_new(schema.clone(), vec![Arc::new(arrow_array::Int32Array::from(vec![1]))])
                .unwrap();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&foreign).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let cases: Vec<(Vec<String>, String)> = vec![
        (vec!["netio".into(), s(&p.join("missing")).into()], s(&p.join("missing")).into()),
        (vec!["netio".into(), s(&p.join("empty")).into()], "no segments".into()),
        (vec!["netio".into(), s(&p.join("notes.parquet")).into()], "notes.parquet: not a readable Parquet file".into()),
        (vec!["netio".into(), s(&p.join("truncated.parquet")).into()], "truncated.parquet".into()),
        (vec!["netio".into(), s(&foreign).into()], "foreign.parquet: a Parquet file, but not a netrec segment".into()),
        (vec!["info".into(), s(&newer_file).into()], "schema version 99".into()),
        (vec!["netio".into(), s(&good).into(), "--by".into(), "colour".into()], "--by".into()),
        (vec!["netio".into(), s(&good).into(), "--format".into(), "xml".into()], "--format".into()),
        (vec!["netio".into(), s(&good).into(), "--from".into(), "yesterday".into()], "--from".into()),
        (vec!["churn".into(), s(&good).into(), "--short".into(), "0s".into()], "--short".into()),
        (
            vec!["diff".into(), s(&good).into(), s(&good).into(), "--min-effect".into(), "0.3".into()],
            "--min-effect".into(),
        ),
        (
            vec!["netio".into(), s(&good).into(), "--host".into(), "nope".into()],
            "--host nope: no segment was recorded on that host (hosts in the trace: db1)".into(),
        ),
    ];
    for (args, needle) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = analyze(&a);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(&needle), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{args:?}: one line: {}", r.stderr);
    }
    // In-progress segments are skipped with a warning.
    std::fs::write(p.join("empty").join("x.parquet.inprogress"), b"").unwrap();
    std::fs::copy(&good, p.join("empty").join("ok.parquet")).unwrap();
    let r = analyze(&["netio", s(&p.join("empty"))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("x.parquet.inprogress: skipped, unfinished (still being written, or its capture was killed)"),
        "{}",
        r.stderr
    );
}

#[test]
fn broken_pipe_exits_quietly() {
    let d = dir();
    let events: Vec<Ev> = (0..5000).map(|i| io("send", T0 + i * SEC, 1, "a", 1)).collect();
    write_segment(d.path(), &SegmentSpec { end: T0 + 6000 * SEC, ..Default::default() }, &events);
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{ANALYZE}' netio '{}' --format csv | head -n 2; echo \"status=${{PIPESTATUS[0]}}\"",
            s(d.path())
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().count() >= 2, "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty(),
        "quiet on a broken pipe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn output_snapshots() {
    let d = dir();
    churn_frame(d.path());
    netio_frame(&{
        let n = d.path().join("netio");
        std::fs::create_dir(&n).unwrap();
        n
    });
    let netio_dir = d.path().join("netio");
    let calls_dir = d.path().join("calls");
    std::fs::create_dir(&calls_dir).unwrap();
    calls_frame(&calls_dir);
    for format in ["table", "json", "csv", "markdown"] {
        let r = analyze(&["calls", s(&calls_dir), "--format", format]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        insta::assert_snapshot!(format!("calls_{format}"), r.stdout);
        let r = analyze(&["netio", s(&netio_dir), "--format", format]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        insta::assert_snapshot!(format!("netio_{format}"), r.stdout);
        let r = analyze(&[
            "churn",
            s(&d.path().join("netrec-db1-20260101T000000Z-c0ffee-00000.parquet")),
            s(&d.path().join("netrec-db1-20260101T000000Z-c0ffee-00001.parquet")),
            "--format",
            format,
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        insta::assert_snapshot!(format!("churn_{format}"), r.stdout);
        let r = analyze(&[
            "latency",
            s(&d.path().join("netrec-db1-20260101T000000Z-c0ffee-00000.parquet")),
            s(&d.path().join("netrec-db1-20260101T000000Z-c0ffee-00001.parquet")),
            "--by",
            "host",
            "--format",
            format,
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        insta::assert_snapshot!(format!("latency_{format}"), r.stdout);
    }
}

/// Version 3 rtt rows stand for several srtt changes: latency weights each
/// row by its `samples`, and reads older segments' rows as one each.
#[test]
fn rtt_runs_are_weighted_by_their_samples() {
    let d = dir();
    let run = |ts, srtt_us, samples| Ev { samples: Some(samples), ..rtt(ts, 4, 7, srtt_us) };
    write_segment(
        d.path(),
        &SegmentSpec { schema_version: 3, capture_id: "v3", ..Default::default() },
        &[run(T0 + SEC, 100, 9), run(T0 + 2 * SEC, 1000, 1)],
    );
    write_segment(
        d.path(),
        &SegmentSpec { schema_version: 2, capture_id: "v2", ..Default::default() },
        &[rtt(T0 + 3 * SEC, 5, 7, 100)],
    );
    let rows = json_rows(&["latency", s(d.path())]);
    let r = rows.iter().find(|r| r["metric"] == "rtt").expect("an rtt row");
    // 10 samples of 100 us and one of 1000 us.
    assert_eq!(r["count"], 11, "{r}");
    assert_eq!(
        (r["p50_us"].as_u64(), r["p90_us"].as_u64(), r["p99_us"].as_u64(), r["max_us"].as_u64()),
        (Some(100), Some(100), Some(1000), Some(1000)),
        "{r}"
    );
}

/// Version 4: send/recv aggregates (a row per socket and second, `samples`
/// calls) count as their bytes beside rows per call; `info` says how data
/// was recorded and when it switched; a finer netio interval is warned about.
#[test]
fn aggregates_count_as_their_bytes_and_info_shows_the_switches() {
    let d = dir();
    let agg = |kind, ts, bytes, calls| Ev { samples: Some(calls), ..io(kind, ts, 7, "mysqld", bytes) };
    let switches = r#"[{"ts":"2026-01-01T00:00:00.400Z","to":"aggregates","reason":"250000 send/recv events/s, over --data-budget 100000"},
        {"ts":"2026-01-01T00:00:07.000Z","to":"calls","reason":"0 send/recv events/s, under 50000"}]"#;
    let data = r#"{"mode":"calls","interval_ns":1000000000,"budget_events_per_s":100000}"#;
    let spec = SegmentSpec { schema_version: 4, capture_id: "v4", data: Some((data, switches)), ..Default::default() };
    write_segment(
        d.path(),
        &spec,
        &[
            io("send", T0 + 100 * MS, 7, "mysqld", 40),
            agg("send", T0, 1000, 10),
            io("send", T0 + 1500 * MS, 7, "mysqld", 5),
            agg("recv", T0 + 2 * SEC, 300, 3),
        ],
    );
    let path = d.path().to_str().unwrap();
    let rows = json_rows(&["netio", path, "--by", "pid"]);
    let per_second: Vec<(&str, u64, u64)> = rows
        .iter()
        .filter(|r| r.get("time").is_some())
        .map(|r| (r["time"].as_str().unwrap(), r["sent_bytes"].as_u64().unwrap(), r["recv_bytes"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        per_second,
        [("2026-01-01T00:00:00Z", 1040, 0), ("2026-01-01T00:00:01Z", 5, 0), ("2026-01-01T00:00:02Z", 0, 300)]
    );
    let r = analyze(&["netio", path, "--interval", "100ms", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("aggregates per 1s; per 100ms"), "{}", r.stderr);
    let r = analyze(&["netio", path, "--interval", "2s", "--format", "json"]);
    assert!(!r.stderr.contains("aggregates"), "{}", r.stderr);

    let info = &json_rows(&["info", path])[0];
    assert_eq!(
        info["data"],
        "a row per call; 1s aggregates past 100000 events/s or while the ring buffer is nearly full"
    );
    assert_eq!(
        info["data_switches"],
        "2026-01-01T00:00:00.400Z to aggregates: 250000 send/recv events/s, over --data-budget 100000\n\
         2026-01-01T00:00:07.000Z to calls: 0 send/recv events/s, under 50000"
    );

    // A broken switch list names the file and the key.
    let bad = dir();
    write_segment(bad.path(), &SegmentSpec { data: Some((data, "[1]")), ..spec }, &[]);
    let r = analyze(&["info", bad.path().to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("netrec.data_switches")
            && r.stderr.contains("00000.parquet")
            && r.stderr.lines().count() == 1,
        "{}",
        r.stderr
    );
}

/// Version 5: a pre-fork server's passive opens are the accepting worker's
/// (its `accept` row), though the handshake's rows carry the master; and
/// rows split and filter by the container and pod their cgroup paths name.
#[test]
fn opens_belong_to_the_acceptor_and_rows_split_by_container() {
    const WEB: &str = "/system.slice/docker-aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111.scope";
    const API: &str = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a1b2c3d_0000_1111_2222_333344445555.slice/cri-containerd-bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222.scope";
    let d = dir();
    let spec = SegmentSpec { schema_version: 5, capture_id: "v5", ..Default::default() };
    let in_cg = |e: Ev, cg| Ev { cgroup: Some(cg), ..e };
    let accept = |ts, sock, pid| Ev {
        kind: "accept",
        ts,
        sock_id: Some(sock),
        pid: Some(pid),
        comm: Some("nginx"),
        lport: Some(80),
        rport: Some(5000 + sock as u16),
        ..Default::default()
    };
    let mut events = Vec::new();
    // Master 10 listens; workers 11 and 12 accept two and one connections.
    for (sock, worker) in [(1u64, 11u32), (2, 11), (3, 12)] {
        let t = T0 + sock as i64 * MS;
        events.push(in_cg(Ev { lport: Some(80), ..state(t, sock, Some(10), "LISTEN", "SYN_RECV") }, WEB));
        events.push(in_cg(Ev { lport: Some(80), ..state(t + US, sock, Some(10), "SYN_RECV", "ESTABLISHED") }, WEB));
        events.push(in_cg(accept(t + 2 * US, sock, worker), WEB));
        events
            .push(in_cg(Ev { lport: Some(80), ..state(t + 3 * US, sock, Some(worker), "ESTABLISHED", "CLOSE") }, WEB));
    }
    events.push(in_cg(io("send", T0, 11, "nginx", 100), WEB));
    events.push(in_cg(io("send", T0, 12, "nginx", 20), WEB));
    events.push(in_cg(io("recv", T0, 40, "api", 7), API));
    write_segment(d.path(), &spec, &events);
    let path = d.path().to_str().unwrap();

    let opens: Vec<(u64, u64)> = json_rows(&["churn", path, "--by", "pid"])
        .iter()
        .filter(|r| r.get("time").is_some())
        .map(|r| (r["pid"].as_u64().unwrap_or(0), r["opened_passive"].as_u64().unwrap()))
        .collect();
    assert_eq!(opens.iter().filter(|(p, _)| *p == 10).map(|(_, n)| n).sum::<u64>(), 0, "{opens:?}");
    assert_eq!(opens.iter().filter(|(p, _)| *p == 11).map(|(_, n)| n).sum::<u64>(), 2, "{opens:?}");
    assert_eq!(opens.iter().filter(|(p, _)| *p == 12).map(|(_, n)| n).sum::<u64>(), 1, "{opens:?}");
    // --pid selects what that worker accepted.
    let w12 = json_rows(&["churn", path, "--pid", "12"]);
    assert_eq!(sum(&w12.iter().filter(|r| r.get("time").is_some()).cloned().collect::<Vec<_>>(), "opened_passive"), 1);

    let totals = |args: &[&str]| -> Vec<(String, u64, u64)> {
        let mut all = vec!["netio", path];
        all.extend_from_slice(args);
        json_rows(&all)
            .iter()
            .filter(|r| r["total"] == "key")
            .map(|r| {
                let key = r
                    .as_object()
                    .unwrap()
                    .iter()
                    .find(|(k, _)| ["container", "pod", "pid"].contains(&k.as_str()))
                    .unwrap()
                    .1;
                (
                    key.as_str().map(String::from).unwrap_or_else(|| key.to_string()),
                    r["sent_bytes"].as_u64().unwrap(),
                    r["recv_bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let mut by_container = totals(&["--by", "container"]);
    by_container.sort();
    assert_eq!(
        by_container,
        [
            ("aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111".into(), 120, 0),
            ("bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222".into(), 0, 7)
        ]
    );
    let mut by_pod = totals(&["--by", "pod"]);
    by_pod.sort();
    assert_eq!(by_pod, [("0a1b2c3d-0000-1111-2222-333344445555".into(), 0, 7), ("null".into(), 120, 0)]);
    let mut web = totals(&["--container", "aaaaaaaaaaaa", "--by", "pid"]);
    web.sort();
    assert_eq!(web, [("11".into(), 100, 0), ("12".into(), 20, 0)]);
    assert_eq!(totals(&["--cgroup", "/kubepods.slice", "--by", "pid"]), [("40".into(), 0, 7)]);
    assert!(totals(&["--cgroup", "/kubepods"]).is_empty(), "a prefix of a name is no parent cgroup");
}

/// netio keeps a process's TCP and UDP bytes apart, and `--protocol` selects one.
#[test]
fn netio_shows_the_protocol_and_selects_by_it() {
    let d = dir();
    let udp = |kind, ts, bytes| Ev {
        protocol: Some("udp"),
        sock_id: Some(70),
        rport: Some(53),
        ..io(kind, ts, 7, "resolver", bytes)
    };
    write_segment(
        d.path(),
        &SegmentSpec::default(),
        &[
            io("send", T0, 7, "resolver", 100),
            udp("send", T0 + MS, 30),
            udp("recv", T0 + 2 * MS, 5),
            udp("send", T0 + SEC, 12),
        ],
    );
    let path = d.path().to_str().unwrap();
    let totals = |args: &[&str]| -> Vec<(String, u64, u64)> {
        let mut all = vec!["netio", path];
        all.extend_from_slice(args);
        let mut t: Vec<(String, u64, u64)> = json_rows(&all)
            .iter()
            .filter(|r| r["total"] == "key")
            .map(|r| {
                (
                    r["protocol"].as_str().unwrap().to_string(),
                    r["sent_bytes"].as_u64().unwrap(),
                    r["recv_bytes"].as_u64().unwrap(),
                )
            })
            .collect();
        t.sort();
        t
    };
    assert_eq!(totals(&["--by", "pid"]), [("tcp".into(), 100, 0), ("udp".into(), 42, 5)]);
    assert_eq!(totals(&["--protocol", "udp"]), [("udp".into(), 42, 5)]);
    assert_eq!(totals(&["--protocol", "tcp", "--protocol", "udp"]).len(), 2);
    let r = analyze(&["netio", path, "--protocol", "sctp"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--protocol") && r.stderr.contains("sctp"), "{}", r.stderr);
}

/// Pids are per host: in a trace of two hosts, pid 10 of each is its own
/// process (`--by pid` shows the host); one host's trace shows no host column.
#[test]
fn the_same_pid_on_two_hosts_is_two_processes() {
    let d = dir();
    for host in ["db1", "db2"] {
        let spec = SegmentSpec { host, capture_id: if host == "db1" { "aaaa" } else { "bbbb" }, ..Default::default() };
        write_segment(d.path(), &spec, &[io("send", T0, 10, "api", if host == "db1" { 100 } else { 7 })]);
    }
    let rows = json_rows(&["netio", s(d.path())]);
    let per: Vec<(String, u64)> = rows
        .iter()
        .filter(|r| r.get("time").is_some())
        .map(|r| (r["host"].as_str().unwrap().to_string(), r["sent_bytes"].as_u64().unwrap()))
        .collect();
    assert_eq!(per, [("db1".to_string(), 100), ("db2".to_string(), 7)]);
    let one = json_rows(&["netio", s(&d.path().join(files_of(d.path(), "db1")))]);
    assert!(one.iter().all(|r| r.get("host").is_none()), "{one:?}");
}

fn files_of(dir: &std::path::Path, host: &str) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.contains(host))
        .unwrap()
}
