//! Decoded records appended column by column into an Arrow record batch.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arrow_array::builder::{
    Int32Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder, UInt16Builder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};

use super::schema::arrow_schema;
use crate::event::{c_str, c_str_bytes, tcp_state_name, Kind, PerKind, Record};
use crate::probe::skel::types::{netrec_call_event, netrec_proc_event, netrec_sock_event};

const AF_INET: u8 = 2;

/// Builders in the column order of `schemas/events.json`.
pub struct BatchBuilder {
    clock_offset_ns: i64,
    /// Application probe names, indexed by the cookie in call records.
    probe_names: Arc<[String]>,
    kind: StringBuilder,
    ts: TimestampNanosecondBuilder,
    ts_kernel_ns: UInt64Builder,
    pid: UInt32Builder,
    tid: UInt32Builder,
    comm: StringBuilder,
    ppid: UInt32Builder,
    sock_id: UInt64Builder,
    family: StringBuilder,
    protocol: StringBuilder,
    laddr: StringBuilder,
    lport: UInt16Builder,
    raddr: StringBuilder,
    rport: UInt16Builder,
    bytes: UInt64Builder,
    old_state: StringBuilder,
    new_state: StringBuilder,
    srtt_us: UInt32Builder,
    filename: StringBuilder,
    exit_status: Int32Builder,
    probe: StringBuilder,
    duration_ns: UInt64Builder,
    depth: UInt32Builder,
    arg0: Int64Builder,
    arg1: Int64Builder,
    arg2: Int64Builder,
    retval: Int64Builder,
    rows: usize,
    counts: PerKind,
    addrs: TextCache<17>,
    comms: TextCache<16>,
}

impl BatchBuilder {
    /// `clock_offset_ns`: wall clock minus CLOCK_BOOTTIME, added to every kernel timestamp.
    pub fn new(clock_offset_ns: i64, probe_names: Arc<[String]>) -> Self {
        BatchBuilder {
            clock_offset_ns,
            probe_names,
            kind: StringBuilder::new(),
            ts: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            ts_kernel_ns: UInt64Builder::new(),
            pid: UInt32Builder::new(),
            tid: UInt32Builder::new(),
            comm: StringBuilder::new(),
            ppid: UInt32Builder::new(),
            sock_id: UInt64Builder::new(),
            family: StringBuilder::new(),
            protocol: StringBuilder::new(),
            laddr: StringBuilder::new(),
            lport: UInt16Builder::new(),
            raddr: StringBuilder::new(),
            rport: UInt16Builder::new(),
            bytes: UInt64Builder::new(),
            old_state: StringBuilder::new(),
            new_state: StringBuilder::new(),
            srtt_us: UInt32Builder::new(),
            filename: StringBuilder::new(),
            exit_status: Int32Builder::new(),
            probe: StringBuilder::new(),
            duration_ns: UInt64Builder::new(),
            depth: UInt32Builder::new(),
            arg0: Int64Builder::new(),
            arg1: Int64Builder::new(),
            arg2: Int64Builder::new(),
            retval: Int64Builder::new(),
            rows: 0,
            counts: PerKind::default(),
            addrs: TextCache::new(),
            comms: TextCache::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn push(&mut self, record: &Record) {
        match record {
            Record::Sock(kind, e) => self.push_sock(*kind, e),
            Record::Proc(kind, e) => self.push_proc(*kind, e),
            Record::Call(kind, e) => self.push_call(*kind, e),
        }
    }

    /// Nulls for the call columns of a non-call row.
    fn no_call(&mut self) {
        self.probe.append_null();
        self.duration_ns.append_null();
        self.depth.append_null();
        self.arg0.append_null();
        self.arg1.append_null();
        self.arg2.append_null();
        self.retval.append_null();
    }

    /// Nulls for the socket columns of a process or call row.
    fn no_sock(&mut self) {
        self.sock_id.append_null();
        self.family.append_null();
        self.protocol.append_null();
        self.laddr.append_null();
        self.lport.append_null();
        self.raddr.append_null();
        self.rport.append_null();
        self.bytes.append_null();
        self.old_state.append_null();
        self.new_state.append_null();
        self.srtt_us.append_null();
    }

    fn push_call(&mut self, kind: Kind, e: &netrec_call_event) {
        self.push_common(kind, e.ts_ns);
        self.pid.append_value(e.pid);
        self.tid.append_value(e.tid);
        self.comm.append_value(self.comms.text(comm_key(&e.comm), |k| c_str_bytes(k).into_owned()));
        self.ppid.append_null();
        self.no_sock();
        self.filename.append_null();
        self.exit_status.append_null();
        match self.probe_names.get(e.probe as usize) {
            Some(name) => self.probe.append_value(name),
            None => self.probe.append_value(format!("probe#{}", e.probe)),
        }
        let finished = e.finished != 0;
        let call = kind == Kind::Call;
        self.duration_ns.append_option((call && finished).then_some(e.duration_ns));
        self.depth.append_option(call.then_some(e.depth));
        self.arg0.append_value(e.args[0]);
        self.arg1.append_value(e.args[1]);
        self.arg2.append_value(e.args[2]);
        self.retval.append_option((call && finished && e.has_retval != 0).then_some(e.retval));
    }

    fn push_common(&mut self, kind: Kind, ts_kernel_ns: u64) {
        self.kind.append_value(kind.name());
        self.ts.append_value(ts_kernel_ns as i64 + self.clock_offset_ns);
        self.ts_kernel_ns.append_value(ts_kernel_ns);
        self.counts[kind.index()] += 1;
        self.rows += 1;
    }

    fn push_sock(&mut self, kind: Kind, e: &netrec_sock_event) {
        self.push_common(kind, e.ts_ns);
        if e.owner_known != 0 {
            self.pid.append_value(e.pid);
            self.tid.append_value(e.tid);
            self.comm.append_value(self.comms.text(comm_key(&e.comm), |k| c_str_bytes(k).into_owned()));
        } else {
            self.pid.append_null();
            self.tid.append_null();
            self.comm.append_null();
        }
        self.ppid.append_null();
        self.sock_id.append_option((e.sock_id != 0).then_some(e.sock_id));
        let v4 = e.family == AF_INET;
        self.family.append_value(if v4 { "ipv4" } else { "ipv6" });
        self.protocol.append_value("tcp");
        let family = if v4 { AF_INET } else { 0 };
        self.laddr.append_value(self.addrs.text(addr_key(family, &e.saddr), format_addr));
        self.lport.append_value(e.sport);
        self.raddr.append_value(self.addrs.text(addr_key(family, &e.daddr), format_addr));
        self.rport.append_value(e.dport);
        match kind {
            Kind::Send | Kind::Recv => self.bytes.append_value(e.value),
            _ => self.bytes.append_null(),
        }
        if kind == Kind::State {
            self.old_state.append_value(tcp_state_name(e.old_state));
            self.new_state.append_value(tcp_state_name(e.new_state));
        } else {
            self.old_state.append_null();
            self.new_state.append_null();
        }
        self.srtt_us.append_option((kind == Kind::Rtt).then_some(e.value as u32));
        self.filename.append_null();
        self.exit_status.append_null();
        self.no_call();
    }

    fn push_proc(&mut self, kind: Kind, e: &netrec_proc_event) {
        self.push_common(kind, e.ts_ns);
        self.pid.append_value(e.pid);
        self.tid.append_value(e.tid);
        self.comm.append_value(self.comms.text(comm_key(&e.comm), |k| c_str_bytes(k).into_owned()));
        self.ppid.append_value(e.ppid);
        self.no_sock();
        if kind == Kind::Exec {
            self.filename.append_value(c_str(&e.filename));
        } else {
            self.filename.append_null();
        }
        self.exit_status.append_option((kind == Kind::Exit).then_some(e.exit_status));
        self.no_call();
    }

    /// Hands over the rows so far and their counts per kind; the builder starts empty again.
    pub fn finish(&mut self) -> (RecordBatch, PerKind) {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.kind.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.ts_kernel_ns.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.tid.finish()),
            Arc::new(self.comm.finish()),
            Arc::new(self.ppid.finish()),
            Arc::new(self.sock_id.finish()),
            Arc::new(self.family.finish()),
            Arc::new(self.protocol.finish()),
            Arc::new(self.laddr.finish()),
            Arc::new(self.lport.finish()),
            Arc::new(self.raddr.finish()),
            Arc::new(self.rport.finish()),
            Arc::new(self.bytes.finish()),
            Arc::new(self.old_state.finish()),
            Arc::new(self.new_state.finish()),
            Arc::new(self.srtt_us.finish()),
            Arc::new(self.filename.finish()),
            Arc::new(self.exit_status.finish()),
            Arc::new(self.probe.finish()),
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.depth.finish()),
            Arc::new(self.arg0.finish()),
            Arc::new(self.arg1.finish()),
            Arc::new(self.arg2.finish()),
            Arc::new(self.retval.finish()),
        ];
        self.rows = 0;
        let counts = std::mem::take(&mut self.counts);
        let batch = RecordBatch::try_new(arrow_schema(), columns)
            .expect("batch columns follow schemas/events.json (checked by tests)");
        (batch, counts)
    }
}

/// The text of raw values seen recently. Addresses and command names repeat
/// row after row, and formatting them each time was a quarter of the
/// capture's CPU (perf, bench/run stream). Direct-mapped: a hash picks the slot.
struct TextCache<const N: usize> {
    slots: Vec<Option<([u8; N], Box<str>)>>,
}

impl<const N: usize> TextCache<N> {
    const SLOTS: usize = 256;

    fn new() -> Self {
        TextCache { slots: vec![None; Self::SLOTS] }
    }

    fn text(&mut self, key: [u8; N], format: impl FnOnce(&[u8; N]) -> String) -> &str {
        let slot = key.iter().fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize)) % Self::SLOTS;
        let entry = &mut self.slots[slot];
        if entry.as_ref().is_none_or(|(k, _)| *k != key) {
            *entry = Some((key, format(&key).into_boxed_str()));
        }
        &entry.as_ref().expect("filled above").1
    }
}

fn format_addr(key: &[u8; 17]) -> String {
    let raw: [u8; 16] = key[1..].try_into().expect("16 address bytes");
    if key[0] == AF_INET {
        Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).to_string()
    } else {
        Ipv6Addr::from(raw).to_string()
    }
}

fn addr_key(family: u8, raw: &[u8; 16]) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = family;
    key[1..].copy_from_slice(raw);
    key
}

fn comm_key(comm: &[i8; 16]) -> [u8; 16] {
    comm.map(|c| c as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, UInt16Type, UInt32Type, UInt64Type};

    #[test]
    fn text_cache_never_returns_another_keys_text() {
        let mut cache = TextCache::<17>::new();
        // More keys than slots, each looked up twice, in two orders.
        let keys: Vec<[u8; 16]> = (0..1000u32).map(|i| {
            let mut raw = [0u8; 16];
            raw[..4].copy_from_slice(&(0x0a00_0000 + i * 7919).to_be_bytes());
            raw
        }).collect();
        for raw in keys.iter().chain(keys.iter().rev()) {
            let want = Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).to_string();
            assert_eq!(cache.text(addr_key(AF_INET, raw), format_addr), want);
        }
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(cache.text(addr_key(0, &v6), format_addr), "2001:db8::1");
    }

    #[test]
    fn sock_and_proc_rows_fill_their_columns() {
        let mut b = BatchBuilder::new(1_000, Arc::from(vec!["login_connection".to_string()]));
        let mut send = netrec_sock_event {
            family: AF_INET,
            owner_known: 1,
            pid: 7,
            value: 4096,
            ts_ns: 5,
            sock_id: 3,
            sport: 8080,
            dport: 51000,
            ..Default::default()
        };
        send.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        send.daddr[..4].copy_from_slice(&[10, 1, 2, 3]);
        b.push(&Record::Sock(Kind::Send, &send));
        let mut state = netrec_sock_event { family: 10, old_state: 2, new_state: 1, ..Default::default() };
        state.daddr[15] = 1;
        b.push(&Record::Sock(Kind::State, &state));
        let mut exec = netrec_proc_event { pid: 9, ..Default::default() };
        exec.filename[0] = b'/' as i8;
        b.push(&Record::Proc(Kind::Exec, &exec));

        let call = netrec_call_event { pid: 9, probe: 0, duration_ns: 250, finished: 1, has_retval: 1, retval: -1, depth: 2, args: [1, 2, 3], ..Default::default() };
        b.push(&Record::Call(Kind::Call, &call));
        let running = netrec_call_event { probe: 0, finished: 0, ..call };
        b.push(&Record::Call(Kind::Call, &running));

        let (batch, counts) = b.finish();
        assert_eq!(batch.num_rows(), 5);
        assert_eq!(counts[Kind::Send.index()], 1);
        assert_eq!(counts[Kind::Exec.index()], 1);
        let col = |n: &str| batch.column_by_name(n).unwrap().clone();
        assert_eq!(col("kind").as_string::<i32>().value(1), "state");
        assert_eq!(col("bytes").as_primitive::<UInt64Type>().value(0), 4096);
        assert!(col("bytes").is_null(1));
        assert_eq!(col("laddr").as_string::<i32>().value(0), "127.0.0.1");
        assert_eq!(col("raddr").as_string::<i32>().value(0), "10.1.2.3");
        assert_eq!(col("raddr").as_string::<i32>().value(1), "::1");
        assert_eq!(col("lport").as_primitive::<UInt16Type>().value(0), 8080);
        assert_eq!(col("old_state").as_string::<i32>().value(1), "SYN_SENT");
        assert_eq!(col("new_state").as_string::<i32>().value(1), "ESTABLISHED");
        assert!(col("pid").is_null(1), "an unknown owner is null, never a guess");
        assert!(col("sock_id").is_null(1), "sock_id 0 means untracked");
        assert_eq!(col("filename").as_string::<i32>().value(2), "/");
        assert_eq!(col("ts").as_primitive::<arrow_array::types::TimestampNanosecondType>().value(0), 1_005);
        assert_eq!(col("probe").as_string::<i32>().value(3), "login_connection");
        assert!(col("probe").is_null(0));
        assert_eq!(col("duration_ns").as_primitive::<UInt64Type>().value(3), 250);
        assert!(col("duration_ns").is_null(4), "an unfinished call has no duration");
        assert!(col("retval").is_null(4));
        assert_eq!(col("retval").as_primitive::<Int64Type>().value(3), -1);
        assert_eq!(col("arg2").as_primitive::<Int64Type>().value(4), 3);
        assert_eq!(col("depth").as_primitive::<UInt32Type>().value(3), 2);
        assert_eq!(counts[Kind::Call.index()], 2);
        assert_eq!(b.len(), 0);
    }
}
