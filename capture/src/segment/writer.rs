//! One Parquet segment: written under a temporary name, fsynced, then renamed.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use chrono::{DateTime, SecondsFormat, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::schema::{arrow_schema, version};
use crate::event::{Kind, PerKind};

/// Suffix of a segment still being written; never matches `*.parquet`.
pub const IN_PROGRESS_SUFFIX: &str = ".inprogress";

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
    pub probes: serde_json::Value,
    pub command_line: Vec<String>,
}

pub struct SegmentWriter {
    final_path: PathBuf,
    tmp_path: PathBuf,
    writer: Option<ArrowWriter<File>>,
    /// A second handle on the file, to fsync it after the writer closes.
    file: File,
    index: u32,
    opened: DateTime<Utc>,
    rows: u64,
    counts: PerKind,
    lost: PerKind,
    untracked: u64,
}

fn properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by(format!("netrec-capture {}", env!("CARGO_PKG_VERSION")));
    // Timestamps rise almost monotonically: deltas pack far better than dictionaries.
    for col in ["ts", "ts_kernel_ns"] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(col), false)
            .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
    }
    b.build()
}

impl SegmentWriter {
    /// Creates `<dir>/<stem>-<index>.parquet.inprogress` (mode 0600).
    pub fn create(dir: &Path, stem: &str, index: u32) -> Result<SegmentWriter> {
        let final_path = dir.join(format!("{stem}-{index:05}.parquet"));
        let mut tmp_name = final_path.file_name().expect("has a name").to_os_string();
        tmp_name.push(IN_PROGRESS_SUFFIX);
        let tmp_path = dir.join(tmp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp_path)
            .with_context(|| format!("cannot create segment {}", tmp_path.display()))?;
        let handle = file.try_clone().with_context(|| format!("cannot reopen {}", tmp_path.display()))?;
        let writer = ArrowWriter::try_new(file, arrow_schema(), Some(properties()))
            .with_context(|| format!("cannot start segment {}", tmp_path.display()))?;
        Ok(SegmentWriter {
            final_path,
            tmp_path,
            writer: Some(writer),
            file: handle,
            index,
            opened: Utc::now(),
            rows: 0,
            counts: PerKind::default(),
            lost: PerKind::default(),
            untracked: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch, counts: &PerKind) -> Result<()> {
        let w = self.writer.as_mut().expect("writer is open until finalize");
        w.write(batch).with_context(|| format!("writing segment {}", self.tmp_path.display()))?;
        self.rows += batch.num_rows() as u64;
        for (total, n) in self.counts.iter_mut().zip(counts) {
            *total += n;
        }
        Ok(())
    }

    /// Events the kernel could not hand over while this segment was open.
    pub fn add_losses(&mut self, lost: &PerKind, untracked: u64) {
        for (total, n) in self.lost.iter_mut().zip(lost) {
            *total += n;
        }
        self.untracked += untracked;
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
    pub fn finalize(mut self, facts: &CaptureFacts) -> Result<(PathBuf, u64)> {
        let mut w = self.writer.take().expect("finalize runs once");
        let closed = Utc::now();
        let per_kind = |v: &PerKind| {
            let m: serde_json::Map<String, serde_json::Value> =
                Kind::ALL.iter().map(|k| (k.name().to_string(), v[k.index()].into())).collect();
            serde_json::Value::Object(m).to_string()
        };
        let kv = [
            ("netrec.schema_version", version().to_string()),
            ("netrec.version", env!("CARGO_PKG_VERSION").to_string()),
            ("netrec.capture_id", facts.capture_id.clone()),
            ("netrec.segment_index", self.index.to_string()),
            ("netrec.hostname", facts.hostname.clone()),
            ("netrec.kernel_release", facts.kernel_release.clone()),
            ("netrec.boot_id", facts.boot_id.clone()),
            ("netrec.clock_offset_ns", facts.clock_offset_ns.to_string()),
            ("netrec.segment_start", self.opened.to_rfc3339_opts(SecondsFormat::Nanos, true)),
            ("netrec.segment_end", closed.to_rfc3339_opts(SecondsFormat::Nanos, true)),
            ("netrec.events", self.rows.to_string()),
            ("netrec.events_by_kind", per_kind(&self.counts)),
            ("netrec.lost_events", self.lost_total().to_string()),
            ("netrec.lost_events_by_kind", per_kind(&self.lost)),
            ("netrec.untracked_socket_events", self.untracked.to_string()),
            ("netrec.mechanisms", facts.mechanisms.to_string()),
            ("netrec.filters", facts.filters.to_string()),
            ("netrec.probes", facts.probes.to_string()),
            ("netrec.command_line", serde_json::to_string(&facts.command_line).expect("strings serialize")),
        ];
        for (k, v) in kv {
            w.append_key_value_metadata(KeyValue::new(k.to_string(), v));
        }
        w.close().with_context(|| format!("writing footer of {}", self.tmp_path.display()))?;
        self.file.sync_all().with_context(|| format!("fsync {}", self.tmp_path.display()))?;
        let size = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        std::fs::rename(&self.tmp_path, &self.final_path)
            .with_context(|| format!("renaming {} to {}", self.tmp_path.display(), self.final_path.display()))?;
        // The rename itself must survive a crash too.
        if let Some(dir) = self.final_path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("fsync {}", dir.display()))?;
        }
        Ok((std::mem::take(&mut self.final_path), size))
    }
}

impl Drop for SegmentWriter {
    /// A segment that was never finalized leaves nothing behind.
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}
