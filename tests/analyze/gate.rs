//! diff and check on hand-made frames: verdicts with known answers, and
//! the Mann-Whitney U p-values against scipy's.

use std::collections::BTreeMap;
use std::path::Path;

use super::{dir, s};
use crate::frames::*;

/// A trace of one segment (schema version 2: calls) in a directory of its own.
fn trace(root: &Path, name: &str, lost: u64, events: &mut [Ev]) -> String {
    let d = root.join(name);
    std::fs::create_dir(&d).unwrap();
    events.sort_by_key(|e| e.ts);
    let spec = SegmentSpec { schema_version: 2, lost, ..Default::default() };
    write_segment(&d, &spec, events);
    s(&d).to_string()
}

/// `bytes` sent by `comm` in 1000-byte sends, one per ms from `at`.
fn sends(comm: &'static str, pid: u32, bytes: u64, at: i64) -> Vec<Ev> {
    (0..bytes / 1000).map(|i| io("send", at + i as i64 * MS, pid, comm, 1000)).collect()
}

/// `n` connections of comm app, each open `life` long, one per 10 ms from `at`.
fn connects(n: u64, first_sock: u64, at: i64, connect: i64, life: i64) -> Vec<Ev> {
    let mut ev = Vec::new();
    for i in 0..n {
        let (sock, t) = (first_sock + i, at + i as i64 * 10 * MS);
        ev.push(state(t, sock, Some(7), "CLOSE", "SYN_SENT"));
        ev.push(state(t + connect, sock, Some(7), "SYN_SENT", "ESTABLISHED"));
        ev.push(state(t + connect + life, sock, Some(7), "ESTABLISHED", "CLOSE"));
    }
    ev
}

fn calls_of(probe: &'static str, comm: &'static str, us: &[u64], at: i64) -> Vec<Ev> {
    us.iter().enumerate().map(|(i, d)| call(at + i as i64 * MS, 9, comm, probe, Some(d * 1000))).collect()
}

/// (key, metric) -> row, of a diff's JSON rows.
fn compared(rows: &[serde_json::Value], key: &str) -> BTreeMap<(String, String), serde_json::Value> {
    rows.iter()
        .filter(|r| r.get("metric").is_some())
        .map(|r| ((r[key].as_str().unwrap_or("").to_string(), r["metric"].as_str().unwrap().to_string()), r.clone()))
        .collect()
}

fn diff_json(args: &[&str]) -> (i32, Vec<serde_json::Value>) {
    let mut full = vec!["diff"];
    full.extend(args);
    full.extend(["--format", "json"]);
    let r = analyze(&full);
    assert!(r.code == 0 || r.code == 1, "{args:?}: {}", r.stderr);
    (r.code, r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

#[test]
fn diff_gives_each_change_its_verdict() {
    let d = dir();
    let mut base = Vec::new();
    let mut cand = Vec::new();
    base.extend(sends("grow", 1, 100_000, T0));
    cand.extend(sends("grow", 1, 150_000, T0));
    base.extend(sends("steady", 2, 100_000, T0));
    cand.extend(sends("steady", 2, 105_000, T0));
    base.extend(sends("small", 3, 1_000, T0));
    cand.extend(sends("small", 3, 5_000, T0));
    base.extend(sends("old", 4, 100_000, T0));
    cand.extend(sends("fresh", 5, 100_000, T0));
    // 100 connections against 125: a quarter more, but within a count's noise.
    base.extend(connects(100, 1000, T0, 100 * US, 20 * MS));
    cand.extend(connects(125, 1000, T0, 100 * US, 20 * MS));
    let (b, c) = (trace(d.path(), "base", 0, &mut base), trace(d.path(), "cand", 0, &mut cand));

    let (code, rows) = diff_json(&[&b, &c]);
    assert_eq!(code, 1, "grow regressed");
    let got = compared(&rows, "comm");
    let verdict = |comm: &str, metric: &str| {
        got.get(&(comm.into(), metric.into())).map(|r| r["verdict"].as_str().unwrap().to_string()).unwrap_or_default()
    };
    assert_eq!(verdict("grow", "sent_bytes"), "regressed");
    assert_eq!(got[&("grow".into(), "sent_bytes".into())]["change_pct"], 50.0);
    assert_eq!(verdict("steady", "sent_bytes"), "unchanged");
    assert_eq!(verdict("small", "sent_bytes"), "too few samples");
    assert_eq!(verdict("fresh", "sent_bytes"), "new");
    assert_eq!(verdict("old", "sent_bytes"), "gone");
    assert_eq!(verdict("app", "opened_active"), "within noise");
    assert_eq!(verdict("app", "closed"), "within noise");
    assert_eq!(verdict("app", "connect"), "unchanged", "100 us both times");
    let regressed: Vec<_> = got.iter().filter(|(_, r)| r["verdict"] == "regressed").map(|(k, _)| k.clone()).collect();
    assert_eq!(regressed, vec![("grow".to_string(), "sent_bytes".to_string())]);

    // Against itself: nothing regressed, nothing improved.
    let (code, rows) = diff_json(&[&b, &b]);
    assert_eq!(code, 0);
    assert!(compared(&rows, "comm").values().all(|r| r["verdict"] == "unchanged"), "{rows:?}");

    // A tighter threshold for one metric; Markdown for a pull request.
    let (code, rows) = diff_json(&[&b, &c, "--threshold", "sent_bytes=60%", "--comm", "grow"]);
    assert_eq!(code, 0, "{rows:?}");
    let md = analyze(&["diff", &b, &c, "--format", "markdown", "--changed"]);
    assert_eq!(md.code, 1);
    assert!(md.stdout.contains("### netrec diff") && md.stdout.contains("| regressed"), "{}", md.stdout);
    assert!(!md.stdout.contains("| unchanged"), "--changed leaves them out: {}", md.stdout);
}

#[test]
fn diff_per_probe_compares_work_per_call() {
    let d = dir();
    // Twice the queries and twice the bytes: totals regressed, bytes per query not.
    let mut base = sends("srv", 1, 200_000, T0);
    base.extend(calls_of("query", "srv", &[100; 100], T0));
    let mut cand = sends("srv", 1, 400_000, T0);
    cand.extend(calls_of("query", "srv", &[100; 200], T0));
    let (b, c) = (trace(d.path(), "base", 0, &mut base), trace(d.path(), "cand", 0, &mut cand));
    let (code, rows) = diff_json(&[&b, &c, "--per", "query"]);
    assert_eq!(code, 1);
    let got = compared(&rows, "comm");
    assert_eq!(got[&("srv".into(), "sent_bytes".into())]["verdict"], "regressed");
    assert_eq!(got[&("srv".into(), "calls:query".into())]["verdict"], "regressed");
    let per = &got[&("srv".into(), "sent_bytes per query".into())];
    assert_eq!((per["base"].as_f64(), per["candidate"].as_f64()), (Some(2000.0), Some(2000.0)));
    assert_eq!(per["verdict"], "unchanged");
}

/// Deterministic pseudo-random values in lo..lo+span.
fn spread(n: usize, lo: u64, span: u64, seed: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            lo + x % span
        })
        .collect()
}

#[test]
fn diff_latency_test_matches_scipy() {
    let d = dir();
    let cases: Vec<(&'static str, Vec<u64>, Vec<u64>)> = vec![
        // identical inputs
        ("same", spread(300, 1000, 400, 1), spread(300, 1000, 400, 1)),
        // shifted by 30 %, with ties (400 distinct values in 300 samples)
        ("shifted", spread(300, 1000, 400, 2), spread(300, 1000, 400, 3).iter().map(|v| v * 13 / 10).collect()),
        // heavy ties: three values in other proportions
        (
            "ties",
            [vec![100; 80], vec![200; 80], vec![300; 40]].concat(),
            [vec![100; 60], vec![200; 80], vec![300; 60]].concat(),
        ),
        // the same distribution drawn twice: not significant
        ("redrawn", spread(200, 500, 100, 4), spread(200, 500, 100, 5)),
        // tiny samples, ten times slower: too few to judge
        ("tiny", vec![100, 110, 120, 130, 140], vec![1000, 1100, 1200, 1300, 1400]),
        // small without ties (the normal approximation still, as scipy's method="asymptotic")
        ("small", vec![3000, 3100, 3200, 3300, 3400, 3500], vec![3600, 3700, 3800, 3900, 4000, 4100, 4200]),
        // a wide distribution moved by a fifth of its p50: significant over
        // 2,000 samples, but most pairs still overlap (a12 = 0.60)
        ("wide", spread(2000, 100, 2800, 6), spread(2000, 400, 2800, 7)),
    ];
    let (mut base, mut cand) = (Vec::new(), Vec::new());
    for (probe, a, b) in &cases {
        base.extend(calls_of(probe, "app", a, T0));
        cand.extend(calls_of(probe, "app", b, T0));
    }
    let (b, c) = (trace(d.path(), "base", 0, &mut base), trace(d.path(), "cand", 0, &mut cand));
    let (_, rows) = diff_json(&[&b, &c, "--by", "probe", "--min-samples", "6"]);
    let got = compared(&rows, "probe");

    // scipy's U of its first sample, the candidate's, over all pairs: a12.
    let script = "import json, sys\nfrom scipy.stats import mannwhitneyu\nfor name, a, b in json.load(sys.stdin):\n    r = mannwhitneyu(b, a, alternative='two-sided', method='asymptotic')\n    print(name, repr(float(r.pvalue)), repr(float(r.statistic) / (len(a) * len(b))))\n";
    let input = serde_json::to_string(&cases).unwrap();
    let mut py = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with scipy (tests/run installs it)");
    std::io::Write::write_all(py.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success(), "scipy: {}", String::from_utf8_lossy(&out.stderr));
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (name, want, want_a12): (&str, f64, f64) =
            (fields[0], fields[1].parse().unwrap(), fields[2].parse().unwrap());
        let row = &got[&(name.to_string(), "call".to_string())];
        let p = row["p_value"].as_f64().unwrap_or(f64::NAN);
        assert!((p - want).abs() <= 1e-9 * want.max(1e-12) + 1e-12, "{name}: netrec p = {p}, scipy p = {want}");
        let a12 = row["a12"].as_f64().unwrap_or(f64::NAN);
        assert!((a12 - want_a12).abs() <= 1e-12, "{name}: netrec a12 = {a12}, scipy U / (n m) = {want_a12}");
    }
    let verdict = |probe: &str| got[&(probe.to_string(), "call".to_string())]["verdict"].as_str().unwrap().to_string();
    assert_eq!(verdict("same"), "unchanged");
    assert_eq!(verdict("shifted"), "regressed");
    assert_eq!(verdict("redrawn"), "unchanged");
    assert_eq!(verdict("tiny"), "too few samples");
    assert_eq!(verdict("small"), "regressed", "6 and 7 samples, every candidate slower");
    let wide = &got[&("wide".to_string(), "call".to_string())];
    assert!(wide["p_value"].as_f64().unwrap() < 1e-6 && wide["change_pct"].as_f64().unwrap() > 10.0, "{wide}");
    assert_eq!(wide["verdict"], "within noise", "a12 {} below --min-effect 0.64", wide["a12"]);
    let (_, rows) = diff_json(&[&b, &c, "--by", "probe", "--min-samples", "6", "--min-effect", "0.55"]);
    assert_eq!(compared(&rows, "probe")[&("wide".to_string(), "call".to_string())]["verdict"], "regressed");
    // Percentiles side by side: the tied case's p50 is 200 on both sides.
    let ties = &got[&("ties".to_string(), "call".to_string())];
    assert_eq!((ties["base"].as_f64(), ties["candidate"].as_f64()), (Some(200.0), Some(200.0)));
    assert_eq!(ties["verdict"], "unchanged", "{ties}");
}

#[test]
fn check_lists_each_violation_with_key_and_second() {
    let d = dir();
    let mut ev = Vec::new();
    // Second 0: 2 short connections; second 1: 3 (connect 5 ms each).
    ev.extend(connects(2, 1, T0, 5 * MS, 10 * MS));
    ev.extend(connects(3, 10, T0 + SEC, 5 * MS, 10 * MS));
    // A failed connect at second 2.
    ev.push(state(T0 + 2 * SEC, 50, Some(7), "CLOSE", "SYN_SENT"));
    ev.push(state(T0 + 2 * SEC + MS, 50, Some(7), "SYN_SENT", "CLOSE"));
    ev.extend(sends("app", 7, 10_000, T0));
    let t = trace(d.path(), "t", 4, &mut ev);
    let rules = d.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"# budgets
[[rule]]
metric = "failed"
max = 0

[[rule]]
metric = "short_lived"
comm = "app"
max_per_second = 2

[[rule]]
metric = "connect"
max_p99_us = 2000

[[rule]]
metric = "sent_bytes"
max = 1000000

[[rule]]
metric = "lost_events"
max = 0
"#,
    )
    .unwrap();
    let r = analyze(&["check", &t, "--rules", s(&rules), "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let rows: Vec<serde_json::Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let violations: Vec<(u64, String, Option<String>, f64)> = rows
        .iter()
        .filter(|r| r.get("limit").is_some())
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["key"].as_str().unwrap().to_string(),
                r["time"].as_str().map(String::from),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        violations,
        vec![
            (2, "comm=app".into(), None, 1.0),
            (6, "comm=app".into(), Some("2026-01-01T00:00:01Z".into()), 3.0),
            (11, "comm=app".into(), None, 5000.0),
            (19, "trace".into(), None, 4.0),
        ]
    );
    let verdicts: Vec<&str> = rows.iter().filter_map(|r| r.get("verdict")).map(|v| v.as_str().unwrap()).collect();
    assert_eq!(verdicts, ["violated", "violated", "violated", "holds", "violated"]);

    // Rules that hold: exit 0.
    std::fs::write(&rules, "[[rule]]\nmetric = \"sent_bytes\"\nmax = 10000\n").unwrap();
    assert_eq!(analyze(&["check", &t, "--rules", s(&rules)]).code, 0);

    // Errors in the rules name the line.
    for (text, needle) in [
        ("[[rule]]\nmetric = \"failed\"\nmx = 0\n", "rules.toml:3: unknown field `mx`"),
        ("[[rule]]\nmetric = \"bogus\"\nmax = 0\n", "rules.toml:2: \"bogus\": unknown metric"),
        ("[[rule]]\nmetric = \"connect\"\nmax = 0\n", "rules.toml:2: \"connect\": a latency metric takes"),
        ("\n[[rule]]\nmetric = \"failed\"\n", "rules.toml:2: rule for \"failed\" has no bound"),
        ("[[rule]\n", "rules.toml:1:"),
    ] {
        std::fs::write(&rules, text).unwrap();
        let r = analyze(&["check", &t, "--rules", s(&rules)]);
        assert_eq!(r.code, 2, "{text}");
        assert!(r.stderr.contains(needle) && r.stderr.trim().lines().count() == 1, "{text}: {}", r.stderr);
    }
}
