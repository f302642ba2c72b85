//! `replay` on hand-made segments: time order across segments, row groups
//! and hosts (DuckDB's ORDER BY as the reference), the line format, pacing,
//! the per-second views against `netio`/`churn`, and bad inputs.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::frames::*;
use super::{churn_frame, dir, s};

/// Two hosts; host db1's rows grouped by kind within two row groups per
/// segment (as the capture writes them), its second segment starting with
/// an aggregate row of an interval that began in the first. Pid 1 and
/// socket 9 are on both hosts: two processes, two connections.
fn two_hosts(d: &Path) -> Vec<(i64, &'static str)> {
    let v4 = |host, capture_id, index, start| SegmentSpec {
        host,
        capture_id,
        index,
        start,
        end: start + 2 * SEC,
        schema_version: 4,
        row_groups: 2,
        ..Default::default()
    };
    let a0 = [
        io("send", T0 + 10, 1, "api", 100),
        io("send", T0 + SEC + 5, 1, "api", 200),
        state(T0 + 20, 9, Some(1), "CLOSE", "SYN_SENT"),
        state(T0 + 30, 9, Some(1), "SYN_SENT", "ESTABLISHED"),
        io("recv", T0 + 40, 1, "api", 7),
        io("recv", T0 + SEC + 1, 1, "api", 8),
    ];
    let aggregate = Ev { samples: Some(12), ..io("send", T0 + SEC, 2, "batch", 4096) };
    let a1 = [aggregate, io("send", T0 + 2 * SEC + 3, 1, "api", 300), rtt(T0 + 2 * SEC + 1, 9, 1, 55)];
    let b0 = [
        io("send", T0 + 12, 1, "nginx", 50),
        state(T0 + 25, 9, Some(1), "SYN_SENT", "ESTABLISHED"),
        io("recv", T0 + 15, 5, "web", 1),
        io("recv", T0 + SEC + 2, 5, "web", 2),
        io("send", T0 + 2 * SEC + 2, 5, "web", 3),
    ];
    write_segment(d, &v4("db1", "c0ffee", 0, T0), &a0);
    write_segment(d, &v4("db1", "c0ffee", 1, T0 + 2 * SEC), &a1);
    write_segment(d, &v4("web1", "beef00", 0, T0), &b0);
    let mut all: Vec<(i64, &str)> = a0.iter().chain(a1.iter()).chain(b0.iter()).map(|e| (e.ts, e.kind)).collect();
    all.sort();
    all
}

fn ns(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_nanos_opt().unwrap()
}

/// (ts, kind) of every event as DuckDB orders them.
fn duckdb_order(d: &Path) -> Vec<(i64, String)> {
    let q = format!(
        "import duckdb\nfor t, k in duckdb.sql(\"select epoch_ns(ts), kind from read_parquet('{}/*.parquet') order by ts, kind\").fetchall(): print(t, k)",
        d.display()
    );
    let out = std::process::Command::new("python3").args(["-c", &q]).output().unwrap();
    assert!(out.status.success(), "duckdb: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (t, k) = l.split_once(' ').unwrap();
            (t.parse().unwrap(), k.to_string())
        })
        .collect()
}

#[test]
fn events_come_in_time_order_across_segments_row_groups_and_hosts() {
    let d = dir();
    let expected = two_hosts(d.path());
    let rows = json_rows(&["replay", s(d.path())]);
    let got: Vec<(i64, String)> =
        rows.iter().map(|r| (ns(r["ts"].as_str().unwrap()), r["kind"].as_str().unwrap().to_string())).collect();
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "not in time order: {got:?}");
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, duckdb_order(d.path()), "the same events as DuckDB reads");
    assert_eq!(sorted, expected.iter().map(|(t, k)| (*t, k.to_string())).collect::<Vec<_>>());

    // Schema field names; null columns left out; host from the metadata.
    let agg = rows.iter().find(|r| r["samples"] == 12).unwrap();
    assert_eq!(agg["host"], "db1");
    assert_eq!(
        (agg["bytes"].as_u64(), agg["pid"].as_u64(), agg["comm"].as_str()),
        (Some(4096), Some(2), Some("batch"))
    );
    assert!(agg.get("old_state").is_none() && agg.get("srtt_us").is_none(), "{agg}");
    assert_eq!(agg["ts"], "2026-01-01T00:00:01.000000000Z");
    for r in &rows {
        for k in r.as_object().unwrap().keys() {
            assert!(netrec_schema::column(k).is_some() || k == "host" || k == "capture_id", "{k}");
        }
    }

    // Filters and --kind apply; text lines carry the connection and the kind's fields.
    let kinds = json_rows(&["replay", s(d.path()), "--kind", "state,rtt", "--host", "db1"]);
    assert_eq!(kinds.iter().map(|r| r["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["state", "state", "rtt"]);
    let text = analyze(&["replay", s(d.path()), "--to", "+1s"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{}", text.stdout);
    assert_eq!(
        lines[0],
        "2026-01-01T00:00:00.000000010Z db1 send 1 api tcp 127.0.0.1:3306 > 127.0.0.2:40000 100 bytes"
    );
    assert_eq!(
        lines[1],
        "2026-01-01T00:00:00.000000012Z web1 send 1 nginx tcp 127.0.0.1:3306 > 127.0.0.2:40000 50 bytes"
    );
    assert_eq!(lines[2], "2026-01-01T00:00:00.000000015Z web1 recv 5 web tcp 127.0.0.1:3306 < 127.0.0.2:40000 1 bytes");
    assert_eq!(
        lines[3],
        "2026-01-01T00:00:00.000000020Z db1 state 1 app tcp 127.0.0.1:5009 - 127.0.0.2:3306 CLOSE -> SYN_SENT"
    );
    let all = analyze(&["replay", s(d.path()), "--from", "+1s"]).stdout;
    assert!(
        all.contains("db1 send 2 batch tcp 127.0.0.1:3306 > 127.0.0.2:40000 4096 bytes in 12 calls (aggregate"),
        "{all}"
    );
    assert!(all.contains("db1 rtt 1 app tcp 127.0.0.1:1 - 127.0.0.2:3306 srtt 55 us\n"), "{all}");
}

/// A 3 s trace: about 3 s at --speed 1, about 0.3 s at --speed 10.
#[test]
fn speed_plays_at_the_recorded_pace() {
    let d = dir();
    let evs: Vec<Ev> = (0..=6).map(|i| io("send", T0 + i * SEC / 2, 1, "api", 1)).collect();
    write_segment(d.path(), &SegmentSpec::default(), &evs);
    let time = |speed: &str| {
        let t = Instant::now();
        let r = analyze(&["replay", s(d.path()), "--speed", speed]);
        assert_eq!((r.code, r.stdout.lines().count()), (0, 7), "{}", r.stderr);
        t.elapsed().as_secs_f64()
    };
    let (fast, real) = (time("10"), time("1"));
    assert!((2.9..4.5).contains(&real), "--speed 1 took {real:.2} s");
    assert!((0.28..1.2).contains(&fast), "--speed 10 took {fast:.2} s");
}

fn view_rows(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["replay"];
    all.extend(args);
    json_rows(&all)
}

#[test]
fn netio_view_is_netio_per_process_per_second() {
    let d = dir();
    two_hosts(d.path());
    let view = view_rows(&[s(d.path()), "--view", "netio"]);
    let netio = json_rows(&["netio", s(d.path()), "--by", "pid"]);
    let key = |r: &Value| {
        (r["time"].as_str().unwrap().to_string(), r["host"].as_str().unwrap().to_string(), r["pid"].as_u64().unwrap())
    };
    let mut a: Vec<_> = view.iter().map(|r| (key(r), r["sent_bytes"].clone(), r["recv_bytes"].clone())).collect();
    let mut b: Vec<_> = netio
        .iter()
        .filter(|r| r.get("time").is_some())
        .map(|r| (key(r), r["sent_bytes"].clone(), r["recv_bytes"].clone()))
        .collect();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a, b);
    assert_eq!(a.len(), 8, "{a:?}");

    // The text is netrec-capture --live's printout, with the host: pid 1 is
    // a process on each.
    let text = analyze(&["replay", s(d.path()), "--view", "netio"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    let live = |a: &str, h: &str, b: &str, c: &str, d: &str, e: &str| {
        format!("{a:<10} {h:<16} {b:>8} {c:<16} {d:>14} {e:>14}")
    };
    assert_eq!(lines[0], live("TIME", "HOST", "PID", "COMM", "SENT_BYTES", "RECV_BYTES"));
    assert_eq!(lines[1], live("00:00:00", "db1", "1", "api", "100", "7"));
    assert_eq!(lines[2], live("00:00:00", "web1", "1", "nginx", "50", "0"));
    assert_eq!(lines[3], live("00:00:00", "web1", "5", "web", "0", "1"));
    assert_eq!(lines[4], live("00:00:01", "db1", "2", "batch", "4096", "0"));

    // One host's: the printout of its capture, no host column.
    let one = analyze(&["replay", s(d.path()), "--view", "netio", "--host", "web1"]).stdout;
    let lines: Vec<&str> = one.lines().collect();
    let live = |a: &str, b: &str, c: &str, d: &str, e: &str| format!("{a:<10} {b:>8} {c:<16} {d:>14} {e:>14}");
    assert_eq!(lines[0], live("TIME", "PID", "COMM", "SENT_BYTES", "RECV_BYTES"));
    assert_eq!(lines[1], live("00:00:00", "1", "nginx", "50", "0"));
}

/// Socket 9 of pid 1 opens on both hosts in the same second: two
/// processes' opens, as churn counts them, not one process's two.
#[test]
fn churn_view_keeps_hosts_apart() {
    let d = dir();
    two_hosts(d.path());
    let pick = |rows: Vec<Value>| {
        let mut v: Vec<(String, String, u64, u64)> = rows
            .iter()
            .filter(|r| r.get("time").is_some() && r["opened_active"].as_u64() > Some(0))
            .map(|r| {
                let text = |c: &str| r[c].as_str().unwrap().to_string();
                (text("time"), text("host"), r["pid"].as_u64().unwrap(), r["opened_active"].as_u64().unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let view = pick(view_rows(&[s(d.path()), "--view", "churn"]));
    assert_eq!(view, pick(json_rows(&["churn", s(d.path()), "--by", "pid"])));
    let second = "2026-01-01T00:00:00Z".to_string();
    assert_eq!(view, [(second.clone(), "db1".into(), 1, 1), (second, "web1".into(), 1, 1)]);
}

/// A pre-fork server: the master (pid 1) owns the handshake's rows, the
/// worker (pid 2) accepts; the view counts the passive open for the worker,
/// as churn does, and --pid 2 keeps it.
#[test]
fn churn_view_counts_as_churn_does() {
    let d = dir();
    churn_frame(d.path());
    let accepted = [
        state(T0 + 30 * SEC, 20, Some(1), "LISTEN", "SYN_RECV"),
        state(T0 + 30 * SEC + 10, 20, Some(1), "SYN_RECV", "ESTABLISHED"),
        Ev {
            kind: "accept",
            ts: T0 + 30 * SEC + 3 * MS,
            pid: Some(2),
            comm: Some("worker"),
            sock_id: Some(20),
            ..Default::default()
        },
        state(T0 + 30 * SEC + 40 * MS, 20, Some(2), "ESTABLISHED", "CLOSE_WAIT"),
        state(T0 + 30 * SEC + 41 * MS, 20, Some(2), "CLOSE_WAIT", "LAST_ACK"),
        state(T0 + 30 * SEC + 42 * MS, 20, Some(2), "LAST_ACK", "CLOSE"),
    ];
    let spec =
        SegmentSpec { index: 2, start: T0 + 20 * SEC, end: T0 + 40 * SEC, schema_version: 5, ..Default::default() };
    write_segment(d.path(), &spec, &accepted);
    let counters = ["opened_active", "opened_passive", "closed", "failed", "resets", "short_lived"];
    let pick = |rows: &[Value]| {
        let mut v: Vec<(String, Value, Vec<Value>)> = rows
            .iter()
            .filter(|r| r.get("time").is_some())
            .map(|r| {
                (
                    r["time"].as_str().unwrap().to_string(),
                    r["pid"].clone(),
                    counters.iter().map(|c| r[*c].clone()).collect::<Vec<Value>>(),
                )
            })
            .filter(|(_, _, c)| c.iter().any(|v| v != 0))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1.to_string()).cmp(&(&b.0, b.1.to_string())));
        v
    };
    for extra in [&[][..], &["--pid", "2"], &["--short", "1s"]] {
        let mut view_args = vec![s(d.path()), "--view", "churn"];
        view_args.extend(extra);
        let mut churn_args = vec!["churn", s(d.path()), "--by", "pid"];
        churn_args.extend(extra);
        assert_eq!(pick(&view_rows(&view_args)), pick(&json_rows(&churn_args)), "{extra:?}");
    }
    let worker: Vec<Value> =
        view_rows(&[s(d.path()), "--view", "churn"]).into_iter().filter(|r| r["pid"] == 2).collect();
    assert_eq!(worker.len(), 1, "{worker:?}");
    assert_eq!((worker[0]["opened_passive"].as_u64(), worker[0]["short_lived"].as_u64()), (Some(1), Some(1)));
}

#[test]
fn bad_replay_input_gets_one_line_and_exit_2() {
    let d = dir();
    two_hosts(d.path());
    let not_segment = d.path().join("notes.parquet");
    std::fs::write(&not_segment, b"not parquet").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["replay", "/nonexistent/trace"], "/nonexistent/trace"),
        (vec!["replay", s(&not_segment)], "notes.parquet"),
        (vec!["replay", s(d.path()), "--speed", "0"], "--speed"),
        (vec!["replay", s(d.path()), "--speed", "fast"], "--speed"),
        (vec!["replay", s(d.path()), "--kind", "bogus"], "--kind"),
        (vec!["replay", s(d.path()), "--view", "churn", "--kind", "send"], "--kind"),
        (vec!["replay", "--follow", s(&not_segment)], "not a directory"),
        (vec!["replay", s(d.path()), "--follow", s(d.path())], "--follow"),
        (vec!["replay"], "PATH"),
    ];
    for (args, names) in cases {
        let r = analyze(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(names), "{args:?} should name {names}: {}", r.stderr);
    }
}
