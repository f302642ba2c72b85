//! Event times as RFC 3339 text, nanoseconds included: the date and time of
//! day formatted once per second, the fraction appended per event.

pub struct Clock {
    local: bool,
    second: i64,
    /// `2026-12-03T10:57:00` of `second`.
    prefix: String,
    /// `Z`, or the local offset (`+01:00`).
    suffix: String,
}

impl Clock {
    pub fn new(local: bool) -> Clock {
        Clock { local, second: i64::MIN, prefix: String::new(), suffix: String::new() }
    }

    /// Appends the time of `ts_ns` (ns since the epoch) to `out`.
    pub fn write(&mut self, ts_ns: i64, out: &mut Vec<u8>) {
        let (second, nanos) = (ts_ns.div_euclid(1_000_000_000), ts_ns.rem_euclid(1_000_000_000));
        if second != self.second {
            self.second = second;
            let text = self.second_text(second);
            // 2026-12-03T10:57:00Z or 2026-12-03T11:57:00+01:00: the seconds end at 19.
            self.prefix = text[..19].to_string();
            self.suffix = text[19..].to_string();
        }
        out.extend_from_slice(self.prefix.as_bytes());
        out.push(b'.');
        let mut digits = [b'0'; 9];
        let mut n = nanos;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.extend_from_slice(&digits);
        out.extend_from_slice(self.suffix.as_bytes());
    }

    /// A second as RFC 3339 (`2026-12-03T10:57:00Z`), as every metric's `time` prints.
    pub fn second_text(&self, second: i64) -> String {
        crate::output::cells::time_text(second.saturating_mul(1_000_000_000), self.local)
    }

    /// HH:MM:SS of a second, as `netrec-capture --live` labels it.
    pub fn label(&self, second: i64) -> String {
        self.second_text(second)[11..19].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn writes_nanoseconds_and_the_zone() {
        let mut c = Clock::new(false);
        let mut out = Vec::new();
        c.write(1_764_759_420_000_000_042, &mut out);
        out.push(b' ');
        c.write(-1, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "2025-12-03T10:57:00.000000042Z 1969-12-31T23:59:59.999999999Z");
    }
}
