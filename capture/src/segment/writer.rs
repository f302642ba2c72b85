//! One Parquet segment: written under a temporary name, fsynced, then renamed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
pub use netrec_schema::parquet::Encoding;
use netrec_schema::parquet::{arrow_schema, writer_properties};
use netrec_schema::{files, meta, version};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use sha2::{Digest, Sha256};

use super::batch::{Rows, Tables};
use crate::abi::{Kind, PerKind};
use crate::budget::Switch;
use crate::cost::Cost;

/// Facts written into every segment's key-value metadata.
#[derive(Debug, Clone)]
pub struct CaptureFacts {
    pub capture_id: String,
    pub hostname: String,
    pub kernel_release: String,
    pub boot_id: String,
    pub clock_offset_ns: i64,
    pub mechanisms: serde_json::Value,
    pub filters: serde_json::Value,
    /// --data and --data-budget.
    pub data: serde_json::Value,
    pub probes: serde_json::Value,
    pub command_line: Vec<String>,
}

/// The file, hashed as it is written: its sha256 costs no second read.
pub struct Hashed {
    file: File,
    hasher: Sha256,
}

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A segment closed under its final name.
#[derive(Debug)]
pub struct Closed {
    pub path: PathBuf,
    pub index: u32,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    pub start: String,
    pub end: String,
    pub events: u64,
    pub lost_events: u64,
}

pub struct SegmentWriter {
    final_path: PathBuf,
    tmp_path: PathBuf,
    writer: Option<ArrowWriter<Hashed>>,
    /// Finalized under its final name.
    renamed: bool,
    /// A second handle on the file, to fsync it after the writer closes.
    file: File,
    index: u32,
    opened: DateTime<Utc>,
    rows: u64,
    counts: PerKind,
    /// Events the rows stand for, per kind.
    events: PerKind,
    lost: PerKind,
    untracked: u64,
    unknown_socket: u64,
    tables: Tables,
    switches: Vec<Switch>,
}

impl SegmentWriter {
    /// Creates `<dir>/<stem>-<index>.parquet.inprogress` (mode 0600), the
    /// segment's start `opened` (the time its directory was chosen by).
    pub fn create(dir: &Path, stem: &str, index: u32, enc: Encoding, opened: DateTime<Utc>) -> Result<SegmentWriter> {
        let final_path = dir.join(files::segment_name(stem, index));
        let tmp_path = dir.join(files::in_progress_name(stem, index));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path)
            .with_context(|| format!("cannot create segment {}", tmp_path.display()))?;
        let started = file.try_clone().context("reopening it").and_then(|handle| {
            let props = writer_properties(enc, concat!("netrec-capture ", env!("CARGO_PKG_VERSION")));
            let hashed = Hashed { file, hasher: Sha256::new() };
            Ok((handle, ArrowWriter::try_new(hashed, arrow_schema(), Some(props))?))
        });
        let (handle, writer) = match started {
            Ok(started) => started,
            Err(e) => {
                // A full disk lets the file be made, not written: leave nothing behind.
                let _ = std::fs::remove_file(&tmp_path);
                return Err(e.context(format!("cannot start segment {}", tmp_path.display())));
            }
        };
        Ok(SegmentWriter {
            final_path,
            tmp_path,
            writer: Some(writer),
            renamed: false,
            file: handle,
            index,
            opened,
            rows: 0,
            counts: PerKind::default(),
            events: PerKind::default(),
            lost: PerKind::default(),
            untracked: 0,
            unknown_socket: 0,
            tables: Tables::default(),
            switches: Vec::new(),
        })
    }

    pub fn write(&mut self, rows: &Rows) -> Result<()> {
        let w = self.writer.as_mut().expect("writer is open until finalize");
        for batch in &rows.batches {
            w.write(batch).with_context(|| format!("writing segment {}", self.tmp_path.display()))?;
            self.rows += batch.num_rows() as u64;
        }
        for (total, n) in self.counts.iter_mut().zip(&rows.rows) {
            *total += n;
        }
        for (total, n) in self.events.iter_mut().zip(&rows.events) {
            *total += n;
        }
        self.unknown_socket += rows.unknown_sockets;
        self.tables = rows.tables;
        Ok(())
    }

    /// Events the kernel could not hand over while this segment was open.
    pub fn add_losses(&mut self, lost: &PerKind, untracked: u64) {
        for (total, n) in self.lost.iter_mut().zip(lost) {
            *total += n;
        }
        self.untracked += untracked;
    }

    /// Data recording switches while this segment was open.
    pub fn add_switches(&mut self, switches: Vec<Switch>) {
        self.switches.extend(switches);
    }

    /// Bytes this segment will take on disk, roughly (written + buffered).
    pub fn size(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| (w.bytes_written() + w.in_progress_size()) as u64)
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn lost_total(&self) -> u64 {
        self.lost.iter().sum()
    }

    /// Writes the footer and metadata, fsyncs, renames to the final name.
    pub fn finalize(mut self, facts: &CaptureFacts, cost: &Cost) -> Result<Closed> {
        let mut w = self.writer.take().expect("finalize runs once");
        let closed = Utc::now();
        let (start, end) = (
            self.opened.to_rfc3339_opts(SecondsFormat::Nanos, true),
            closed.to_rfc3339_opts(SecondsFormat::Nanos, true),
        );
        let per_kind = |v: &PerKind| {
            let m: serde_json::Map<String, serde_json::Value> =
                Kind::ALL.iter().map(|k| (k.name().to_string(), v[k.index()].into())).collect();
            serde_json::Value::Object(m).to_string()
        };
        let kv = [
            (meta::SCHEMA_VERSION, version().to_string()),
            (meta::VERSION, env!("CARGO_PKG_VERSION").to_string()),
            (meta::CAPTURE_ID, facts.capture_id.clone()),
            (meta::SEGMENT_INDEX, self.index.to_string()),
            (meta::HOSTNAME, facts.hostname.clone()),
            (meta::KERNEL_RELEASE, facts.kernel_release.clone()),
            (meta::BOOT_ID, facts.boot_id.clone()),
            (meta::CLOCK_OFFSET_NS, facts.clock_offset_ns.to_string()),
            (meta::SEGMENT_START, start.clone()),
            (meta::SEGMENT_END, end.clone()),
            (meta::EVENTS, self.rows.to_string()),
            (meta::EVENTS_BY_KIND, per_kind(&self.counts)),
            (meta::EVENTS_RECORDED_BY_KIND, per_kind(&self.events)),
            (meta::LOST_EVENTS, self.lost_total().to_string()),
            (meta::LOST_EVENTS_BY_KIND, per_kind(&self.lost)),
            (meta::UNTRACKED_SOCKET_EVENTS, self.untracked.to_string()),
            (meta::UNKNOWN_SOCKET_ROWS, self.unknown_socket.to_string()),
            (meta::CAPTURE_CPU_USER_NS, cost.cpu_user_ns.to_string()),
            (meta::CAPTURE_CPU_SYS_NS, cost.cpu_sys_ns.to_string()),
            (meta::CAPTURE_PEAK_RSS_BYTES, cost.peak_rss_bytes.to_string()),
            (meta::BPF_PROGRAMS, cost.programs_json()),
            (meta::CAPTURE_TABLES, serde_json::to_string(&self.tables).expect("plain counts serialize")),
            (meta::MECHANISMS, facts.mechanisms.to_string()),
            (meta::FILTERS, facts.filters.to_string()),
            (meta::DATA, facts.data.to_string()),
            (
                meta::DATA_SWITCHES,
                serde_json::Value::from(self.switches.iter().map(Switch::json).collect::<Vec<_>>()).to_string(),
            ),
            (meta::PROBES, facts.probes.to_string()),
            (meta::COMMAND_LINE, serde_json::to_string(&facts.command_line).expect("strings serialize")),
        ];
        for (k, v) in kv {
            w.append_key_value_metadata(KeyValue::new(k.to_string(), v));
        }
        w.finish().with_context(|| format!("writing the footer of {}", self.tmp_path.display()))?;
        let digest = w.inner().hasher.clone().finalize();
        let sha256: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        drop(w);
        self.file.sync_all().with_context(|| format!("fsync {}", self.tmp_path.display()))?;
        let size = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        std::fs::rename(&self.tmp_path, &self.final_path)
            .with_context(|| format!("renaming {} to {}", self.tmp_path.display(), self.final_path.display()))?;
        self.renamed = true;
        // The rename itself must survive a crash too.
        if let Some(dir) = self.final_path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("fsync {}", dir.display()))?;
        }
        Ok(Closed {
            path: std::mem::take(&mut self.final_path),
            index: self.index,
            size,
            sha256,
            start,
            end,
            events: self.rows,
            lost_events: self.lost_total(),
        })
    }
}

impl Drop for SegmentWriter {
    /// A segment that was never finalized, or failed to be, leaves nothing behind.
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{netrec_data_event, netrec_sock_event};
    use crate::event::Record;
    use crate::segment::batch::BatchBuilder;
    use std::sync::Arc;

    fn thread_cpu_ns() -> u64 {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: fills the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
    }

    fn facts() -> CaptureFacts {
        CaptureFacts {
            capture_id: "x".into(),
            hostname: "h".into(),
            kernel_release: "k".into(),
            boot_id: "b".into(),
            clock_offset_ns: 0,
            mechanisms: serde_json::Value::Null,
            filters: serde_json::Value::Null,
            data: serde_json::Value::Null,
            probes: serde_json::Value::Null,
            command_line: vec![],
        }
    }

    /// `events` send/recv records over `sockets` sockets, through the real
    /// batch builder into one segment; (CPU ns per event, bytes per event).
    fn encode(enc: Encoding, events: u64, sockets: u64, dir: &Path, index: u32) -> (f64, f64) {
        let mut b = BatchBuilder::new(0, 1_000_000_000, Arc::from(Vec::new()), 1 << 17);
        let mut w = SegmentWriter::create(dir, "bench", index, enc, Utc::now()).unwrap();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let start = thread_cpu_ns();
        for s in 1..=sockets {
            let mut info = netrec_sock_event {
                sock_id: s,
                owner_known: 1,
                pid: 1000 + (s % 7) as u32,
                family: 2,
                sport: 3306,
                dport: 40000 + s as u16,
                ..Default::default()
            };
            info.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
            info.daddr[..4].copy_from_slice(&[10, 0, (s >> 8) as u8, s as u8]);
            info.comm[..7].copy_from_slice(&[b'm', b'a', b'r', b'i', b'a', b'd', b'b'].map(|c| c as i8));
            b.push(&Record::SockInfo(&info));
        }
        let mut ts = 1_000_000_000u64;
        for i in 0..events {
            let r = next();
            ts += 900 + r % 400;
            let sock_id = 1 + (r >> 20) % sockets;
            let bytes = if sockets <= 2 { 64 } else { 1 << ((r >> 40) % 14) };
            let e = netrec_data_event { kind: 0, tid: 2000 + sock_id as u32, ts_ns: ts, sock_id, bytes };
            b.push(&Record::Data(if i % 2 == 0 { Kind::Send } else { Kind::Recv }, &e));
            if b.len() >= 65536 {
                w.write(&b.finish()).unwrap();
            }
        }
        w.write(&b.finish()).unwrap();
        let size = w.finalize(&facts(), &Cost::default()).unwrap().size;
        let cpu = thread_cpu_ns() - start;
        (cpu as f64 / events as f64, size as f64 / events as f64)
    }

    /// Not a test: the measurement behind `Encoding::default()`. Run with
    /// `cargo test --release -p netrec-capture --bin netrec-capture encoding_settings -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn encoding_settings() {
        let dir = tempfile::tempdir().unwrap();
        const REPEATING: &[&str] = &[
            "kind",
            "pid",
            "comm",
            "ppid",
            "family",
            "protocol",
            "laddr",
            "lport",
            "raddr",
            "rport",
            "old_state",
            "new_state",
            "filename",
            "exit_status",
            "probe",
        ];
        const REPEATING_NO_CONSTANT_TEXT: &[&str] =
            &["pid", "comm", "ppid", "laddr", "lport", "raddr", "rport", "filename", "exit_status", "probe"];
        let chosen = Encoding::default();
        let variants = [
            (
                "Parquet's defaults: dictionary and statistics on every column, zstd 3",
                Encoding { dictionary: None, statistics: None, ..chosen },
            ),
            ("dictionary on every column, statistics where readers filter, zstd 3 (default)", chosen),
            (
                "dictionary where values repeat (text, pids, ports), statistics where readers filter",
                Encoding { dictionary: Some(REPEATING), ..chosen },
            ),
            (
                "same, but kind/family/protocol plain",
                Encoding { dictionary: Some(REPEATING_NO_CONSTANT_TEXT), ..chosen },
            ),
            ("default, zstd 1", Encoding { zstd_level: 1, ..chosen }),
            ("default, zstd 6", Encoding { zstd_level: 6, ..chosen }),
        ];
        let events = 1_000_000;
        let mut index = 0;
        for (workload, sockets) in [("stream: 2 sockets, 64 B", 2), ("server: 500 sockets, 1 B-8 KiB", 500)] {
            let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); variants.len()];
            for _round in 0..5 {
                for (i, (_, enc)) in variants.iter().enumerate() {
                    results[i].push(encode(*enc, events, sockets, dir.path(), index));
                    index += 1;
                }
            }
            println!("\n{workload}, {events} send/recv rows, medians of 5 alternating rounds:");
            println!("| encoding | CPU ns per event | bytes per event |\n|---|---:|---:|");
            for (i, (name, _)) in variants.iter().enumerate() {
                let mut cpu: Vec<f64> = results[i].iter().map(|r| r.0).collect();
                cpu.sort_by(f64::total_cmp);
                println!("| {name} | {:.0} | {:.2} |", cpu[2], results[i][0].1);
            }
        }
    }
}
