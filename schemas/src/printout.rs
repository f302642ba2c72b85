//! The per-second NetIO printout, defined once: `netrec-capture --live`
//! prints it during a capture and `netrec-analyze replay --view netio`
//! prints it again, the same, from the segments.

use std::io::{self, Write};

/// One process's bytes in one second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetioRow<'a> {
    pub pid: u32,
    pub comm: &'a str,
    pub sent: u64,
    pub recv: u64,
}

pub fn netio_header(out: &mut (impl Write + ?Sized)) -> io::Result<()> {
    writeln!(out, "{:<10} {:>8} {:<16} {:>14} {:>14}", "TIME", "PID", "COMM", "SENT_BYTES", "RECV_BYTES")
}

/// One second's rows, busiest process first (ties by pid); `label` is the
/// second as HH:MM:SS.
pub fn netio_second(out: &mut (impl Write + ?Sized), label: &str, rows: &mut [NetioRow<'_>]) -> io::Result<()> {
    rows.sort_by(|a, b| (b.sent + b.recv).cmp(&(a.sent + a.recv)).then(a.pid.cmp(&b.pid)));
    for r in rows.iter() {
        writeln!(out, "{label:<10} {:>8} {:<16} {:>14} {:>14}", r.pid, r.comm, r.sent, r.recv)?;
    }
    Ok(())
}
