//! `--view netio` and `--view churn`: the trace replayed as per-second
//! printouts. A second is printed once trace time is past it (plus a settle
//! time), so memory holds the seconds not yet printed and the open connections.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use netrec_schema::printout::{self, NetioRow};

use super::clock::Clock;
use super::rows::{at, Rows};
use super::Sink;
use crate::metrics::churn::{ABORT_FROM, CLOSED_FROM};

use super::SECOND;

/// Per second, per key (a process: host and pid), what a view keeps of it.
type Seconds<K, V> = BTreeMap<i64, BTreeMap<K, V>>;

/// A view: rows added in time order, seconds printed once settled.
pub trait PerSecond {
    fn add(&mut self, r: &Rows, i: usize);
    /// Prints every second before `end_second`.
    fn print_until(&mut self, end_second: i64, out: &mut dyn Write) -> anyhow::Result<()>;
}

/// A view as a sink: a second is printed once trace time is `settle_ns` past its end.
pub struct Printed<V> {
    pub view: V,
    pub settle_ns: i64,
}

impl<V: PerSecond> Sink for Printed<V> {
    fn row(&mut self, r: &Rows, i: usize, _out: &mut dyn Write) -> anyhow::Result<()> {
        self.view.add(r, i);
        Ok(())
    }

    fn advance(&mut self, now_ns: i64, out: &mut dyn Write) -> anyhow::Result<()> {
        self.view.print_until((now_ns - self.settle_ns).div_euclid(SECOND), out)?;
        out.flush()?;
        Ok(())
    }

    fn flush(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        out.flush()?;
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        self.view.print_until(i64::MAX, out)?;
        self.flush(out)
    }
}

/// The printout of `netrec-capture --live`: bytes sent and consumed per
/// process per second. Rows of an unknown owner are left out, as there.
/// A process is (host, pid); `hosts` shows the host (a trace of several).
pub struct NetioView {
    clock: Clock,
    json: bool,
    hosts: bool,
    header: bool,
    seconds: Seconds<(String, u32), (String, u64, u64)>,
}

impl NetioView {
    pub fn new(local: bool, json: bool, hosts: bool) -> NetioView {
        NetioView { clock: Clock::new(local), json, hosts, header: false, seconds: BTreeMap::new() }
    }
}

impl PerSecond for NetioView {
    fn print_until(&mut self, end_second: i64, out: &mut dyn Write) -> anyhow::Result<()> {
        let later = self.seconds.split_off(&end_second);
        let done = std::mem::replace(&mut self.seconds, later);
        for (second, per_pid) in done {
            if self.json {
                let time = self.clock.second_text(second);
                for ((host, pid), (comm, sent, recv)) in per_pid {
                    let mut row = serde_json::json!({"time": time, "pid": pid, "comm": comm, "sent_bytes": sent, "recv_bytes": recv});
                    if self.hosts {
                        row["host"] = host.into();
                    }
                    writeln!(out, "{row}")?;
                }
                continue;
            }
            if !std::mem::replace(&mut self.header, true) {
                printout::netio_header(&mut *out, self.hosts)?;
            }
            let mut rows: Vec<NetioRow> = per_pid
                .iter()
                .map(|((host, pid), (comm, sent, recv))| NetioRow {
                    host: self.hosts.then_some(host.as_str()),
                    pid: *pid,
                    comm,
                    sent: *sent,
                    recv: *recv,
                })
                .collect();
            printout::netio_second(&mut *out, &self.clock.label(second), &mut rows)?;
        }
        Ok(())
    }

    fn add(&mut self, r: &Rows, i: usize) {
        let Some(pid) = at(r.pid, i) else { return };
        let send = match at(r.kind, i) {
            Some("send") => true,
            Some("recv") => false,
            _ => return,
        };
        let bytes = at(r.bytes, i).unwrap_or(0);
        let process = (at(r.host, i).unwrap_or_default().to_string(), pid);
        let entry = self.seconds.entry(r.ts[i].div_euclid(SECOND)).or_default().entry(process).or_default();
        if entry.0.is_empty() {
            entry.0 = at(r.comm, i).unwrap_or_default().to_string();
        }
        if send {
            entry.1 += bytes;
        } else {
            entry.2 += bytes;
        }
    }
}

/// Per-second connection counters of one process, as `churn` counts them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub opened_active: u64,
    pub opened_passive: u64,
    pub closed: u64,
    pub failed: u64,
    pub resets: u64,
    pub short_lived: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.opened_active += o.opened_active;
        self.opened_passive += o.opened_passive;
        self.closed += o.closed;
        self.failed += o.failed;
        self.resets += o.resets;
        self.short_lived += o.short_lived;
    }
}

/// A process: pid and comm, either null when the capture could not tell.
type Owner = (Option<u32>, Option<String>);

#[derive(Default)]
struct Conn {
    /// First SYN_SENT, SYN_RECV, active and passive ESTABLISHED, as `churn` takes them.
    firsts: [Option<i64>; 4],
    /// The first known owner of its rows.
    owner: Option<Owner>,
    /// A passive open's rows before its accept, held to be counted for the
    /// accepting process: (second, counts, the row's own owner).
    held: Vec<(i64, Counts, Owner)>,
    accepted: Option<Owner>,
}

impl Conn {
    /// A passive open: it went through SYN_RECV.
    fn passive(&self) -> bool {
        self.firsts[1].is_some()
    }
}

/// Connections opened, closed, failed, reset and short-lived per process
/// per second, counted as `netrec-analyze churn --by pid` counts them: a
/// passive open counts for the process that accepted it. The rows of a
/// handshake wait for their accept up to the settle time; a connection
/// still in its listener's queue then counts for the listener's owner.
pub struct ChurnView {
    clock: Clock,
    json: bool,
    /// Show the host (a trace of several: pids are per host).
    hosts: bool,
    short_ns: i64,
    header: bool,
    /// Per second, per (host, pid): its comm (the first seen) and counts.
    seconds: Seconds<(String, Option<u32>), (Option<String>, Counts)>,
    conns: HashMap<(String, String, u64), Conn>,
    holding: HashSet<(String, String, u64)>,
    /// --pid, --comm: owners shown.
    pids: Vec<u32>,
    comms: Vec<String>,
}

impl ChurnView {
    pub fn new(local: bool, json: bool, hosts: bool, short_ns: i64, pids: Vec<u32>, comms: Vec<String>) -> ChurnView {
        ChurnView {
            clock: Clock::new(local),
            json,
            hosts,
            short_ns,
            header: false,
            seconds: BTreeMap::new(),
            conns: HashMap::new(),
            holding: HashSet::new(),
            pids,
            comms,
        }
    }

    fn count(&mut self, second: i64, host: &str, owner: Owner, c: &Counts) {
        let (pid, comm) = owner;
        let entry =
            self.seconds.entry(second).or_default().entry((host.to_string(), pid)).or_insert((None, Counts::default()));
        if entry.0.is_none() {
            entry.0 = comm;
        }
        entry.1.add(c);
    }

    /// Held rows of seconds before `end_second` are counted for their own owner.
    fn release_held(&mut self, end_second: i64) {
        let keys: Vec<_> = self.holding.iter().cloned().collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(&key) else {
                self.holding.remove(&key);
                continue;
            };
            let (due, keep): (Vec<_>, Vec<_>) = conn.held.drain(..).partition(|(s, _, _)| *s < end_second);
            conn.held = keep;
            if conn.held.is_empty() {
                self.holding.remove(&key);
            }
            for (s, c, owner) in due {
                self.count(s, &key.0, owner, &c);
            }
        }
    }
}

impl PerSecond for ChurnView {
    fn print_until(&mut self, end_second: i64, out: &mut dyn Write) -> anyhow::Result<()> {
        self.release_held(end_second);
        let later = self.seconds.split_off(&end_second);
        let done = std::mem::replace(&mut self.seconds, later);
        for (second, per_owner) in done {
            let time = if self.json { self.clock.second_text(second) } else { self.clock.label(second) };
            for ((host, pid), (comm, c)) in per_owner {
                let shown = (self.pids.is_empty() || pid.is_some_and(|p| self.pids.contains(&p)))
                    && (self.comms.is_empty() || comm.as_ref().is_some_and(|c| self.comms.contains(c)));
                if !shown {
                    continue;
                }
                if self.json {
                    let mut row = serde_json::json!({"time": time, "pid": pid, "comm": comm,
                        "opened_active": c.opened_active, "opened_passive": c.opened_passive, "closed": c.closed,
                        "failed": c.failed, "resets": c.resets, "short_lived": c.short_lived});
                    if self.hosts {
                        row["host"] = host.into();
                    }
                    writeln!(out, "{row}")?;
                    continue;
                }
                if !std::mem::replace(&mut self.header, true) {
                    let host = printout::host_cell(self.hosts.then_some("HOST"));
                    writeln!(
                        out,
                        "{:<10} {host}{:>8} {:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                        "TIME", "PID", "COMM", "ACTIVE", "PASSIVE", "CLOSED", "FAILED", "RESETS", "SHORT"
                    )?;
                }
                let pid = pid.map_or("-".to_string(), |p| p.to_string());
                let host = printout::host_cell(self.hosts.then_some(host.as_str()));
                writeln!(
                    out,
                    "{time:<10} {host}{pid:>8} {:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                    comm.as_deref().unwrap_or("-"),
                    c.opened_active,
                    c.opened_passive,
                    c.closed,
                    c.failed,
                    c.resets,
                    c.short_lived
                )?;
            }
        }
        Ok(())
    }

    fn add(&mut self, r: &Rows, i: usize) {
        let kind = at(r.kind, i);
        let Some(sock) = at(r.sock_id, i) else { return };
        if kind != Some("state") && kind != Some("accept") {
            return;
        }
        let ts = r.ts[i];
        let second = ts.div_euclid(SECOND);
        let key =
            (at(r.host, i).unwrap_or_default().to_string(), at(r.capture_id, i).unwrap_or_default().to_string(), sock);
        let owner: Owner = (at(r.pid, i), at(r.comm, i).map(str::to_string));
        let conn = self.conns.entry(key.clone()).or_default();
        if kind == Some("accept") {
            // The handshake's rows, written before accept, are the acceptor's.
            conn.accepted = Some(owner.clone());
            if conn.owner.is_none() || conn.passive() {
                conn.owner = Some(owner.clone()).filter(|o| o.0.is_some()).or(conn.owner.take());
            }
            let held = std::mem::take(&mut conn.held);
            self.holding.remove(&key);
            for (s, c, _) in held {
                self.count(s, &key.0, owner.clone(), &c);
            }
            return;
        }
        let (old, new) = (at(r.old_state, i).unwrap_or(""), at(r.new_state, i).unwrap_or(""));
        let firsts = [
            new == "SYN_SENT",
            new == "SYN_RECV",
            old == "SYN_SENT" && new == "ESTABLISHED",
            old == "SYN_RECV" && new == "ESTABLISHED",
        ];
        for (slot, hit) in conn.firsts.iter_mut().zip(firsts) {
            if hit && slot.is_none() {
                *slot = Some(ts);
            }
        }
        let closing = new == "CLOSE";
        let c = Counts {
            opened_active: firsts[2] as u64,
            opened_passive: firsts[3] as u64,
            closed: (closing && CLOSED_FROM.contains(&old)) as u64,
            failed: (old == "SYN_SENT" && closing) as u64,
            resets: (closing && ABORT_FROM.contains(&old)) as u64,
            short_lived: 0,
        };
        if conn.owner.is_none() && owner.0.is_some() {
            conn.owner = Some(owner.clone());
        }
        let established = conn.firsts[2].is_some() || conn.firsts[3].is_some();
        if closing && established {
            let start = conn.firsts.iter().flatten().next().copied().unwrap_or(ts);
            if ts - start < self.short_ns {
                // A connection's own owner (its first known), at its close.
                let conn_owner = conn.owner.clone().unwrap_or((None, None));
                self.count(second, &key.0, conn_owner, &Counts { short_lived: 1, ..Counts::default() });
            }
        }
        let conn = self.conns.get_mut(&key).expect("inserted above");
        if c != Counts::default() {
            // A row counts for its own owner, but a passive open's rows before
            // its accept are the acceptor's: held until the accept comes.
            if conn.passive() && conn.accepted.is_none() && !closing {
                conn.held.push((second, c, owner));
                self.holding.insert(key.clone());
            } else {
                self.count(second, &key.0, owner, &c);
            }
        }
        if closing {
            // Whatever it still holds is its listener's: it closed unaccepted.
            if let Some(conn) = self.conns.remove(&key) {
                self.holding.remove(&key);
                for (s, c, o) in conn.held {
                    self.count(s, &key.0, o, &c);
                }
            }
        }
    }
}
