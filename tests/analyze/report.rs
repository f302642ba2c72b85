//! `report` on the shipped samples: its tables equal the JSON of netio,
//! churn, latency and calls, and the page, opened in headless Chromium,
//! logs no error, fetches nothing and is not blank.

use std::collections::BTreeMap;
use std::path::Path;

use super::{dir, s};
use crate::frames::*;

fn samples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

/// The rows of `<table id="id">` (the first of that id), cells as text.
fn table(html: &str, id: &str) -> Vec<BTreeMap<String, String>> {
    let start = html.find(&format!("<table id=\"{id}\">")).unwrap_or_else(|| panic!("no table {id}"));
    let t = &html[start..start + html[start..].find("</table>").unwrap()];
    let cell = regex::Regex::new(r"<t[hd](?:\s[^>]*)?>(.*?)</t[hd]>").unwrap();
    let cells = |row: &str, _tag: &str| -> Vec<String> {
        cell.captures_iter(row)
            .map(|c| {
                c[1].replace("<br>", "\n")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&amp;", "&")
            })
            .collect()
    };
    let head = cells(&t[..t.find("</thead>").unwrap()], "th");
    t[t.find("<tbody>").unwrap()..]
        .split("<tr>")
        .skip(1)
        .map(|row| head.iter().cloned().zip(cells(row, "td")).collect())
        .collect()
}

/// A JSON row's fields as the report prints them.
fn texts(row: &serde_json::Value, fields: &[&str]) -> BTreeMap<String, String> {
    fields
        .iter()
        .map(|f| {
            let v = match &row[*f] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (f.to_string(), v)
        })
        .collect()
}

fn only(rows: &[BTreeMap<String, String>], fields: &[&str]) -> Vec<BTreeMap<String, String>> {
    rows.iter().map(|r| fields.iter().map(|f| (f.to_string(), r[*f].clone())).collect()).collect()
}

#[test]
fn report_numbers_are_the_metrics_and_it_renders_offline() {
    let d = dir();
    let out = d.path().join("report.html");
    for sample in ["mariadb-logins", "nginx-no-keepalive"] {
        let trace = samples().join(sample);
        let r = analyze(&["report", s(&trace), "-o", s(&out)]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let html = std::fs::read_to_string(&out).unwrap();
        // Self-contained: no script, nothing to load.
        for needle in ["<script", "http://", "https://", "src=", "@import", "url("] {
            assert!(!html.contains(needle), "{sample}: the report holds {needle}");
        }

        // NetIO: the per-second rows and the totals, as netio --top 8 gives them.
        let netio = json_rows(&["netio", s(&trace), "--top", "8"]);
        let fields = ["time", "pid", "comm", "protocol", "sent_bytes", "recv_bytes"];
        let want: Vec<_> = netio.iter().filter(|r| r.get("time").is_some()).map(|r| texts(r, &fields)).collect();
        assert_eq!(only(&table(&html, "netio"), &fields), want, "{sample}: netio");
        let fields = ["total", "pid", "comm", "sent_bytes", "recv_bytes"];
        let want: Vec<_> = netio.iter().filter(|r| r.get("total").is_some()).map(|r| texts(r, &fields)).collect();
        assert_eq!(only(&table(&html, "netio-totals"), &fields), want, "{sample}: totals");

        // Churn: every process together, per second.
        let churn = json_rows(&["churn", s(&trace)]);
        let counters = ["opened_active", "opened_passive", "closed", "failed", "resets", "short_lived"];
        let mut per: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for r in churn.iter().filter(|r| r.get("time").is_some()) {
            let e = per.entry(r["time"].as_str().unwrap().to_string()).or_insert(vec![0; 6]);
            for (i, c) in counters.iter().enumerate() {
                e[i] += r[*c].as_u64().unwrap();
            }
        }
        let got = table(&html, "churn");
        assert_eq!(got.len(), per.len(), "{sample}: churn seconds");
        for row in &got {
            let want = &per[&row["time"]];
            let have: Vec<u64> = counters.iter().map(|c| row[*c].parse().unwrap()).collect();
            assert_eq!(&have, want, "{sample}: churn at {}", row["time"]);
        }

        // Latency by comm, every percentile.
        let latency = json_rows(&["latency", s(&trace), "--by", "comm"]);
        let fields = ["metric", "comm", "count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"];
        let want: Vec<_> = latency.iter().map(|r| texts(r, &fields)).collect();
        assert_eq!(only(&table(&html, "latency"), &fields), want, "{sample}: latency");

        // Calls, where the sample has them.
        let calls = json_rows(&["calls", s(&trace)]);
        if calls.is_empty() {
            assert!(html.contains("No application probes"));
        } else {
            let fields = ["time", "probe", "calls", "unfinished", "tcp_opens"];
            let want: Vec<_> = calls.iter().filter(|r| r.get("time").is_some()).map(|r| texts(r, &fields)).collect();
            assert_eq!(only(&table(&html, "calls"), &fields), want, "{sample}: calls");
        }
    }

    // In a real browser: no error, no request but the page, not blank.
    let shot = d.path().join("report.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/analyze/browser_check.py");
    let run = std::process::Command::new("python3").arg(&script).arg(&out).arg(&shot).output().unwrap();
    assert!(
        run.status.success(),
        "headless Chromium (tests/run installs it): {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    let requests: Vec<&str> = v["requests"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(requests, [format!("file://{}", out.display())], "only the page itself");
    assert!(v["charts"].as_u64().unwrap() >= 4, "{v}");
    assert!(v["stddev"].as_f64().unwrap() > 10.0, "the screenshot is blank: {v}");
}
