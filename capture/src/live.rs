//! `--live`: bytes sent and received per process, printed once a second.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use chrono::DateTime;
use netrec_schema::printout::{self, NetioRow};

use crate::abi::Kind;
use crate::segment::batch::DataRow;

#[derive(Default)]
struct Totals {
    comm: String,
    sent: u64,
    recv: u64,
}

/// Per wall-clock second, per process. A second is printed once it is
/// settled: at once for rows per call, after the kernel's aggregates of that
/// second have been read when data is aggregated.
#[derive(Default)]
pub struct Live {
    header: bool,
    seconds: BTreeMap<i64, HashMap<u32, Totals>>,
}

impl Live {
    /// Rows of an unknown owner are not shown (the segments keep them).
    pub fn add(&mut self, row: &DataRow) {
        let Some(pid) = row.pid else { return };
        let t = self.seconds.entry(row.second).or_default().entry(pid).or_default();
        if t.comm.is_empty() {
            t.comm = row.comm.unwrap_or_default().to_string();
        }
        match row.kind {
            Kind::Send => t.sent += row.bytes,
            _ => t.recv += row.bytes,
        }
    }

    /// Prints the totals of every second before `settled` (a wall-clock second).
    pub fn tick(&mut self, settled: i64, out: &mut impl Write) -> std::io::Result<()> {
        if !std::mem::replace(&mut self.header, true) {
            printout::netio_header(out, false)?;
        }
        let later = self.seconds.split_off(&settled);
        let done = std::mem::replace(&mut self.seconds, later);
        if done.is_empty() {
            return Ok(());
        }
        for (second, per_pid) in done {
            let label =
                DateTime::from_timestamp(second, 0).map(|t| t.format("%H:%M:%S").to_string()).unwrap_or_default();
            let mut rows: Vec<NetioRow> = per_pid
                .iter()
                .map(|(&pid, t)| NetioRow { host: None, pid, comm: &t.comm, sent: t.sent, recv: t.recv })
                .collect();
            printout::netio_second(out, &label, &mut rows)?;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_one_line_per_process_per_settled_second() {
        let mut live = Live::default();
        let mut out = Vec::new();
        let t0 = 1_700_000_000;
        live.tick(t0, &mut out).unwrap();
        let row = |kind, pid, bytes, second| DataRow { kind, pid, comm: Some("x"), bytes, second };
        live.add(&row(Kind::Send, Some(5), 100, t0));
        live.add(&row(Kind::Recv, Some(5), 30, t0));
        live.add(&row(Kind::Recv, None, 999, t0));
        // An aggregate of the second before arrives late: still printed, in its second.
        live.add(&row(Kind::Send, Some(6), 7, t0 + 1));
        live.tick(t0, &mut out).unwrap();
        live.tick(t0 + 1, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].contains(" x ") && lines[1].ends_with(" 100             30"), "{}", lines[1]);
        let mut out = Vec::new();
        live.tick(t0 + 2, &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .trim_end()
            .ends_with("6 x                             7              0"));
    }
}
