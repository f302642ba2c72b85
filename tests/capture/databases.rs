//! Application probes on real servers: MariaDB's login and query functions
//! (uprobes on mariadbd's C++ symbols) and PostgreSQL's query USDT probes.

use std::process::Command;

use crate::servers::Server;
use crate::support::*;

/// N separate connections and M queries on one more: exactly N + 1 logins,
/// at least N + M dispatches, and churn shows the same N + 1 connections.
#[test]
fn mariadb_logins_and_queries() {
    const N: usize = 12;
    const M: usize = 25;
    let _g = serial();
    let server = Server::mariadb(33071);
    let dir = tempdir();
    let out = dir.path().join("segments");
    let bin = server.binary.display().to_string();
    // One plain name, one mangled C++ name: both resolve.
    let login = format!("{bin}:login_connection");
    let dispatch = format!("{bin}:_Z16dispatch_command19enum_server_commandP3THDPcjb");
    let port = server.port.to_string();
    let cap = Capture::start(&out, &["--port", &port, "--uprobe", &login, "--uprobe", &dispatch]);
    let client = |sql: &str| {
        let o = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", &port, "-u", "root", "-N", "-B", "-e", sql])
            .output()
            .expect("run mariadb");
        assert!(o.status.success(), "mariadb -e {sql}: {}", String::from_utf8_lossy(&o.stderr));
    };
    for i in 0..N {
        client(&format!("SELECT {i}"));
    }
    let queries: Vec<String> = (0..M).map(|i| format!("SELECT {i}")).collect();
    client(&queries.join("; "));
    let (status, _, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");

    let segs = read_segments(&out);
    let rows: Vec<Row> =
        all_rows(&segs).into_iter().filter(|r| r.kind == "call" && r.pid == Some(server.pid())).collect();
    let logins: Vec<&Row> = rows.iter().filter(|r| r.probe.as_deref() == Some("login_connection")).collect();
    let dispatches = rows.iter().filter(|r| r.probe.as_deref() == Some("dispatch_command")).count();
    assert_eq!(logins.len(), N + 1, "one login per connection");
    assert!(dispatches >= N + M, "{dispatches} dispatches for {} queries", N + M);
    assert!(logins.iter().all(|r| r.duration_ns.is_some_and(|d| d > 0 && d < 1_000_000_000)), "{logins:?}");
    assert!(logins.iter().all(|r| r.retval == Some(0)), "login_connection returns 0 on success: {logins:?}");

    // The analyzer: N + 1 logins beside the same N + 1 connections accepted.
    let dir_s = out.to_str().unwrap();
    let calls = analyze_json(&["calls", dir_s, "--pid", &server.pid().to_string()]);
    let total = calls.iter().find(|r| r.get("time").is_none() && r["probe"] == "login_connection").unwrap();
    assert_eq!(
        (total["calls"].as_u64(), total["tcp_opens"].as_u64()),
        (Some(N as u64 + 1), Some(N as u64 + 1)),
        "{calls:?}"
    );
    let churn = analyze_json(&["churn", dir_s, "--pid", &server.pid().to_string()]);
    let opened: u64 = churn.iter().filter_map(|r| r["opened_passive"].as_u64()).sum();
    assert_eq!(opened, N as u64 + 1);
    let lat = analyze_json(&["latency", dir_s, "--pid", &server.pid().to_string()]);
    let l = lat.iter().find(|r| r["metric"] == "call:login_connection").unwrap();
    assert_eq!(l["count"], N + 1);
}

/// psql runs K statements with \timing: the USDT pair query__start/done
/// (named by convention) gives exactly K calls in that backend, each no
/// longer than psql's own round trip and the pg_sleep ones at least as long
/// as the sleep; an explicit --usdt-pair gives K transactions (and the login's), and a single
/// USDT probe K `usdt` rows with their argument.
#[test]
fn postgresql_queries_from_usdt() {
    const SLEEPS: usize = 6;
    const SELECTS: usize = 10;
    let _g = serial();
    let server = Server::postgresql(54391);
    let dir = tempdir();
    let out = dir.path().join("segments");
    let bin = server.binary.display();
    let pair = format!("{bin}:postgresql:query");
    let txn = format!("txn={bin}:postgresql:transaction__start:transaction__commit,transaction__abort");
    let parse = format!("{bin}:postgresql:query__parse__start");
    let cap = Capture::start(&out, &["--usdt", &pair, "--usdt-pair", &txn, "--usdt", &parse]);
    let mut script = String::from("\\timing on\nSELECT pg_backend_pid();\n");
    for i in 0..SELECTS {
        script += &format!("SELECT {i};\n");
    }
    for _ in 0..SLEEPS {
        script += "SELECT pg_sleep(0.02);\n";
    }
    let script_path = dir.path().join("script.sql");
    std::fs::write(&script_path, script).unwrap();
    let o = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string(), "-U", "postgres", "-X", "-A", "-t", "-f"])
        .arg(&script_path)
        .output()
        .expect("run psql");
    let (status, _, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");
    assert!(o.status.success(), "psql: {}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines = text.lines().filter(|l| !l.is_empty() && !l.starts_with("Timing"));
    let backend: u32 = lines.next().unwrap().parse().expect("pg_backend_pid() first");
    // psql's own timing of each statement, in order, in ns.
    let client_ns: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Time: "))
        .map(|t| (t.trim_end_matches(" ms").parse::<f64>().unwrap() * 1e6) as u64)
        .collect();
    assert_eq!(client_ns.len(), 1 + SELECTS + SLEEPS);

    let everything = all_rows(&read_segments(&out));
    // The postmaster (the oldest postgres process) accepts psql's connection,
    // then forks the backend: the open is the postmaster's, the rows after the
    // backend's first use of the socket are the backend's.
    let pg = Command::new("pgrep").args(["-o", "-x", "postgres"]).output().unwrap();
    let postmaster: u32 = String::from_utf8_lossy(&pg.stdout).trim().parse().expect("pgrep finds the postmaster");
    let mut conn: Vec<&Row> = everything
        .iter()
        .filter(|r| r.lport == Some(server.port) && r.rport.is_some_and(|p| p != 0) && r.sock_id.is_some())
        .collect();
    conn.sort_by_key(|r| r.ts_kernel_ns);
    let accepts: Vec<&&Row> = conn.iter().filter(|r| r.kind == "accept").collect();
    assert_eq!(accepts.len(), 1, "psql's one connection: {conn:#?}");
    assert_eq!(accepts[0].pid, Some(postmaster), "{conn:#?}");
    assert!(conn.iter().any(|r| r.kind == "recv" && r.pid == Some(backend)), "{conn:#?}");
    let close = conn.iter().rev().find(|r| r.kind == "state").unwrap();
    assert_eq!((close.new_state.as_deref(), close.pid), (Some("CLOSE"), Some(backend)), "{conn:#?}");

    let all: Vec<Row> = everything.into_iter().filter(|r| r.pid == Some(backend)).collect();
    let txns: Vec<&Row> = all.iter().filter(|r| r.kind == "call" && r.probe.as_deref() == Some("txn")).collect();
    // The backend's start-up (catalog lookups at login) is a transaction too.
    assert_eq!(txns.len(), 1 + 1 + SELECTS + SLEEPS, "start-up, then one implicit transaction per statement");
    assert!(txns.iter().all(|r| r.duration_ns.is_some()), "every transaction committed");
    let parses: Vec<&Row> = all.iter().filter(|r| r.kind == "usdt").collect();
    assert_eq!(parses.len(), 1 + SELECTS + SLEEPS, "one parse per statement");
    assert!(parses
        .iter()
        .all(|r| r.probe.as_deref() == Some("postgresql:query__parse__start") && r.arg0.is_some_and(|a| a != 0)));
    let mut rows: Vec<Row> =
        all.into_iter().filter(|r| r.kind == "call" && r.probe.as_deref() == Some("postgresql:query")).collect();
    rows.sort_by_key(|r| r.ts_kernel_ns);
    assert_eq!(rows.len(), 1 + SELECTS + SLEEPS, "one call per statement");
    for (i, (r, c)) in rows.iter().zip(&client_ns).enumerate() {
        let d = r.duration_ns.expect("every query finished");
        // psql prints milliseconds with 3 decimals: allow its rounding.
        assert!(d <= c + 1_000, "statement {i}: server {d} ns > client {c} ns");
        if i > SELECTS {
            assert!(d >= 20_000_000, "pg_sleep(0.02) took {d} ns");
        }
    }
    let lat = analyze_json(&["latency", out.to_str().unwrap(), "--pid", &backend.to_string()]);
    let q = lat.iter().find(|r| r["metric"] == "call:postgresql:query").unwrap();
    assert_eq!(q["count"], 1 + SELECTS + SLEEPS);
    assert!(q["max_us"].as_u64().unwrap() >= 20_000);
}
