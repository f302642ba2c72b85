//! Pre-fork servers: a listener created by one process, connections
//! accepted by others. A passive open belongs to the process that accepted
//! it, in the rows and in `churn --by pid`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// The server side of each connection to `port`: client port -> its rows in time order.
fn server_sockets(rows: &[Row], port: u16) -> HashMap<u16, Vec<&Row>> {
    let mut ids: HashMap<u64, u16> = HashMap::new();
    for r in rows.iter().filter(|r| r.lport == Some(port) && r.rport.is_some_and(|p| p != 0)) {
        ids.insert(r.sock_id.expect("tracked socket"), r.rport.unwrap());
    }
    let mut by_port: HashMap<u16, Vec<&Row>> = HashMap::new();
    for r in rows {
        if let Some(p) = r.sock_id.and_then(|id| ids.get(&id)) {
            by_port.entry(*p).or_default().push(r);
        }
    }
    for v in by_port.values_mut() {
        v.sort_by_key(|r| r.ts_kernel_ns);
    }
    by_port
}

/// Each connection has one accept row, by `worker`; the handshake before it
/// carries the listener's owner, everything after it the worker.
fn owned_by_acceptor(conn: &[&Row], worker: u32, listener_owner: u32, what: &str) {
    let accepts: Vec<usize> = conn.iter().enumerate().filter(|(_, r)| r.kind == "accept").map(|(i, _)| i).collect();
    assert_eq!(accepts.len(), 1, "{what}: one accept row: {conn:#?}");
    let at = accepts[0];
    assert_eq!(conn[at].pid, Some(worker), "{what}: accepted by the worker: {conn:#?}");
    for r in &conn[..at] {
        // The client's first bytes may arrive before accept: an RTT sample, no state.
        assert!(matches!(r.kind.as_str(), "state" | "rtt"), "{what}: before accept: {conn:#?}");
        if r.kind == "state" {
            assert_eq!(r.pid, Some(listener_owner), "{what}: the handshake is the listener's owner's: {conn:#?}");
        }
    }
    for r in &conn[at..] {
        assert_eq!(r.pid, Some(worker), "{what}: after accept, the worker: {conn:#?}");
    }
    let last = conn.last().unwrap();
    assert_eq!(last.new_state.as_deref(), Some("CLOSE"), "{what}: {conn:#?}");
}

/// `churn --by pid` over the trace: pid -> passive opens.
fn passive_opens(dir: &Path, port: u16) -> BTreeMap<u32, u64> {
    let mut opens = BTreeMap::new();
    for r in analyze_json(&["churn", dir.to_str().unwrap(), "--by", "pid", "--port", &port.to_string()]) {
        if let (Some(pid), Some(n)) = (r["pid"].as_u64(), r["opened_passive"].as_u64()) {
            *opens.entry(pid as u32).or_default() += n;
        }
    }
    opens.retain(|_, n| *n > 0);
    opens
}

/// tests/workloads/prefork.c: the master listens, three forked workers
/// accept 30 connections between them, each reporting the client ports it
/// served. Every open is the accepting worker's, none the master's.
#[test]
fn a_listener_inherited_across_fork_gives_each_open_to_the_worker_that_accepted_it() {
    const CONNS: u64 = 30;
    let _g = serial();
    let bin = compile_c(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("prefork"), &["prefork.c"], &["-O2", "-Wall"]);
    let dir = tempdir();
    let out = dir.path().join("prefork");
    let cap = Capture::start(&out, &[]);
    let run = Command::new(&bin).args(["3", &CONNS.to_string()]).output().unwrap();
    assert!(run.status.success(), "prefork: {}", String::from_utf8_lossy(&run.stderr));
    let (status, _, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");
    let v: Value = serde_json::from_slice(&run.stdout).unwrap();
    let (master, port) = (v["master"].as_u64().unwrap() as u32, v["port"].as_u64().unwrap() as u16);

    let rows = all_rows(&read_segments(&out));
    let conns = server_sockets(&rows, port);
    assert_eq!(conns.len() as u64, CONNS, "one server socket per connection");
    let mut want = BTreeMap::new();
    for w in v["workers"].as_array().unwrap() {
        let pid = w["pid"].as_u64().unwrap() as u32;
        let ports = w["ports"].as_array().unwrap();
        assert_eq!(ports.len() as u64, w["accepted"].as_u64().unwrap());
        for p in ports {
            let p = p.as_u64().unwrap() as u16;
            owned_by_acceptor(&conns[&p], pid, master, &format!("client port {p}"));
        }
        if !ports.is_empty() {
            want.insert(pid, ports.len() as u64);
        }
    }
    assert_eq!(want.values().sum::<u64>(), CONNS);
    assert_eq!(passive_opens(&out, port), want, "churn --by pid: the workers' own counts");
}

/// Real nginx, a master and two workers: each request's worker (`$pid` in
/// nginx's access log, with the client port) is the pid of its connection's
/// accept row and the pid `churn --by pid` counts the open for.
#[test]
fn nginx_workers_own_the_connections_they_accept() {
    const REQUESTS: usize = 40;
    let _g = serial();
    let dir = tempdir();
    let port = 58091;
    let conf = dir.path().join("nginx.conf");
    let d = dir.path().display();
    std::fs::write(
        &conf,
        format!(
            "worker_processes 2; daemon off; master_process on; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  log_format netrec '$pid $remote_port';
  access_log {d}/access.log netrec;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"hello\\n\"; }} }}
}}
"
        ),
    )
    .unwrap();
    let out = dir.path().join("nginx");
    let cap = Capture::start(&out, &[]);
    let mut nginx = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx (apt-get install nginx-light)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline && nginx.try_wait().unwrap().is_none(), "nginx did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..REQUESTS {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.ends_with("hello\n"), "{resp}");
    }
    unsafe { libc::kill(nginx.id() as i32, libc::SIGQUIT) }; // graceful: workers finish and log
    nginx.wait().unwrap();
    let (status, _, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");

    // nginx's own word: which worker served each client port.
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    let served: Vec<(u32, u16)> = log
        .lines()
        .map(|l| {
            let (pid, p) = l.split_once(' ').unwrap();
            (pid.parse().unwrap(), p.parse().unwrap())
        })
        .collect();
    assert_eq!(served.len(), REQUESTS, "{log}");
    let master = nginx.id();
    let rows = all_rows(&read_segments(&out));
    let conns = server_sockets(&rows, port);
    let mut want: BTreeMap<u32, u64> = BTreeMap::new();
    for (worker, p) in &served {
        assert_ne!(*worker, master);
        let conn = conns.get(p).unwrap_or_else(|| panic!("no rows for client port {p}"));
        owned_by_acceptor(conn, *worker, master, &format!("nginx, client port {p}"));
        *want.entry(*worker).or_default() += 1;
    }
    // The probe connections that waited for nginx to start are accepted too (no request, no log line).
    let mut got = passive_opens(&out, port);
    assert!(!got.contains_key(&master), "no open is the master's: {got:?}");
    let probes: u64 = got.values().sum::<u64>() - REQUESTS as u64;
    for (pid, n) in &want {
        let g = got.remove(pid).unwrap_or(0);
        assert!(g >= *n && g - n <= probes, "worker {pid}: {g} opens, {n} requests in its log");
    }
    assert!(got.is_empty(), "opens for pids that are no nginx worker: {got:?}");
}
