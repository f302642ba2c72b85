//! Decoded records -> Arrow record batches, built column by column per kind
//! of row: each group appends only the columns its rows have, and the
//! columns it lacks become one all-null array per batch (no null appended
//! row by row). Rows keep the ring buffer's order within a group.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder, UInt16Builder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::types::{UInt32Type, UInt8Type};
use arrow_array::{new_null_array, ArrayRef, DictionaryArray, RecordBatch, StringArray, UInt32Array, UInt8Array};
use arrow_schema::Schema;
use netrec_schema::parquet::arrow_schema;
use rustc_hash::FxHashMap;

use super::sockets::{SockText, SocketTable};
use crate::abi::{
    data_count, data_key, netrec_call_event, netrec_data_event, netrec_proc_event, netrec_sock_event, rtt_count,
    rtt_key, Kind, PerKind,
};
use crate::cgroup::Cgroups;
use crate::event::{c_str, c_str_bytes, tcp_state_name, Record};

const TCP_CLOSE: u8 = 7;

/// A send or receive as it was recorded, for `--live`.
pub struct DataRow<'a> {
    pub kind: Kind,
    pub pid: Option<u32>,
    pub comm: Option<&'a str>,
    pub bytes: u64,
    /// Wall-clock second of the row's time (an aggregate's: its interval's start).
    pub second: i64,
}

impl<'a> DataRow<'a> {
    fn of(kind: Kind, text: Option<&'a SockText>, bytes: u64, second: i64) -> DataRow<'a> {
        DataRow { kind, pid: text.and_then(|t| t.pid), comm: text.and_then(|t| t.comm.as_deref()), bytes, second }
    }
}

/// What `BatchBuilder::finish` hands over.
pub struct Rows {
    pub batches: Vec<RecordBatch>,
    /// Rows per kind.
    pub rows: PerKind,
    /// Events the rows stand for, per kind: an aggregate send/recv row
    /// stands for its calls, an RTT bucket row for its srtt changes.
    pub events: PerKind,
    /// Data rows whose socket was not in the table (their owner is null).
    pub unknown_sockets: u64,
    /// The size of user space's tables once these rows were made.
    pub tables: Tables,
}

/// Entries in the tables user space keeps for as long as a capture runs
/// (written per segment, so a long capture shows they stay bounded).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Tables {
    pub sockets: usize,
    pub cgroup_ids: usize,
    pub cgroup_pids: usize,
}

/// Columns every row has.
struct Common {
    kind: StringBuilder,
    ts: TimestampNanosecondBuilder,
    ts_kernel_ns: UInt64Builder,
    pid: UInt32Builder,
    tid: UInt32Builder,
    comm: StringBuilder,
    cgroup_id: UInt64Builder,
    cgroup: StringBuilder,
}

impl Common {
    fn new() -> Self {
        Common {
            kind: StringBuilder::new(),
            ts: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            ts_kernel_ns: UInt64Builder::new(),
            pid: UInt32Builder::new(),
            tid: UInt32Builder::new(),
            comm: StringBuilder::new(),
            cgroup_id: UInt64Builder::new(),
            cgroup: StringBuilder::new(),
        }
    }

    fn push(&mut self, kind: Kind, ts_kernel_ns: u64, clock_offset_ns: i64) {
        self.kind.append_value(kind.name());
        self.ts.append_value(ts_kernel_ns as i64 + clock_offset_ns);
        self.ts_kernel_ns.append_value(ts_kernel_ns);
    }

    fn len(&self) -> usize {
        self.ts_kernel_ns.len()
    }

    /// The cgroup columns of a process's own row (not a socket's).
    fn push_cgroup(&mut self, cgroups: &mut Cgroups, pid: u32, cgroup_id: u64) {
        self.cgroup_id.append_value(cgroup_id);
        self.cgroup.append_option(cgroups.path(pid, cgroup_id).as_deref());
    }

    fn finish(&mut self, out: &mut Vec<(&'static str, ArrayRef)>) {
        out.push(("kind", Arc::new(self.kind.finish())));
        out.push(("ts", Arc::new(self.ts.finish())));
        out.push(("ts_kernel_ns", Arc::new(self.ts_kernel_ns.finish())));
        out.push(("pid", Arc::new(self.pid.finish())));
        out.push(("tid", Arc::new(self.tid.finish())));
        out.push(("comm", Arc::new(self.comm.finish())));
        out.push(("cgroup_id", Arc::new(self.cgroup_id.finish())));
        out.push(("cgroup", Arc::new(self.cgroup.finish())));
    }
}

/// The socket columns of send, receive, state, RTT and retransmit rows.
struct SockCols {
    sock_id: UInt64Builder,
    family: StringBuilder,
    protocol: StringBuilder,
    laddr: StringBuilder,
    lport: UInt16Builder,
    raddr: StringBuilder,
    rport: UInt16Builder,
}

impl SockCols {
    fn new() -> Self {
        SockCols {
            sock_id: UInt64Builder::new(),
            family: StringBuilder::new(),
            protocol: StringBuilder::new(),
            laddr: StringBuilder::new(),
            lport: UInt16Builder::new(),
            raddr: StringBuilder::new(),
            rport: UInt16Builder::new(),
        }
    }

    /// Owner columns into `common`, endpoints here; `s` None: a socket user
    /// space does not know (only the id and protocol are).
    fn push(&mut self, common: &mut Common, sock_id: Option<u64>, tid: Option<u32>, s: Option<&SockText>) {
        common.pid.append_option(s.and_then(|s| s.pid));
        common.tid.append_option(tid);
        common.comm.append_option(s.and_then(|s| s.comm.as_deref()));
        common.cgroup_id.append_option(s.and_then(|s| s.cgroup_id));
        common.cgroup.append_option(s.and_then(|s| s.cgroup.as_deref()));
        self.sock_id.append_option(sock_id);
        self.family.append_option(s.map(|s| s.family));
        // Only TCP sockets have these rows.
        self.protocol.append_value("tcp");
        self.laddr.append_option(s.map(|s| &*s.laddr));
        self.lport.append_option(s.map(|s| s.lport));
        self.raddr.append_option(s.and_then(|s| s.raddr.as_deref()));
        self.rport.append_option(s.and_then(|s| s.rport));
    }

    fn finish(&mut self, out: &mut Vec<(&'static str, ArrayRef)>) {
        out.push(("sock_id", Arc::new(self.sock_id.finish())));
        out.push(("family", Arc::new(self.family.finish())));
        out.push(("protocol", Arc::new(self.protocol.finish())));
        out.push(("laddr", Arc::new(self.laddr.finish())));
        out.push(("lport", Arc::new(self.lport.finish())));
        out.push(("raddr", Arc::new(self.raddr.finish())));
        out.push(("rport", Arc::new(self.rport.finish())));
    }
}

/// send and recv: nearly every row of a busy capture. Their text columns
/// (kind, comm, family, protocol, laddr, raddr) are dictionary arrays over
/// the batch's distinct sockets, so a row costs one key instead of six
/// strings copied; the Parquet writer takes them as the plain strings the
/// schema declares.
struct DataGroup {
    ts: TimestampNanosecondBuilder,
    ts_kernel_ns: UInt64Builder,
    /// 0: send, 1: recv.
    kind: Vec<u8>,
    pid: UInt32Builder,
    tid: UInt32Builder,
    cgroup_id: UInt64Builder,
    sock_id: UInt64Builder,
    lport: UInt16Builder,
    rport: UInt16Builder,
    bytes: UInt64Builder,
    /// (row, calls) of the aggregate rows; the others stand for one call and
    /// leave `samples` null (a batch of calls only has no column at all).
    aggregates: Vec<(u32, u32)>,
    /// Index into `texts` per row.
    keys: Vec<u32>,
    /// The batch's sockets; None for a socket user space did not know.
    texts: Vec<Option<Arc<SockText>>>,
    key_of: FxHashMap<u64, u32>,
}

impl DataGroup {
    fn new() -> Self {
        DataGroup {
            ts: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            ts_kernel_ns: UInt64Builder::new(),
            kind: Vec::new(),
            pid: UInt32Builder::new(),
            tid: UInt32Builder::new(),
            cgroup_id: UInt64Builder::new(),
            sock_id: UInt64Builder::new(),
            lport: UInt16Builder::new(),
            rport: UInt16Builder::new(),
            bytes: UInt64Builder::new(),
            aggregates: Vec::new(),
            keys: Vec::new(),
            texts: Vec::new(),
            key_of: FxHashMap::default(),
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn push(
        &mut self,
        kind: Kind,
        ts_kernel_ns: u64,
        clock_offset_ns: i64,
        sock_id: Option<u64>,
        tid: Option<u32>,
        bytes: u64,
        text: Option<&Arc<SockText>>,
    ) {
        self.ts.append_value(ts_kernel_ns as i64 + clock_offset_ns);
        self.ts_kernel_ns.append_value(ts_kernel_ns);
        self.kind.push(u8::from(kind == Kind::Recv));
        self.tid.append_option(tid);
        self.sock_id.append_option(sock_id);
        self.bytes.append_value(bytes);
        self.pid.append_option(text.and_then(|t| t.pid));
        self.cgroup_id.append_option(text.and_then(|t| t.cgroup_id));
        self.lport.append_option(text.map(|t| t.lport));
        self.rport.append_option(text.and_then(|t| t.rport));
        // Untracked sockets (id 0) and unknown ones get a key of their own.
        let key = match sock_id.filter(|&id| id != 0).map(|id| self.key_of.get(&id).copied().ok_or(id)) {
            Some(Ok(key)) => key,
            other => {
                let key = self.texts.len() as u32;
                self.texts.push(text.cloned());
                if let Some(Err(id)) = other {
                    self.key_of.insert(id, key);
                }
                key
            }
        };
        self.keys.push(key);
    }

    /// A socket's text changed: its later rows need a new key.
    fn forget(&mut self, sock_id: u64) {
        self.key_of.remove(&sock_id);
    }

    fn finish(&mut self, out: &mut Vec<(&'static str, ArrayRef)>) {
        let keys = UInt32Array::from(std::mem::take(&mut self.keys));
        let texts = std::mem::take(&mut self.texts);
        self.key_of.clear();
        let dict = |values: StringArray| -> ArrayRef {
            Arc::new(
                DictionaryArray::<UInt32Type>::try_new(keys.clone(), Arc::new(values))
                    .expect("keys index the batch's sockets"),
            )
        };
        let text_col = |f: &dyn Fn(&SockText) -> Option<&str>| -> StringArray {
            texts.iter().map(|t| t.as_deref().and_then(f)).collect()
        };
        let kinds = UInt8Array::from(std::mem::take(&mut self.kind));
        let rows = kinds.len();
        let kind_values = StringArray::from(vec![Kind::Send.name(), Kind::Recv.name()]);
        out.push((
            "kind",
            Arc::new(DictionaryArray::<UInt8Type>::try_new(kinds, Arc::new(kind_values)).expect("two kinds")),
        ));
        out.push(("ts", Arc::new(self.ts.finish())));
        out.push(("ts_kernel_ns", Arc::new(self.ts_kernel_ns.finish())));
        out.push(("pid", Arc::new(self.pid.finish())));
        out.push(("tid", Arc::new(self.tid.finish())));
        out.push(("comm", dict(text_col(&|t| t.comm.as_deref()))));
        out.push(("cgroup_id", Arc::new(self.cgroup_id.finish())));
        out.push(("cgroup", dict(text_col(&|t| t.cgroup.as_deref()))));
        out.push(("sock_id", Arc::new(self.sock_id.finish())));
        out.push(("family", dict(text_col(&|t| Some(t.family)))));
        out.push(("protocol", dict(text_col(&|t| Some(t.protocol)))));
        out.push(("laddr", dict(text_col(&|t| Some(&*t.laddr)))));
        out.push(("lport", Arc::new(self.lport.finish())));
        out.push(("raddr", dict(text_col(&|t| t.raddr.as_deref()))));
        out.push(("rport", Arc::new(self.rport.finish())));
        out.push(("bytes", Arc::new(self.bytes.finish())));
        if !self.aggregates.is_empty() {
            let mut samples = vec![None; rows];
            for (row, calls) in self.aggregates.drain(..) {
                samples[row as usize] = Some(calls);
            }
            out.push(("samples", Arc::new(UInt32Array::from(samples))));
        }
    }
}

/// state, rtt, retransmit.
struct SockGroup {
    common: Common,
    sock: SockCols,
    old_state: StringBuilder,
    new_state: StringBuilder,
    srtt_us: UInt32Builder,
    samples: UInt32Builder,
}

/// exec, exit.
struct ProcGroup {
    common: Common,
    ppid: UInt32Builder,
    filename: StringBuilder,
    exit_status: Int32Builder,
}

/// call, usdt.
struct CallGroup {
    common: Common,
    probe: StringBuilder,
    duration_ns: UInt64Builder,
    depth: UInt32Builder,
    arg0: Int64Builder,
    arg1: Int64Builder,
    arg2: Int64Builder,
    retval: Int64Builder,
}

pub struct BatchBuilder {
    clock_offset_ns: i64,
    /// Length of the kernel's data aggregate intervals.
    data_interval_ns: u64,
    /// Application probe names, indexed by the cookie in call records.
    probe_names: Arc<[String]>,
    sockets: SocketTable,
    data: DataGroup,
    sock: SockGroup,
    proc: ProcGroup,
    call: CallGroup,
    rows: usize,
    counts: PerKind,
    /// Data rows whose socket was not in the table (their owner is null).
    unknown_sockets: u64,
    events: PerKind,
    per_call_data: u64,
}

impl BatchBuilder {
    /// `clock_offset_ns`: wall clock minus CLOCK_BOOTTIME, added to every
    /// kernel timestamp; `data_interval_ns`: the kernel's data aggregate
    /// intervals; `max_sockets`: the kernel's socket table size.
    pub fn new(clock_offset_ns: i64, data_interval_ns: u64, probe_names: Arc<[String]>, max_sockets: usize) -> Self {
        BatchBuilder {
            clock_offset_ns,
            data_interval_ns,
            probe_names,
            sockets: SocketTable::new(max_sockets, crate::host::boottime_ns(), data_interval_ns),
            data: DataGroup::new(),
            sock: SockGroup {
                common: Common::new(),
                sock: SockCols::new(),
                old_state: StringBuilder::new(),
                new_state: StringBuilder::new(),
                srtt_us: UInt32Builder::new(),
                samples: UInt32Builder::new(),
            },
            proc: ProcGroup {
                common: Common::new(),
                ppid: UInt32Builder::new(),
                filename: StringBuilder::new(),
                exit_status: Int32Builder::new(),
            },
            call: CallGroup {
                common: Common::new(),
                probe: StringBuilder::new(),
                duration_ns: UInt64Builder::new(),
                depth: UInt32Builder::new(),
                arg0: Int64Builder::new(),
                arg1: Int64Builder::new(),
                arg2: Int64Builder::new(),
                retval: Int64Builder::new(),
            },
            rows: 0,
            counts: PerKind::default(),
            unknown_sockets: 0,
            events: PerKind::default(),
            per_call_data: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    /// Appends one record's row (a SOCK_INFO record has none); returns it
    /// when it is a send or receive.
    pub fn push(&mut self, record: &Record) -> Option<DataRow<'_>> {
        match record {
            Record::Data(kind, e) => return self.push_data(*kind, e),
            Record::SockInfo(e) => {
                self.learn(e);
            }
            Record::Sock(kind @ (Kind::Send | Kind::Recv), e) => return self.push_full_data(*kind, e),
            Record::Sock(kind, e) => self.push_sock(*kind, e),
            Record::RttCount(k, c) => self.push_rtt_count(k, c),
            Record::Proc(kind, e) => self.push_proc(*kind, e),
            Record::Call(kind, e) => self.push_call(*kind, e),
        }
        None
    }

    /// A full record's socket text; a change reaches the data rows after it.
    fn learn(&mut self, e: &netrec_sock_event) -> Arc<SockText> {
        let (text, changed) = self.sockets.learn(e);
        if changed {
            self.data.forget(e.sock_id);
        }
        text
    }

    fn second_of(&self, ts_kernel_ns: u64) -> i64 {
        (ts_kernel_ns as i64 + self.clock_offset_ns).div_euclid(1_000_000_000)
    }

    /// Send/recv rows of one call each since the last call (for --data-budget).
    pub fn take_per_call_data(&mut self) -> u64 {
        std::mem::take(&mut self.per_call_data)
    }

    fn counted(&mut self, kind: Kind) {
        self.counted_as(kind, 1);
    }

    /// One row that stands for `events` events.
    fn counted_as(&mut self, kind: Kind, events: u64) {
        self.counts[kind.index()] += 1;
        self.events[kind.index()] += events;
        self.rows += 1;
    }

    fn push_data(&mut self, kind: Kind, e: &netrec_data_event) -> Option<DataRow<'_>> {
        self.counted(kind);
        self.per_call_data += 1;
        let second = self.second_of(e.ts_ns);
        let text = self.sockets.get(e.sock_id);
        if text.is_none() {
            self.unknown_sockets += 1;
        }
        self.data.push(kind, e.ts_ns, self.clock_offset_ns, Some(e.sock_id), Some(e.tid), e.bytes, text);
        Some(DataRow::of(kind, text.map(|t| &**t), e.bytes, second))
    }

    /// A send or receive in the full layout (the socket table was full, or
    /// the socket's info could not go out first).
    fn push_full_data(&mut self, kind: Kind, e: &netrec_sock_event) -> Option<DataRow<'_>> {
        self.counted(kind);
        self.per_call_data += 1;
        let second = self.second_of(e.ts_ns);
        let text = self.learn(e);
        let sock_id = (e.sock_id != 0).then_some(e.sock_id);
        self.data.push(kind, e.ts_ns, self.clock_offset_ns, sock_id, text.tid, e.value, Some(&text));
        // The row's text lives on in the socket table, or (untracked) in the batch.
        let text = match sock_id {
            Some(id) => self.sockets.get(id).map(|t| &**t),
            None => self.data.texts.last().and_then(|t| t.as_deref()),
        };
        Some(DataRow::of(kind, text, e.value, second))
    }

    fn push_sock(&mut self, kind: Kind, e: &netrec_sock_event) {
        self.counted(kind);
        let text = self.learn(e);
        if kind == Kind::State && e.new_state == TCP_CLOSE && e.sock_id != 0 {
            self.sockets.closed(e.sock_id);
        }
        let g = &mut self.sock;
        g.common.push(kind, e.ts_ns, self.clock_offset_ns);
        g.sock.push(&mut g.common, (e.sock_id != 0).then_some(e.sock_id), text.tid, Some(&text));
        if kind == Kind::State {
            g.old_state.append_value(tcp_state_name(e.old_state));
            g.new_state.append_value(tcp_state_name(e.new_state));
        } else {
            g.old_state.append_null();
            g.new_state.append_null();
        }
        g.srtt_us.append_option((kind == Kind::Rtt).then_some(e.value as u32));
        g.samples.append_option((kind == Kind::Rtt).then_some(e.samples.max(1)));
    }

    fn push_rtt_count(&mut self, k: &rtt_key, c: &rtt_count) {
        self.counted_as(Kind::Rtt, c.n as u64);
        let g = &mut self.sock;
        g.common.push(Kind::Rtt, c.ts, self.clock_offset_ns);
        let text = self.sockets.get(k.sock_id);
        // The kernel announces a socket before counting its RTT; only a loss leaves it unknown.
        if text.is_none() {
            self.unknown_sockets += 1;
        }
        g.sock.push(&mut g.common, Some(k.sock_id), text.and_then(|t| t.tid), text.map(|t| &**t));
        g.old_state.append_null();
        g.new_state.append_null();
        g.srtt_us.append_value(c.us);
        g.samples.append_value(c.n);
    }

    /// A socket's bytes and calls of one interval and owner, read from the
    /// kernel's table: a send row and a recv row (those with calls),
    /// at the interval's start. The owner is the entry's: an owner change
    /// within the interval made an entry of its own.
    pub fn push_data_count(&mut self, k: &data_key, c: &data_count, shown: &mut dyn FnMut(&DataRow)) {
        // Intervals are numbered on the wall clock: start = n * length - offset in boottime.
        let start = ((k.interval * self.data_interval_ns) as i64 - self.clock_offset_ns).max(0) as u64;
        let text = Arc::new(self.sockets.aggregate_text(k.pid, c));
        for (kind, bytes, calls) in [(Kind::Send, c.send_bytes, c.send_calls), (Kind::Recv, c.recv_bytes, c.recv_calls)]
        {
            if calls == 0 {
                continue;
            }
            self.counted_as(kind, calls);
            // Not the socket table's text: a dictionary key of its own.
            self.data.forget(c.sock_id);
            let row = self.data.len() as u32;
            self.data.push(kind, start, self.clock_offset_ns, Some(c.sock_id), Some(c.tid), bytes, Some(&text));
            self.data.aggregates.push((row, calls.min(u32::MAX as u64) as u32));
            self.data.forget(c.sock_id);
            shown(&DataRow::of(kind, Some(&text), bytes, self.second_of(start)));
        }
    }

    fn push_proc(&mut self, kind: Kind, e: &netrec_proc_event) {
        self.counted(kind);
        let g = &mut self.proc;
        g.common.push(kind, e.ts_ns, self.clock_offset_ns);
        g.common.pid.append_value(e.pid);
        g.common.tid.append_value(e.tid);
        g.common.comm.append_value(c_str(&e.comm));
        g.common.push_cgroup(&mut self.sockets.cgroups, e.pid, e.cgroup_id);
        if kind == Kind::Exit {
            self.sockets.cgroups.forget_pid(e.pid);
        }
        g.ppid.append_value(e.ppid);
        if kind == Kind::Exec {
            g.filename.append_value(c_str(&e.filename));
        } else {
            g.filename.append_null();
        }
        g.exit_status.append_option((kind == Kind::Exit).then_some(e.exit_status));
    }

    fn push_call(&mut self, kind: Kind, e: &netrec_call_event) {
        self.counted(kind);
        let g = &mut self.call;
        g.common.push(kind, e.ts_ns, self.clock_offset_ns);
        g.common.pid.append_value(e.pid);
        g.common.tid.append_value(e.tid);
        g.common.comm.append_value(c_str_bytes(&e.comm.map(|c| c as u8)));
        g.common.push_cgroup(&mut self.sockets.cgroups, e.pid, e.cgroup_id);
        match self.probe_names.get(e.probe as usize) {
            Some(name) => g.probe.append_value(name),
            None => g.probe.append_value(format!("probe#{}", e.probe)),
        }
        let finished = e.finished != 0;
        let call = kind == Kind::Call;
        g.duration_ns.append_option((call && finished).then_some(e.duration_ns));
        g.depth.append_option(call.then_some(e.depth));
        g.arg0.append_value(e.args[0]);
        g.arg1.append_value(e.args[1]);
        g.arg2.append_value(e.args[2]);
        g.retval.append_option((call && finished && e.has_retval != 0).then_some(e.retval));
    }

    /// Hands over the rows so far (one batch per kind of row that has any)
    /// with their counts; the builder starts empty again.
    pub fn finish(&mut self) -> Rows {
        let mut batches = Vec::new();
        let mut cols = Vec::new();
        if self.data.len() > 0 {
            self.data.finish(&mut cols);
            batches.push(assemble(&mut cols));
        }
        if self.sock.common.len() > 0 {
            let g = &mut self.sock;
            g.common.finish(&mut cols);
            g.sock.finish(&mut cols);
            cols.push(("old_state", Arc::new(g.old_state.finish())));
            cols.push(("new_state", Arc::new(g.new_state.finish())));
            cols.push(("srtt_us", Arc::new(g.srtt_us.finish())));
            cols.push(("samples", Arc::new(g.samples.finish())));
            batches.push(assemble(&mut cols));
        }
        if self.proc.common.len() > 0 {
            let g = &mut self.proc;
            g.common.finish(&mut cols);
            cols.push(("ppid", Arc::new(g.ppid.finish())));
            cols.push(("filename", Arc::new(g.filename.finish())));
            cols.push(("exit_status", Arc::new(g.exit_status.finish())));
            batches.push(assemble(&mut cols));
        }
        if self.call.common.len() > 0 {
            let g = &mut self.call;
            g.common.finish(&mut cols);
            cols.push(("probe", Arc::new(g.probe.finish())));
            cols.push(("duration_ns", Arc::new(g.duration_ns.finish())));
            cols.push(("depth", Arc::new(g.depth.finish())));
            cols.push(("arg0", Arc::new(g.arg0.finish())));
            cols.push(("arg1", Arc::new(g.arg1.finish())));
            cols.push(("arg2", Arc::new(g.arg2.finish())));
            cols.push(("retval", Arc::new(g.retval.finish())));
            batches.push(assemble(&mut cols));
        }
        self.rows = 0;
        self.sockets.flushed(crate::host::boottime_ns());
        Rows {
            batches,
            rows: std::mem::take(&mut self.counts),
            events: std::mem::take(&mut self.events),
            unknown_sockets: std::mem::take(&mut self.unknown_sockets),
            tables: {
                let (cgroup_ids, cgroup_pids) = self.sockets.cgroups.len();
                Tables { sockets: self.sockets.len(), cgroup_ids, cgroup_pids }
            },
        }
    }
}

/// A batch in the schema's column order from the columns one group filled;
/// the others are null throughout. A text column may be a dictionary array
/// of the schema's type: the batch's own schema says so, and the segment
/// writer stores it as the schema's plain strings.
fn assemble(cols: &mut Vec<(&'static str, ArrayRef)>) -> RecordBatch {
    let schema = arrow_schema();
    let rows = cols[0].1.len();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match cols.iter().position(|(name, _)| name == f.name()) {
            Some(i) => {
                let array = Arc::clone(&cols[i].1);
                fields.push(f.as_ref().clone().with_data_type(array.data_type().clone()));
                array
            }
            None => {
                fields.push(f.as_ref().clone());
                new_null_array(f.data_type(), rows)
            }
        })
        .collect();
    assert!(
        cols.iter().all(|(name, _)| schema.field_with_name(name).is_ok()),
        "a group fills a column the schema lacks"
    );
    cols.clear();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .expect("batch columns follow schemas/events.json (checked by tests)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, UInt16Type, UInt32Type, UInt64Type};

    const AF_INET: u8 = 2;

    /// The batches as a reader sees them: written to Parquet with the
    /// schema's types (dictionary columns become plain strings), read back.
    fn through_parquet(batches: &[RecordBatch]) -> RecordBatch {
        let mut file = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut file, arrow_schema(), None).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(bytes::Bytes::from(file), 1 << 20).unwrap();
        let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(read[0].schema(), arrow_schema(), "readers see the declared schema");
        arrow_select::concat::concat_batches(&arrow_schema(), &read).unwrap()
    }

    fn sock_event(kind: u32) -> netrec_sock_event {
        let mut e = netrec_sock_event {
            kind,
            family: AF_INET,
            owner_known: 1,
            pid: 7,
            tid: 70,
            ts_ns: 5,
            sock_id: 3,
            sport: 8080,
            dport: 51000,
            ..Default::default()
        };
        e.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        e.daddr[..4].copy_from_slice(&[10, 1, 2, 3]);
        e.comm[0] = b'x' as i8;
        e
    }

    #[test]
    fn rows_of_every_group_fill_their_columns() {
        let mut b = BatchBuilder::new(1_000, 1_000_000_000, Arc::from(vec!["login_connection".to_string()]), 16);
        let send = netrec_sock_event { value: 4096, ..sock_event(1) };
        b.push(&Record::Sock(Kind::Send, &send));
        let mut state = netrec_sock_event {
            family: 10,
            old_state: 2,
            new_state: 1,
            owner_known: 0,
            sock_id: 0,
            ..Default::default()
        };
        state.daddr[15] = 1;
        b.push(&Record::Sock(Kind::State, &state));
        let mut exec = netrec_proc_event { pid: 9, ..Default::default() };
        exec.filename[0] = b'/' as i8;
        b.push(&Record::Proc(Kind::Exec, &exec));
        let call = netrec_call_event {
            pid: 9,
            probe: 0,
            duration_ns: 250,
            finished: 1,
            has_retval: 1,
            retval: -1,
            depth: 2,
            args: [1, 2, 3],
            ..Default::default()
        };
        b.push(&Record::Call(Kind::Call, &call));
        let running = netrec_call_event { probe: 0, finished: 0, ..call };
        b.push(&Record::Call(Kind::Call, &running));

        let Rows { batches, rows: counts, unknown_sockets: unknown, .. } = b.finish();
        assert_eq!(batches.len(), 4, "one batch per group that has rows");
        assert_eq!(unknown, 0);
        let batch = through_parquet(&batches);
        assert_eq!(batch.num_rows(), 5);
        assert_eq!(counts[Kind::Send.index()], 1);
        assert_eq!(counts[Kind::Exec.index()], 1);
        assert_eq!(counts[Kind::Call.index()], 2);
        let col = |n: &str| batch.column_by_name(n).unwrap().clone();
        // Groups in order: data (send), sock (state), proc (exec), call (two).
        assert_eq!(col("kind").as_string::<i32>().value(1), "state");
        assert_eq!(col("bytes").as_primitive::<UInt64Type>().value(0), 4096);
        assert!(col("bytes").is_null(1));
        assert_eq!(col("laddr").as_string::<i32>().value(0), "127.0.0.1");
        assert_eq!(col("raddr").as_string::<i32>().value(0), "10.1.2.3");
        assert_eq!(col("raddr").as_string::<i32>().value(1), "::1");
        assert_eq!(col("lport").as_primitive::<UInt16Type>().value(0), 8080);
        assert_eq!(col("pid").as_primitive::<UInt32Type>().value(0), 7);
        assert_eq!(col("comm").as_string::<i32>().value(0), "x");
        assert_eq!(col("old_state").as_string::<i32>().value(1), "SYN_SENT");
        assert_eq!(col("new_state").as_string::<i32>().value(1), "ESTABLISHED");
        assert!(col("pid").is_null(1), "an unknown owner is null, never a guess");
        assert!(col("sock_id").is_null(1), "sock_id 0 means untracked");
        assert!(col("sock_id").is_null(2) && col("laddr").is_null(2), "process rows have no socket");
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
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn small_data_records_take_their_socket_from_the_last_info() {
        let mut b = BatchBuilder::new(0, 1_000_000_000, Arc::from(Vec::new()), 16);
        let data = |tid, bytes| netrec_data_event { kind: 0, tid, ts_ns: 9, sock_id: 3, bytes };
        // Before any info: the row keeps bytes and socket id, the owner is null.
        let row = b.push(&Record::Data(Kind::Send, &data(1, 5))).unwrap();
        assert_eq!((row.pid, row.bytes), (None, 5));
        b.push(&Record::SockInfo(&sock_event(0)));
        let row = b.push(&Record::Data(Kind::Recv, &data(71, 100))).unwrap();
        assert_eq!((row.pid, row.comm, row.bytes), (Some(7), Some("x"), 100));
        // A new owner (the accepting worker) for the rows after it.
        let mut worker = sock_event(0);
        worker.pid = 8;
        worker.comm[0] = b'w' as i8;
        b.push(&Record::SockInfo(&worker));
        b.push(&Record::Data(Kind::Send, &data(80, 7)));

        let Rows { batches, rows: counts, unknown_sockets: unknown, .. } = b.finish();
        assert_eq!(unknown, 1);
        assert_eq!((counts[Kind::Send.index()], counts[Kind::Recv.index()]), (2, 1));
        assert_eq!(batches.len(), 1);
        let batch = &through_parquet(&batches);
        assert_eq!(batch.num_rows(), 3, "an info record is no row");
        let col = |n: &str| batch.column_by_name(n).unwrap().clone();
        let pid = col("pid");
        assert!(pid.is_null(0));
        assert_eq!(pid.as_primitive::<UInt32Type>().value(1), 7);
        assert_eq!(pid.as_primitive::<UInt32Type>().value(2), 8);
        assert_eq!(col("comm").as_string::<i32>().value(2), "w");
        assert_eq!(col("tid").as_primitive::<UInt32Type>().value(1), 71, "the thread is the record's");
        assert_eq!(col("raddr").as_string::<i32>().value(2), "10.1.2.3");
        assert_eq!(col("rport").as_primitive::<UInt16Type>().value(1), 51000);
        assert_eq!(col("sock_id").as_primitive::<UInt64Type>().value(0), 3);
    }
}
