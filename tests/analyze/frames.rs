//! Hand-made segments in the real schema, with answers known by construction.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::builder::{
    Int32Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use netrec_schema::parquet::{arrow_schema_of, writer_properties, Encoding};
use netrec_schema::{files, meta};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;

pub const ANALYZE: &str = env!("CARGO_BIN_EXE_netrec-analyze");
/// 2026-01-01T00:00:00Z in ns: every frame's time origin.
pub const T0: i64 = 1_767_225_600_000_000_000;
pub const SEC: i64 = 1_000_000_000;
pub const MS: i64 = 1_000_000;
pub const US: i64 = 1_000;

#[derive(Clone, Default, Debug)]
pub struct Ev {
    pub kind: &'static str,
    pub ts: i64,
    pub pid: Option<u32>,
    pub comm: Option<&'static str>,
    pub sock_id: Option<u64>,
    pub lport: Option<u16>,
    pub rport: Option<u16>,
    pub bytes: Option<u64>,
    pub old_state: Option<&'static str>,
    pub new_state: Option<&'static str>,
    pub srtt_us: Option<u32>,
    pub probe: Option<&'static str>,
    pub duration_ns: Option<u64>,
    /// How many events the row stands for: rtt rows of schema version 3,
    /// send/recv aggregates of version 4.
    pub samples: Option<u32>,
    /// Transport protocol of a socket row; None: tcp.
    pub protocol: Option<&'static str>,
    /// Version 5: the process's cgroup path.
    pub cgroup: Option<&'static str>,
    /// Socket rows' addresses; None: 127.0.0.1 and 127.0.0.2.
    pub laddr: Option<&'static str>,
    pub raddr: Option<&'static str>,
}

pub fn io(kind: &'static str, ts: i64, pid: u32, comm: &'static str, bytes: u64) -> Ev {
    Ev {
        kind,
        ts,
        pid: Some(pid),
        comm: Some(comm),
        sock_id: Some(pid as u64),
        lport: Some(3306),
        rport: Some(40000),
        bytes: Some(bytes),
        ..Default::default()
    }
}

pub fn state(ts: i64, sock: u64, pid: Option<u32>, old: &'static str, new: &'static str) -> Ev {
    Ev {
        kind: "state",
        ts,
        pid,
        comm: pid.map(|_| "app"),
        sock_id: Some(sock),
        lport: Some(5000 + sock as u16),
        rport: Some(3306),
        old_state: Some(old),
        new_state: Some(new),
        ..Default::default()
    }
}

pub fn rtt(ts: i64, sock: u64, pid: u32, srtt_us: u32) -> Ev {
    Ev {
        kind: "rtt",
        ts,
        pid: Some(pid),
        comm: Some("app"),
        sock_id: Some(sock),
        lport: Some(1),
        rport: Some(3306),
        srtt_us: Some(srtt_us),
        ..Default::default()
    }
}

/// An application call (schema version 2); `duration_ns` None: unfinished.
pub fn call(ts: i64, pid: u32, comm: &'static str, probe: &'static str, duration_ns: Option<u64>) -> Ev {
    Ev { kind: "call", ts, pid: Some(pid), comm: Some(comm), probe: Some(probe), duration_ns, ..Default::default() }
}

pub struct SegmentSpec<'a> {
    pub host: &'a str,
    pub capture_id: &'a str,
    pub index: u32,
    pub start: i64,
    pub end: i64,
    pub lost: u64,
    pub schema_version: u32,
    /// The capture's cost metadata: user ns, sys ns, peak RSS bytes, programs JSON.
    pub cost: Option<(u64, u64, u64, &'a str)>,
    /// Version 4: netrec.data and netrec.data_switches (JSON).
    pub data: Option<(&'a str, &'a str)>,
    /// Row groups the rows are split into, in order (the capture starts one every 2^20 rows).
    pub row_groups: usize,
}

impl Default for SegmentSpec<'_> {
    fn default() -> Self {
        SegmentSpec {
            host: "db1",
            capture_id: "c0ffee",
            index: 0,
            start: T0,
            end: T0 + 60 * SEC,
            lost: 0,
            schema_version: 1,
            cost: None,
            data: None,
            row_groups: 1,
        }
    }
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Writes a segment exactly as the capture lays it out (same columns, types, metadata keys).
pub fn write_segment(dir: &Path, spec: &SegmentSpec, events: &[Ev]) -> PathBuf {
    let (mut kind, mut ts, mut tsk) =
        (StringBuilder::new(), TimestampNanosecondBuilder::new().with_timezone("UTC"), UInt64Builder::new());
    let (mut pid, mut tid, mut comm, mut ppid) =
        (UInt32Builder::new(), UInt32Builder::new(), StringBuilder::new(), UInt32Builder::new());
    let (mut sock, mut fam, mut proto, mut laddr) =
        (UInt64Builder::new(), StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
    let (mut lport, mut raddr, mut rport, mut bytes) =
        (UInt16Builder::new(), StringBuilder::new(), UInt16Builder::new(), UInt64Builder::new());
    let (mut olds, mut news, mut srtt, mut fname, mut exit) =
        (StringBuilder::new(), StringBuilder::new(), UInt32Builder::new(), StringBuilder::new(), Int32Builder::new());
    for e in events {
        kind.append_value(e.kind);
        ts.append_value(e.ts);
        tsk.append_value((e.ts - T0) as u64);
        pid.append_option(e.pid);
        tid.append_option(e.pid);
        comm.append_option(e.comm);
        ppid.append_null();
        sock.append_option(e.sock_id);
        let sockish = e.sock_id.is_some();
        fam.append_option(sockish.then_some("ipv4"));
        proto.append_option(sockish.then_some(e.protocol.unwrap_or("tcp")));
        laddr.append_option(sockish.then_some(e.laddr.unwrap_or("127.0.0.1")));
        lport.append_option(e.lport);
        raddr.append_option(sockish.then_some(e.raddr.unwrap_or("127.0.0.2")));
        rport.append_option(e.rport);
        bytes.append_option(e.bytes);
        olds.append_option(e.old_state);
        news.append_option(e.new_state);
        srtt.append_option(e.srtt_us);
        fname.append_null();
        exit.append_null();
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(kind.finish()),
        Arc::new(ts.finish()),
        Arc::new(tsk.finish()),
        Arc::new(pid.finish()),
        Arc::new(tid.finish()),
        Arc::new(comm.finish()),
        Arc::new(ppid.finish()),
        Arc::new(sock.finish()),
        Arc::new(fam.finish()),
        Arc::new(proto.finish()),
        Arc::new(laddr.finish()),
        Arc::new(lport.finish()),
        Arc::new(raddr.finish()),
        Arc::new(rport.finish()),
        Arc::new(bytes.finish()),
        Arc::new(olds.finish()),
        Arc::new(news.finish()),
        Arc::new(srtt.finish()),
        Arc::new(fname.finish()),
        Arc::new(exit.finish()),
    ];
    if spec.schema_version >= 5 {
        let mut cgroup = StringBuilder::new();
        for e in events {
            cgroup.append_option(e.cgroup);
        }
        // After comm: cgroup_id (left null) and cgroup.
        columns.insert(6, arrow_array::new_null_array(&arrow_schema::DataType::UInt64, events.len()));
        columns.insert(7, Arc::new(cgroup.finish()));
    }
    if spec.schema_version >= 2 {
        let (mut probe, mut dur, mut depth) = (StringBuilder::new(), UInt64Builder::new(), UInt32Builder::new());
        let mut ints: Vec<Int64Builder> = (0..4).map(|_| Int64Builder::new()).collect();
        for e in events {
            let is_call = e.kind == "call";
            probe.append_option(e.probe);
            dur.append_option(e.duration_ns);
            depth.append_option(is_call.then_some(0));
            for b in &mut ints {
                b.append_option(is_call.then_some(0));
            }
        }
        columns.extend([Arc::new(probe.finish()) as ArrayRef, Arc::new(dur.finish()), Arc::new(depth.finish())]);
        columns.extend(ints.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    }
    if spec.schema_version >= 3 {
        let mut samples = UInt32Builder::new();
        for e in events {
            samples.append_option(e.samples);
        }
        columns.push(Arc::new(samples.finish()));
    }
    // The capture's schema and writer settings, as of the segment's version.
    let batch = RecordBatch::try_new(arrow_schema_of(spec.schema_version), columns).unwrap();
    let stem = files::stem(spec.host, "20260101T000000Z", spec.capture_id);
    let path = dir.join(files::segment_name(&stem, spec.index));
    let props = writer_properties(Encoding::default(), "netrec-analyze tests");
    let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), Some(props)).unwrap();
    let per_group = batch.num_rows().div_ceil(spec.row_groups.max(1)).max(1);
    for start in (0..batch.num_rows()).step_by(per_group) {
        w.write(&batch.slice(start, per_group.min(batch.num_rows() - start))).unwrap();
        w.flush().unwrap();
    }
    // Rows per kind, as the capture counts them (the analyzer skips work for
    // kinds a footer says are absent).
    let mut by_kind = std::collections::BTreeMap::<&str, u64>::new();
    for e in events {
        *by_kind.entry(e.kind).or_default() += 1;
    }
    let kv = [
        (meta::SCHEMA_VERSION, spec.schema_version.to_string()),
        (meta::VERSION, "0.1.0".into()),
        (meta::CAPTURE_ID, spec.capture_id.into()),
        (meta::SEGMENT_INDEX, spec.index.to_string()),
        (meta::HOSTNAME, spec.host.into()),
        (meta::KERNEL_RELEASE, "6.18.0-test".into()),
        (meta::BOOT_ID, "00000000-0000-0000-0000-000000000000".into()),
        (meta::CLOCK_OFFSET_NS, "0".into()),
        (meta::SEGMENT_START, rfc3339(spec.start)),
        (meta::SEGMENT_END, rfc3339(spec.end)),
        (meta::EVENTS, events.len().to_string()),
        (meta::EVENTS_BY_KIND, serde_json::to_string(&by_kind).unwrap()),
        (meta::LOST_EVENTS, spec.lost.to_string()),
        (meta::LOST_EVENTS_BY_KIND, "{}".into()),
        (meta::UNTRACKED_SOCKET_EVENTS, "0".into()),
        (meta::MECHANISMS, r#"{"send":"raw_tracepoint:sock/sock_send_length"}"#.into()),
        (meta::FILTERS, r#"{"pid":[]}"#.into()),
        (meta::COMMAND_LINE, r#"["netrec-capture","--output","x"]"#.into()),
        (meta::PROBES, r#"[{"probe":"login","type":"uprobe","spec":"mariadbd:login_connection"}]"#.into()),
    ];
    for (k, v) in kv {
        w.append_key_value_metadata(KeyValue::new(k.into(), v));
    }
    if let Some((user, sys, rss, programs)) = spec.cost {
        for (k, v) in [
            (meta::CAPTURE_CPU_USER_NS, user.to_string()),
            (meta::CAPTURE_CPU_SYS_NS, sys.to_string()),
            (meta::CAPTURE_PEAK_RSS_BYTES, rss.to_string()),
            (meta::BPF_PROGRAMS, programs.to_string()),
        ] {
            w.append_key_value_metadata(KeyValue::new(k.into(), v));
        }
    }
    if let Some((data, switches)) = spec.data {
        w.append_key_value_metadata(KeyValue::new(meta::DATA.into(), data.to_string()));
        w.append_key_value_metadata(KeyValue::new(meta::DATA_SWITCHES.into(), switches.to_string()));
    }
    w.close().unwrap();
    path
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn analyze(args: &[&str]) -> Run {
    let out = Command::new(ANALYZE).args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The analyzer's JSON lines, parsed.
pub fn json_rows(args: &[&str]) -> Vec<serde_json::Value> {
    let mut full = args.to_vec();
    full.extend(["--format", "json"]);
    let r = analyze(&full);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
