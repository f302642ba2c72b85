//! One event per line of text, as `tcpdump -r` and `sysdig -r` print them:
//! time, [host,] kind, pid, comm, the connection (local end first, `>` a
//! send, `<` a receive), then what the kind carries.

use std::io::Write;

use super::clock::Clock;
use super::rows::{at, Rows};
use super::{num, Sink};

pub struct Lines {
    clock: Clock,
    /// Hosts are named when the trace has more than one.
    hosts: bool,
    buf: Vec<u8>,
}

impl Lines {
    pub fn new(local: bool, hosts: bool) -> Lines {
        Lines { clock: Clock::new(local), hosts, buf: Vec::with_capacity(1 << 16) }
    }
}

/// A number, or `-` where it is null.
fn opt_num(buf: &mut Vec<u8>, n: Option<impl itoa::Integer>) {
    match n {
        Some(n) => num(buf, n),
        None => buf.push(b'-'),
    }
}

fn text(buf: &mut Vec<u8>, s: Option<&str>) {
    buf.extend_from_slice(s.unwrap_or("-").as_bytes());
}

fn endpoint(buf: &mut Vec<u8>, addr: Option<&str>, port: Option<u16>) {
    match addr {
        None => buf.push(b'*'),
        Some(a) if a.contains(':') => {
            buf.push(b'[');
            buf.extend_from_slice(a.as_bytes());
            buf.push(b']');
        }
        Some(a) => buf.extend_from_slice(a.as_bytes()),
    }
    buf.push(b':');
    match port {
        Some(p) => num(buf, p),
        None => buf.push(b'*'),
    }
}

fn ppid(buf: &mut Vec<u8>, r: &Rows, i: usize) {
    buf.extend_from_slice(b"ppid ");
    opt_num(buf, at(r.ppid, i));
}

/// 1.234 ms, 56.7 us, 812 ns: four significant digits at most.
pub fn duration(buf: &mut Vec<u8>, ns: u64) {
    let (unit, scale) = match ns {
        0..1_000 => ("ns", 1.0),
        1_000..1_000_000 => ("us", 1e3),
        1_000_000..1_000_000_000 => ("ms", 1e6),
        _ => ("s", 1e9),
    };
    if scale == 1.0 {
        num(buf, ns);
    } else {
        let v = ns as f64 / scale;
        let decimals = if v >= 100.0 {
            1
        } else if v >= 10.0 {
            2
        } else {
            3
        };
        let _ = write!(buf, "{v:.decimals$}");
    }
    buf.push(b' ');
    buf.extend_from_slice(unit.as_bytes());
}

impl Lines {
    fn details(&mut self, r: &Rows, i: usize, kind: &str) {
        let b = &mut self.buf;
        match kind {
            "send" | "recv" => {
                num(b, at(r.bytes, i).unwrap_or(0));
                b.extend_from_slice(b" bytes");
                if let Some(n) = at(r.samples, i) {
                    b.extend_from_slice(b" in ");
                    num(b, n);
                    b.extend_from_slice(b" calls (aggregate of an interval from here)");
                }
            }
            "state" => {
                text(b, at(r.old_state, i));
                b.extend_from_slice(b" -> ");
                text(b, at(r.new_state, i));
            }
            "rtt" => {
                b.extend_from_slice(b"srtt ");
                num(b, at(r.srtt_us, i).unwrap_or(0));
                b.extend_from_slice(b" us");
                if let Some(n) = at(r.samples, i).filter(|&n| n > 1) {
                    b.extend_from_slice(b" (aggregate: ");
                    num(b, n);
                    b.extend_from_slice(b" changes in this second within 1/32 of it)");
                }
            }
            "exec" => {
                ppid(b, r, i);
                b.push(b' ');
                text(b, at(r.filename, i));
            }
            "exit" => {
                ppid(b, r, i);
                match at(r.exit_status, i) {
                    Some(s) if s & 0x7f != 0 => {
                        b.extend_from_slice(b" killed by signal ");
                        num(b, s & 0x7f);
                    }
                    Some(s) => {
                        b.extend_from_slice(b" exit ");
                        num(b, (s >> 8) & 0xff);
                    }
                    None => {}
                }
            }
            "call" | "usdt" => {
                text(b, at(r.probe, i));
                if kind == "call" {
                    b.push(b' ');
                    match at(r.duration_ns, i) {
                        Some(d) => duration(b, d),
                        None => b.extend_from_slice(b"unfinished at stop"),
                    }
                    if let Some(d) = at(r.depth, i).filter(|&d| d > 0) {
                        b.extend_from_slice(b" depth ");
                        num(b, d);
                    }
                }
                let args: Vec<Option<i64>> = r.args.iter().map(|a| at(*a, i)).collect();
                if args.iter().any(Option::is_some) {
                    b.extend_from_slice(b" args");
                    for a in args {
                        b.push(b' ');
                        opt_num(b, a);
                    }
                }
                if let Some(v) = at(r.retval, i) {
                    b.extend_from_slice(b" ret ");
                    num(b, v);
                }
            }
            _ => {}
        }
    }
}

impl Sink for Lines {
    fn row(&mut self, r: &Rows, i: usize, out: &mut dyn Write) -> anyhow::Result<()> {
        let kind = at(r.kind, i).unwrap_or("?");
        self.clock.write(r.ts[i], &mut self.buf);
        let b = &mut self.buf;
        if self.hosts {
            b.push(b' ');
            text(b, at(r.host, i));
        }
        b.push(b' ');
        b.extend_from_slice(kind.as_bytes());
        b.push(b' ');
        opt_num(b, at(r.pid, i));
        b.push(b' ');
        text(b, at(r.comm, i));
        if let Some(proto) = at(r.protocol, i) {
            b.push(b' ');
            b.extend_from_slice(proto.as_bytes());
            b.push(b' ');
            endpoint(b, at(r.laddr, i), at(r.lport, i));
            b.extend_from_slice(match kind {
                "send" => b" > ",
                "recv" => b" < ",
                _ => b" - ",
            });
            endpoint(b, at(r.raddr, i), at(r.rport, i));
        }
        let before = self.buf.len();
        self.buf.push(b' ');
        self.details(r, i, kind);
        if self.buf.len() == before + 1 {
            self.buf.pop();
        }
        self.buf.push(b'\n');
        super::spill(&mut self.buf, out, false)
    }

    fn flush(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        super::spill(&mut self.buf, out, true)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_keep_four_digits() {
        let f = |ns| {
            let mut b = Vec::new();
            super::duration(&mut b, ns);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(f(812), "812 ns");
        assert_eq!(f(56_700), "56.70 us");
        assert_eq!(f(1_234_000), "1.234 ms");
        assert_eq!(f(250_000_000), "250.0 ms");
        assert_eq!(f(3_000_000_000), "3.000 s");
    }
}
