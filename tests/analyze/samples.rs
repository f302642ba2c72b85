//! The shipped samples, analyzed: the answers come from the recording script's
//! client-side and server-side counts (samples/*/expected.json), not from netrec.

use std::path::PathBuf;

use serde_json::Value;

use crate::frames::json_rows;

fn sample(name: &str) -> (String, Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples").join(name);
    let expected = std::fs::read_to_string(dir.join("expected.json")).unwrap_or_else(|e| panic!("{name}: {e}"));
    (dir.join("segments").to_str().unwrap().to_string(), serde_json::from_str(&expected).unwrap())
}

/// Totals per command name over the whole sample.
fn netio_totals(path: &str, comm: &str) -> (u64, u64) {
    let rows = json_rows(&["netio", path, "--by", "comm"]);
    let row =
        rows.iter().find(|r| r["total"] == "key" && r["comm"] == comm).unwrap_or_else(|| panic!("no {comm}: {rows:?}"));
    (row["sent_bytes"].as_u64().unwrap(), row["recv_bytes"].as_u64().unwrap())
}

fn churn_sum(path: &str, comm: &str, field: &str) -> u64 {
    json_rows(&["churn", path, "--by", "comm", "--comm", comm])
        .iter()
        .filter(|r| r.get("time").is_some())
        .map(|r| r[field].as_u64().unwrap())
        .sum()
}

#[test]
fn mariadb_short_connections_sample() {
    let (path, want) = sample("mariadb-short-connections");
    let n = want["connections"].as_u64().unwrap();
    assert_eq!(churn_sum(&path, "mariadb", "opened_active"), n);
    assert_eq!(churn_sum(&path, "mariadbd", "opened_passive"), n);
    assert_eq!(churn_sum(&path, "mariadbd", "closed"), n);
    let lat = json_rows(&["latency", &path, "--by", "comm", "--comm", "mariadb"]);
    let connect = lat.iter().find(|r| r["metric"] == "connect").unwrap();
    assert_eq!(connect["count"].as_u64(), Some(n));
}

/// Logins per second next to connections accepted per second.
#[test]
fn mariadb_logins_sample() {
    let (path, want) = sample("mariadb-logins");
    let (conns, logins, queries) =
        (want["connections"].as_u64().unwrap(), want["logins"].as_u64().unwrap(), want["queries"].as_u64().unwrap());
    let rows = json_rows(&["calls", &path, "--by", "comm"]);
    let per_second: Vec<&Value> =
        rows.iter().filter(|r| r.get("time").is_some() && r["probe"] == "login_connection").collect();
    assert!(per_second.len() >= 2, "the flood spans seconds: {per_second:?}");
    for r in &per_second {
        assert_eq!(r["calls"], r["tcp_opens"], "each second: one login per accepted connection: {r}");
    }
    let total = |probe: &str| rows.iter().find(|r| r.get("time").is_none() && r["probe"] == probe).unwrap().clone();
    assert_eq!(total("login_connection")["calls"].as_u64(), Some(logins));
    assert_eq!(total("login_connection")["tcp_opens"].as_u64(), Some(conns));
    assert_eq!(total("dispatch_command")["calls"].as_u64(), Some(queries + conns), "every query and every COM_QUIT");
    assert_eq!(churn_sum(&path, "mariadbd", "opened_passive"), conns);
    let lat = json_rows(&["latency", &path, "--by", "comm", "--comm", "mariadbd"]);
    let login = lat.iter().find(|r| r["metric"] == "call:login_connection").unwrap();
    assert_eq!(login["count"].as_u64(), Some(logins));
}

#[test]
fn redis_benchmark_sample() {
    let (path, want) = sample("redis-benchmark");
    let (sent, recv) = netio_totals(&path, "redis-server");
    assert_eq!(sent, want["server_sent_bytes"].as_u64().unwrap(), "redis-server's own total_net_output_bytes");
    assert_eq!(recv, want["server_recv_bytes"].as_u64().unwrap(), "redis-server's own total_net_input_bytes");
    let (bench_sent, bench_recv) = netio_totals(&path, "redis-benchmark");
    assert_eq!((bench_sent, bench_recv), (recv, sent), "what one side sent, the other consumed");
    assert_eq!(churn_sum(&path, "redis-server", "opened_passive"), want["connections"].as_u64().unwrap());
}

fn nginx(name: &str) {
    let (path, want) = sample(name);
    let (sent, recv) = netio_totals(&path, "curl");
    assert_eq!(recv, want["client_recv_bytes"].as_u64().unwrap(), "curl's size_header + size_download");
    assert_eq!(sent, want["client_sent_bytes"].as_u64().unwrap(), "curl's size_request");
    assert_eq!(churn_sum(&path, "curl", "opened_active"), want["connections"].as_u64().unwrap());
}

#[test]
fn nginx_keepalive_sample() {
    nginx("nginx-keepalive");
}

#[test]
fn nginx_no_keepalive_sample() {
    nginx("nginx-no-keepalive");
}
