//! The per-second NetIO printout, defined once: `netrec-capture --live`
//! prints it during a capture and `netrec-analyze replay --view netio`
//! prints it again, the same, from the segments.

use std::io::{self, Write};

/// One process's bytes in one second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetioRow<'a> {
    /// Its host, on a printout of several hosts' processes (pids are per host).
    pub host: Option<&'a str>,
    pub pid: u32,
    pub comm: &'a str,
    pub sent: u64,
    pub recv: u64,
}

/// The HOST cell of a per-process printout of several hosts, its separator
/// included; empty without a host (one host's printout has no HOST column).
pub fn host_cell(host: Option<&str>) -> String {
    host.map(|h| format!("{h:<16} ")).unwrap_or_default()
}

/// The column names; a HOST column after TIME when `hosts`.
pub fn netio_header(out: &mut (impl Write + ?Sized), hosts: bool) -> io::Result<()> {
    let host = host_cell(hosts.then_some("HOST"));
    writeln!(out, "{:<10} {host}{:>8} {:<16} {:>14} {:>14}", "TIME", "PID", "COMM", "SENT_BYTES", "RECV_BYTES")
}

/// One second's rows, busiest process first (ties by host, then pid);
/// `label` is the second as HH:MM:SS.
pub fn netio_second(out: &mut (impl Write + ?Sized), label: &str, rows: &mut [NetioRow<'_>]) -> io::Result<()> {
    rows.sort_by(|a, b| (b.sent + b.recv).cmp(&(a.sent + a.recv)).then(a.host.cmp(&b.host)).then(a.pid.cmp(&b.pid)));
    for r in rows.iter() {
        let host = host_cell(r.host);
        writeln!(out, "{label:<10} {host}{:>8} {:<16} {:>14} {:>14}", r.pid, r.comm, r.sent, r.recv)?;
    }
    Ok(())
}
