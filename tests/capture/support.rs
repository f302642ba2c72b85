//! Helpers: run the real netrec-capture binary and the workload, read segments back.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

pub const CAPTURE: &str = env!("CARGO_BIN_EXE_netrec-capture");

/// Captures see every process's traffic: run them one at a time so heavy
/// tests do not starve each other's ring buffers.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    assert!(unsafe { libc::geteuid() } == 0, "the capture tests load BPF programs: run them as root (CI does)");
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Compiles tests/workloads/<sources> into `out` with the machine's cc.
pub fn compile_c(out: &Path, sources: &[&str], flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/workloads");
    let result = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(out)
        .args(sources.iter().map(|s| src.join(s)))
        .output()
        .expect("run cc");
    assert!(result.status.success(), "cc {sources:?}: {}", String::from_utf8_lossy(&result.stderr));
    out.to_path_buf()
}

/// tests/workloads/<name>.c built static into the test run's tmp dir: the
/// same binary runs here and in the VMs (tests/capture/vm.rs).
fn static_workload(name: &str) -> PathBuf {
    compile_c(&Path::new(env!("CARGO_TARGET_TMPDIR")).join(name), &[&format!("{name}.c")], &["-static", "-O2", "-Wall"])
}

/// tests/workloads/tcp_workload.c, built once per test run.
pub fn tcp_workload() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| static_workload("tcp_workload"))
}

/// tests/workloads/udp_workload.c, built once per test run.
pub fn udp_workload() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| static_workload("udp_workload"))
}

/// bench/stream.c (a full-rate loopback stream, one event per send and per
/// receive), built once per test run.
pub fn stream_workload() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        compile_c(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("stream"), &["../../bench/stream.c"], &["-O2"])
    })
}

/// A running netrec-capture process.
pub struct Capture {
    pub child: Child,
    stderr_lines: std::sync::mpsc::Receiver<String>,
    stdout: Option<ChildStdout>,
}

impl Capture {
    /// Starts the capture and waits until its probes are attached.
    pub fn start(dir: &Path, args: &[&str]) -> Capture {
        Capture::start_binary(Path::new(CAPTURE), dir, args)
    }

    /// Starts the given netrec-capture build (tests/capture/vm.rs: the static one).
    pub fn start_binary(binary: &Path, dir: &Path, args: &[&str]) -> Capture {
        let mut child = Command::new(binary)
            .arg("--output")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn netrec-capture");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stdout = child.stdout.take();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains("recording to") => break,
                Ok(line) => eprintln!("capture: {line}"),
                Err(_) => {
                    if let Some(status) = child.try_wait().unwrap() {
                        let rest: Vec<String> = rx.try_iter().collect();
                        panic!("netrec-capture exited early ({status}): {rest:?}");
                    }
                    assert!(Instant::now() < deadline, "netrec-capture did not start in 30 s");
                }
            }
        }
        Capture { child, stderr_lines: rx, stdout }
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Stops with SIGINT (after letting the last events drain) and returns (status, stdout, stderr).
    pub fn stop(self) -> (std::process::ExitStatus, String, Vec<String>) {
        std::thread::sleep(Duration::from_millis(300));
        self.signal(libc::SIGINT);
        self.wait()
    }

    pub fn wait(mut self) -> (std::process::ExitStatus, String, Vec<String>) {
        let mut out = String::new();
        if let Some(mut s) = self.stdout.take() {
            s.read_to_string(&mut out).unwrap();
        }
        let status = self.child.wait().unwrap();
        let err: Vec<String> = self.stderr_lines.iter().collect();
        (status, out, err)
    }
}

/// The workload's server process; its counts arrive when it is told to stop.
pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub pid: u32,
    pub port: u16,
    pub other_port: u16,
}

/// The workload, moved into each cgroup (its `cgroup.procs`) before it starts.
fn workload_in(cgroups: &[&Path]) -> Command {
    if cgroups.is_empty() {
        return Command::new(tcp_workload());
    }
    let mut cmd = Command::new("sh");
    let moves: Vec<String> = (1..=cgroups.len()).map(|i| format!("echo $$ > \"${i}\"")).collect();
    cmd.arg("-c").arg(format!("{} && shift {} && exec \"$@\"", moves.join(" && "), cgroups.len())).arg("sh");
    cmd.args(cgroups).arg(tcp_workload());
    cmd
}

impl Server {
    pub fn start() -> Server {
        Server::start_in(&[])
    }

    /// The server, in these cgroups (`cgroup.procs` files) from its start.
    pub fn start_in(cgroups: &[&Path]) -> Server {
        let mut child = workload_in(cgroups)
            .arg("server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the workload server");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).expect("server announces itself");
        Server {
            child,
            stdin,
            stdout,
            pid: v["pid"].as_u64().unwrap() as u32,
            port: v["port"].as_u64().unwrap() as u16,
            other_port: v["other_port"].as_u64().unwrap() as u16,
        }
    }

    /// Runs the client once against this server; returns the client's own counts.
    pub fn run_client(&self) -> Value {
        self.run_client_in(&[])
    }

    /// The client, in these cgroups (`cgroup.procs` files).
    pub fn run_client_in(&self, cgroups: &[&Path]) -> Value {
        let out = workload_in(cgroups)
            .args(["client", &self.port.to_string(), &self.other_port.to_string()])
            .output()
            .expect("run the workload client");
        assert!(out.status.success(), "client failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("client prints its counts")
    }

    /// Stops the server; returns its own counts.
    pub fn finish(mut self) -> Value {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        self.child.wait().unwrap();
        serde_json::from_str(&line).expect("server prints its counts")
    }
}

/// One event row, the columns the tests look at.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub kind: String,
    pub ts_kernel_ns: u64,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub ppid: Option<u32>,
    pub sock_id: Option<u64>,
    pub lport: Option<u16>,
    pub rport: Option<u16>,
    pub bytes: Option<u64>,
    pub old_state: Option<String>,
    pub new_state: Option<String>,
    pub filename: Option<String>,
    pub tid: Option<u32>,
    pub probe: Option<String>,
    pub duration_ns: Option<u64>,
    pub depth: Option<u32>,
    pub arg0: Option<i64>,
    pub retval: Option<i64>,
    /// Events the row stands for (aggregates, RTT buckets); None: one.
    pub samples: Option<u32>,
    pub cgroup_id: Option<u64>,
    pub cgroup: Option<String>,
    pub protocol: Option<String>,
    pub family: Option<String>,
    pub raddr: Option<String>,
}

pub struct Segment {
    pub path: PathBuf,
    pub metadata: HashMap<String, String>,
    pub schema: arrow_schema::SchemaRef,
    pub rows: Vec<Row>,
}

pub fn read_segment(path: &Path) -> Segment {
    let file = File::open(path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().map(|k| (k.key.clone(), k.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    let schema = builder.schema().clone();
    let mut rows = Vec::new();
    for batch in builder.build().unwrap() {
        let b = batch.unwrap();
        let col = |n: &str| b.column_by_name(n).unwrap_or_else(|| panic!("column {n}")).clone();
        let (kind, ts, pid, comm, ppid, sock, lport, rport, bytes, olds, news, fname) = (
            col("kind"),
            col("ts_kernel_ns"),
            col("pid"),
            col("comm"),
            col("ppid"),
            col("sock_id"),
            col("lport"),
            col("rport"),
            col("bytes"),
            col("old_state"),
            col("new_state"),
            col("filename"),
        );
        let (tid, probe, dur, depth, arg0, retval, samples) =
            (col("tid"), col("probe"), col("duration_ns"), col("depth"), col("arg0"), col("retval"), col("samples"));
        let (cgroup_id, cgroup) = (col("cgroup_id"), col("cgroup"));
        let (protocol, family, raddr) = (col("protocol"), col("family"), col("raddr"));
        let s =
            |a: &arrow_array::ArrayRef, i: usize| (!a.is_null(i)).then(|| a.as_string::<i32>().value(i).to_string());
        let i64_of =
            |a: &arrow_array::ArrayRef, i: usize| (!a.is_null(i)).then(|| a.as_primitive::<Int64Type>().value(i));
        for i in 0..b.num_rows() {
            rows.push(Row {
                kind: kind.as_string::<i32>().value(i).to_string(),
                ts_kernel_ns: ts.as_primitive::<UInt64Type>().value(i),
                pid: (!pid.is_null(i)).then(|| pid.as_primitive::<UInt32Type>().value(i)),
                comm: s(&comm, i),
                ppid: (!ppid.is_null(i)).then(|| ppid.as_primitive::<UInt32Type>().value(i)),
                sock_id: (!sock.is_null(i)).then(|| sock.as_primitive::<UInt64Type>().value(i)),
                lport: (!lport.is_null(i)).then(|| lport.as_primitive::<UInt16Type>().value(i)),
                rport: (!rport.is_null(i)).then(|| rport.as_primitive::<UInt16Type>().value(i)),
                bytes: (!bytes.is_null(i)).then(|| bytes.as_primitive::<UInt64Type>().value(i)),
                old_state: s(&olds, i),
                new_state: s(&news, i),
                filename: s(&fname, i),
                tid: (!tid.is_null(i)).then(|| tid.as_primitive::<UInt32Type>().value(i)),
                probe: s(&probe, i),
                duration_ns: (!dur.is_null(i)).then(|| dur.as_primitive::<UInt64Type>().value(i)),
                depth: (!depth.is_null(i)).then(|| depth.as_primitive::<UInt32Type>().value(i)),
                arg0: i64_of(&arg0, i),
                retval: i64_of(&retval, i),
                samples: (!samples.is_null(i)).then(|| samples.as_primitive::<UInt32Type>().value(i)),
                cgroup_id: (!cgroup_id.is_null(i)).then(|| cgroup_id.as_primitive::<UInt64Type>().value(i)),
                cgroup: s(&cgroup, i),
                protocol: s(&protocol, i),
                family: s(&family, i),
                raddr: s(&raddr, i),
            });
        }
    }
    Segment { path: path.to_path_buf(), metadata, schema, rows }
}

/// Every finished segment in `dir`, oldest first; panics on leftovers.
pub fn read_segments(dir: &Path) -> Vec<Segment> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    // Beside the segments: the capture's manifest, nothing else.
    paths.retain(|p| !p.to_str().unwrap().ends_with(netrec_schema::manifest::SUFFIX));
    for p in &paths {
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.ends_with(".parquet"), "unexpected file left behind: {name}");
    }
    paths.iter().map(|p| read_segment(p)).collect()
}

pub fn all_rows(segs: &[Segment]) -> Vec<Row> {
    segs.iter().flat_map(|s| s.rows.iter().cloned()).collect()
}

/// (sent, consumed) bytes recorded for one process.
pub fn totals_for(rows: &[Row], pid: u32) -> (u64, u64) {
    let sum = |kind: &str| rows.iter().filter(|r| r.pid == Some(pid) && r.kind == kind).filter_map(|r| r.bytes).sum();
    (sum("send"), sum("recv"))
}

pub fn expected(counts: &Value) -> (u64, u64) {
    (counts["sent"].as_u64().unwrap(), counts["recv"].as_u64().unwrap())
}

/// netrec-analyze, built next to netrec-capture by `cargo test --workspace`.
pub fn analyze_json(args: &[&str]) -> Vec<Value> {
    let out = analyze(&[args, &["--format", "json"]].concat());
    assert!(out.status.success(), "netrec-analyze {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// netrec-analyze's exit status and output, whatever they are.
pub fn analyze(args: &[&str]) -> std::process::Output {
    let bin = Path::new(CAPTURE).with_file_name("netrec-analyze");
    assert!(bin.exists(), "{} is missing: run the tests with `cargo test --workspace` (tests/run does)", bin.display());
    Command::new(&bin).args(args).output().unwrap()
}

/// A fresh private directory under the system temp dir.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("netrec-test-").tempdir().unwrap()
}

/// Each of the workload client's short connections (`client`: its JSON) has
/// its full state sequence on both sides, each row carrying the socket's
/// owner even when raised in softirq.
pub fn short_connections_complete(rows: &[Row], client: &Value, server_pid: u32, server_port: u16) {
    let client_pid = client["pid"].as_u64().unwrap() as u32;
    let sock_of = |pred: &dyn Fn(&Row) -> bool| -> u64 {
        let ids: std::collections::HashSet<u64> = rows.iter().filter(|r| pred(r)).filter_map(|r| r.sock_id).collect();
        assert_eq!(ids.len(), 1, "exactly one socket matches");
        *ids.iter().next().unwrap()
    };
    let transitions = |id: u64, pid: u32| -> Vec<(String, String)> {
        let mut sock_rows: Vec<&Row> = rows.iter().filter(|r| r.sock_id == Some(id)).collect();
        sock_rows.sort_by_key(|r| r.ts_kernel_ns);
        for r in &sock_rows {
            assert_eq!(r.pid, Some(pid), "socket {id}: {r:?}");
        }
        sock_rows
            .iter()
            .filter(|r| r.kind == "state")
            .map(|r| (r.old_state.clone().unwrap(), r.new_state.clone().unwrap()))
            .collect()
    };
    let st = |a: &str, b: &str| (a.to_string(), b.to_string());
    let short_ports: Vec<u16> =
        client["short_ports"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u16).collect();
    assert_eq!(short_ports.len(), 20);
    for cport in short_ports {
        let c = sock_of(&|r: &Row| r.lport == Some(cport) && r.rport == Some(server_port));
        let seq = transitions(c, client_pid);
        assert_eq!(seq.first(), Some(&st("CLOSE", "SYN_SENT")), "client {cport}: {seq:?}");
        assert!(seq.contains(&st("SYN_SENT", "ESTABLISHED")), "client {cport}: {seq:?}");
        assert_eq!(seq.last().map(|s| s.1.as_str()), Some("CLOSE"), "client {cport}: {seq:?}");

        let s = sock_of(&|r: &Row| r.lport == Some(server_port) && r.rport == Some(cport));
        let seq = transitions(s, server_pid);
        assert_eq!(seq.first(), Some(&st("LISTEN", "SYN_RECV")), "server {cport}: {seq:?}");
        assert!(seq.contains(&st("SYN_RECV", "ESTABLISHED")), "server {cport}: {seq:?}");
        assert_eq!(seq.last().map(|s| s.1.as_str()), Some("CLOSE"), "server {cport}: {seq:?}");
    }
}
