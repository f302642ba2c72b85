//! One event per line as a JSON object with the schema's field names: `ts`
//! as RFC 3339 text (nanoseconds, UTC), then every column that is not null
//! in the schema's order, then `host` and `capture_id` (the segment's
//! metadata). A null column is left out, as DuckDB's and jq's readers expect.

use std::io::Write;

use super::clock::Clock;
use super::rows::{Col, Rows};
use super::{num, Sink};

pub struct JsonLines {
    clock: Clock,
    buf: Vec<u8>,
    /// `"name":` per column of the last chunk, and whether it is written.
    keys: Vec<(Vec<u8>, bool)>,
}

impl JsonLines {
    pub fn new() -> JsonLines {
        JsonLines { clock: Clock::new(false), buf: Vec::with_capacity(1 << 16), keys: Vec::new() }
    }
}

fn written(name: &str) -> bool {
    name == "host" || name == "capture_id" || (name != "ts" && netrec_schema::column(name).is_some())
}

/// A JSON string; text that needs no escapes (nearly all) is copied as is.
fn string(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        serde_json::to_writer(&mut *buf, s).expect("a string serializes");
    }
}

impl Sink for JsonLines {
    fn row(&mut self, r: &Rows, i: usize, out: &mut dyn Write) -> anyhow::Result<()> {
        if self.keys.len() != r.columns.len() {
            self.keys = r.columns.iter().map(|(n, _)| (format!(",\"{n}\":").into_bytes(), written(n))).collect();
        }
        let b = &mut self.buf;
        b.extend_from_slice(b"{\"ts\":\"");
        self.clock.write(r.ts[i], b);
        b.push(b'"');
        for ((_, col), (key, write)) in r.columns.iter().zip(&self.keys) {
            if !write {
                continue;
            }
            let before = b.len();
            b.extend_from_slice(key);
            let present = match col {
                Col::Str(c) => c.get(i).map(|s| string(b, s)).is_some(),
                Col::U16(c) => c.get(i).map(|v| num(b, v)).is_some(),
                Col::U32(c) => c.get(i).map(|v| num(b, v)).is_some(),
                Col::U64(c) => c.get(i).map(|v| num(b, v)).is_some(),
                Col::I32(c) => c.get(i).map(|v| num(b, v)).is_some(),
                Col::I64(c) => c.get(i).map(|v| num(b, v)).is_some(),
            };
            if !present {
                b.truncate(before);
            }
        }
        b.extend_from_slice(b"}\n");
        super::spill(b, out, false)
    }

    fn flush(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        super::spill(&mut self.buf, out, true)
    }
}
