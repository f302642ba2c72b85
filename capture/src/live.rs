//! `--live`: bytes sent and received per process, printed once a second.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, Utc};

use crate::event::{c_str, Kind};
use crate::probe::skel::types::netrec_sock_event;

#[derive(Default)]
struct Totals {
    comm: String,
    sent: u64,
    recv: u64,
}

#[derive(Default)]
pub struct Live {
    second: Option<i64>,
    per_pid: HashMap<u32, Totals>,
}

impl Live {
    pub fn add(&mut self, kind: Kind, e: &netrec_sock_event) {
        if !matches!(kind, Kind::Send | Kind::Recv) {
            return;
        }
        let t = self.per_pid.entry(e.pid).or_default();
        if t.comm.is_empty() {
            t.comm = c_str(&e.comm).into_owned();
        }
        match kind {
            Kind::Send => t.sent += e.value,
            _ => t.recv += e.value,
        }
    }

    /// Prints the totals of the second that just ended, if the clock moved on.
    pub fn tick(&mut self, now: DateTime<Utc>, out: &mut impl Write) -> std::io::Result<()> {
        let sec = now.timestamp();
        let Some(prev) = self.second.replace(sec) else {
            return writeln!(out, "{:<10} {:>8} {:<16} {:>14} {:>14}", "TIME", "PID", "COMM", "SENT_BYTES", "RECV_BYTES");
        };
        if prev == sec {
            return Ok(());
        }
        let label = DateTime::from_timestamp(prev, 0).map(|t| t.format("%H:%M:%S").to_string()).unwrap_or_default();
        let mut rows: Vec<_> = self.per_pid.drain().collect();
        rows.sort_by(|a, b| (b.1.sent + b.1.recv).cmp(&(a.1.sent + a.1.recv)).then(a.0.cmp(&b.0)));
        for (pid, t) in rows {
            writeln!(out, "{label:<10} {pid:>8} {:<16} {:>14} {:>14}", t.comm, t.sent, t.recv)?;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_one_line_per_process_per_second() {
        let mut live = Live::default();
        let mut out = Vec::new();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        live.tick(t0, &mut out).unwrap();
        let mut e = netrec_sock_event { pid: 5, value: 100, ..Default::default() };
        e.comm[0] = b'x' as i8;
        live.add(Kind::Send, &e);
        live.add(Kind::Recv, &netrec_sock_event { value: 30, ..e });
        live.add(Kind::Rtt, &netrec_sock_event { value: 999, ..e });
        live.tick(t0, &mut out).unwrap();
        live.tick(t0 + chrono::Duration::seconds(1), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].contains(" x ") && lines[1].ends_with(" 100             30"), "{}", lines[1]);
    }
}
