//! A capture's manifest, `<stem>.manifest.json` beside its segments: every
//! closed segment's size and sha256. The capture replaces it atomically
//! after each segment; a copy damaged in transit (scp, an upload) fails
//! its checksum before it can turn into wrong numbers.

use serde::{Deserialize, Serialize};

/// Bumped when a field changes meaning; readers refuse newer ones.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`] of the writer.
    pub netrec_manifest: u32,
    /// netrec-capture's version.
    pub netrec_version: String,
    pub schema_version: u32,
    pub capture_id: String,
    pub host: String,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339, once the capture has ended and written its last segment;
    /// null while it runs (or if it was killed).
    pub finished: Option<String>,
    /// Closed segments still on disk, by index.
    pub segments: Vec<SegmentEntry>,
    /// Indexes the capture deleted itself (--max-disk, --max-segments):
    /// missing on purpose, not lost.
    #[serde(default)]
    pub deleted: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// File name, in the manifest's directory.
    pub file: String,
    pub index: u32,
    pub bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// RFC 3339.
    pub start: String,
    pub end: String,
    pub events: u64,
    pub lost_events: u64,
}

/// `<stem>.manifest.json`.
pub fn file_name(stem: &str) -> String {
    format!("{stem}{SUFFIX}")
}

pub const SUFFIX: &str = ".manifest.json";

pub fn is_manifest(name: &str) -> bool {
    name.ends_with(SUFFIX)
}
