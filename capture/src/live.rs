//! `--live`: bytes sent and received per process, printed once a second.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, Utc};

use crate::abi::Kind;
use crate::segment::batch::DataRow;

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
    /// Rows of an unknown owner are not shown (the segments keep them).
    pub fn add(&mut self, row: &DataRow) {
        let Some(pid) = row.pid else { return };
        let t = self.per_pid.entry(pid).or_default();
        if t.comm.is_empty() {
            t.comm = row.comm.unwrap_or_default().to_string();
        }
        match row.kind {
            Kind::Send => t.sent += row.bytes,
            _ => t.recv += row.bytes,
        }
    }

    /// Prints the totals of the second that just ended, if the clock moved on.
    pub fn tick(&mut self, now: DateTime<Utc>, out: &mut impl Write) -> std::io::Result<()> {
        let sec = now.timestamp();
        let Some(prev) = self.second.replace(sec) else {
            return writeln!(
                out,
                "{:<10} {:>8} {:<16} {:>14} {:>14}",
                "TIME", "PID", "COMM", "SENT_BYTES", "RECV_BYTES"
            );
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
        let row = |kind, pid, bytes| DataRow { kind, pid, comm: Some("x"), bytes };
        live.add(&row(Kind::Send, Some(5), 100));
        live.add(&row(Kind::Recv, Some(5), 30));
        live.add(&row(Kind::Recv, None, 999));
        live.tick(t0, &mut out).unwrap();
        live.tick(t0 + chrono::Duration::seconds(1), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].contains(" x ") && lines[1].ends_with(" 100             30"), "{}", lines[1]);
    }
}
