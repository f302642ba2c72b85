//! The capture's manifest beside its segments (netrec_schema::manifest):
//! rewritten under a temporary name and renamed over the old one after
//! every change, so a reader sees the old manifest or the new, never half.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use netrec_schema::manifest::{self, Manifest, SegmentEntry};

pub struct ManifestWriter {
    path: PathBuf,
    doc: Manifest,
}

impl ManifestWriter {
    pub fn new(dir: &Path, stem: &str, capture_id: &str, host: &str, started: &str) -> ManifestWriter {
        ManifestWriter {
            path: dir.join(manifest::file_name(stem)),
            doc: Manifest {
                netrec_manifest: manifest::FORMAT,
                netrec_version: env!("CARGO_PKG_VERSION").to_string(),
                schema_version: netrec_schema::version(),
                capture_id: capture_id.to_string(),
                host: host.to_string(),
                started: started.to_string(),
                finished: None,
                segments: Vec::new(),
                deleted: Vec::new(),
            },
        }
    }

    /// A segment closed under its final name.
    pub fn add(&mut self, entry: SegmentEntry) -> Result<()> {
        self.doc.segments.push(entry);
        self.store()
    }

    /// A segment the capture deleted itself (retention).
    pub fn deleted(&mut self, path: &Path) -> Result<()> {
        // As listed: relative to the manifest's directory (partitions included).
        let dir = self.path.parent().unwrap_or(Path::new(""));
        let name = match path.strip_prefix(dir) {
            Ok(rel) => rel.to_string_lossy(),
            Err(_) => path.file_name().unwrap_or_default().to_string_lossy(),
        };
        if let Some(i) = self.doc.segments.iter().position(|s| s.file == name) {
            let gone = self.doc.segments.remove(i);
            self.doc.deleted.push(gone.index);
        }
        self.store()
    }

    /// The capture ended: every segment it will write is listed.
    pub fn finish(&mut self, at: &str) -> Result<()> {
        self.doc.finished = Some(at.to_string());
        self.store()
    }

    fn store(&self) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&self.doc).expect("plain data serializes");
        let write = || -> std::io::Result<()> {
            // 0600, as the segments it describes: it names hosts and files.
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(&text)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        let written = write();
        if written.is_err() {
            // A full disk fails the write: the old manifest stands, and no
            // half-written copy is left beside it.
            let _ = std::fs::remove_file(&tmp);
        }
        written.with_context(|| format!("writing the manifest {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_replaces_the_whole_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ManifestWriter::new(dir.path(), "netrec-h-x-1", "1", "h", "2026-01-01T00:00:00Z");
        let entry = |i: u32| SegmentEntry {
            file: format!("s{i}.parquet"),
            index: i,
            bytes: 10,
            sha256: "00".into(),
            start: "a".into(),
            end: "b".into(),
            events: 1,
            lost_events: 0,
        };
        m.add(entry(0)).unwrap();
        m.add(entry(1)).unwrap();
        m.deleted(&dir.path().join("s0.parquet")).unwrap();
        m.finish("2026-01-01T00:01:00Z").unwrap();
        let read: Manifest =
            serde_json::from_slice(&std::fs::read(dir.path().join("netrec-h-x-1.manifest.json")).unwrap()).unwrap();
        assert_eq!(read.segments, vec![entry(1)]);
        assert_eq!(read.deleted, vec![0]);
        assert_eq!(read.finished.as_deref(), Some("2026-01-01T00:01:00Z"));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

    /// --layout hive: entries are paths below the manifest's directory.
    #[test]
    fn a_partitioned_segment_is_deleted_by_its_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ManifestWriter::new(dir.path(), "netrec-h-x-1", "1", "h", "2026-01-01T00:00:00Z");
        let rel = "host=h/date=2026-01-01/netrec-h-x-1-00000.parquet";
        let entry = SegmentEntry {
            file: rel.into(),
            index: 0,
            bytes: 1,
            sha256: "00".into(),
            start: "a".into(),
            end: "b".into(),
            events: 0,
            lost_events: 0,
        };
        m.add(entry).unwrap();
        m.deleted(&dir.path().join(rel)).unwrap();
        assert!(m.doc.segments.is_empty());
        assert_eq!(m.doc.deleted, vec![0]);
    }
}
