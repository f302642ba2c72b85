//! The netrec event schema, defined once (`events.json` beside this crate,
//! documented in `README.md`) and shared by the capture, the analyzer, their
//! tests and bench/: column names and types, kinds, metadata keys, segment
//! file names. With the `parquet` feature, also the Arrow schema segments are
//! written with and the writer's settings.

pub mod manifest;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod printout;

use std::sync::OnceLock;

use serde::Deserialize;

/// The definition itself, as shipped to DuckDB, pandas and Spark users.
pub const EVENTS_JSON: &str = include_str!("../events.json");

#[derive(Debug, Deserialize)]
pub struct Definition {
    pub version: u32,
    pub columns: Vec<Column>,
}

#[derive(Debug, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    pub nullable: bool,
    /// The schema version that added the column.
    #[serde(default = "first_version")]
    pub since: u32,
}

fn first_version() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Utf8,
    Uint16,
    Uint32,
    Uint64,
    Int32,
    Int64,
    TimestampNsUtc,
}

pub fn definition() -> &'static Definition {
    static DEF: OnceLock<Definition> = OnceLock::new();
    DEF.get_or_init(|| serde_json::from_str(EVENTS_JSON).expect("events.json is valid (checked by tests)"))
}

/// The newest schema version: what the capture writes, the most the analyzer reads.
pub fn version() -> u32 {
    definition().version
}

pub fn column(name: &str) -> Option<&'static Column> {
    definition().columns.iter().find(|c| c.name == name)
}

/// What happened; the `kind` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Send,
    Recv,
    State,
    Rtt,
    Retransmit,
    Exec,
    Exit,
    Call,
    Usdt,
    /// Since version 5.
    Accept,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Send,
        Kind::Recv,
        Kind::State,
        Kind::Rtt,
        Kind::Retransmit,
        Kind::Exec,
        Kind::Exit,
        Kind::Call,
        Kind::Usdt,
        Kind::Accept,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Send => "send",
            Kind::Recv => "recv",
            Kind::State => "state",
            Kind::Rtt => "rtt",
            Kind::Retransmit => "retransmit",
            Kind::Exec => "exec",
            Kind::Exit => "exit",
            Kind::Call => "call",
            Kind::Usdt => "usdt",
            Kind::Accept => "accept",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Counts kept per kind (events written, events lost).
pub type PerKind = [u64; Kind::ALL.len()];

/// The Parquet key-value metadata every segment carries (schemas/README.md).
pub mod meta {
    pub const SCHEMA_VERSION: &str = "netrec.schema_version";
    pub const VERSION: &str = "netrec.version";
    pub const CAPTURE_ID: &str = "netrec.capture_id";
    pub const SEGMENT_INDEX: &str = "netrec.segment_index";
    pub const HOSTNAME: &str = "netrec.hostname";
    pub const KERNEL_RELEASE: &str = "netrec.kernel_release";
    pub const BOOT_ID: &str = "netrec.boot_id";
    pub const CLOCK_OFFSET_NS: &str = "netrec.clock_offset_ns";
    pub const SEGMENT_START: &str = "netrec.segment_start";
    pub const SEGMENT_END: &str = "netrec.segment_end";
    pub const EVENTS: &str = "netrec.events";
    pub const EVENTS_BY_KIND: &str = "netrec.events_by_kind";
    /// Since version 4: events the rows stand for, per kind.
    pub const EVENTS_RECORDED_BY_KIND: &str = "netrec.events_recorded_by_kind";
    pub const LOST_EVENTS: &str = "netrec.lost_events";
    pub const LOST_EVENTS_BY_KIND: &str = "netrec.lost_events_by_kind";
    pub const UNTRACKED_SOCKET_EVENTS: &str = "netrec.untracked_socket_events";
    /// Since version 3.
    pub const UNKNOWN_SOCKET_ROWS: &str = "netrec.unknown_socket_rows";
    pub const CAPTURE_CPU_USER_NS: &str = "netrec.capture_cpu_user_ns";
    pub const CAPTURE_CPU_SYS_NS: &str = "netrec.capture_cpu_sys_ns";
    pub const CAPTURE_PEAK_RSS_BYTES: &str = "netrec.capture_peak_rss_bytes";
    pub const BPF_PROGRAMS: &str = "netrec.bpf_programs";
    /// Since version 5: the capture's own table sizes at the segment's end.
    pub const CAPTURE_TABLES: &str = "netrec.capture_tables";
    /// Since version 4: how send/recv were recorded, and when that switched.
    pub const DATA: &str = "netrec.data";
    pub const DATA_SWITCHES: &str = "netrec.data_switches";
    pub const MECHANISMS: &str = "netrec.mechanisms";
    pub const FILTERS: &str = "netrec.filters";
    /// Since version 2.
    pub const PROBES: &str = "netrec.probes";
    pub const COMMAND_LINE: &str = "netrec.command_line";
    /// Only in segments `netrec-analyze redact` wrote: what it replaced, and how.
    pub const REDACTION: &str = "netrec.redaction";

    /// Every key, as events.json lists them under `metadata`.
    pub const ALL: &[&str] = &[
        SCHEMA_VERSION,
        VERSION,
        CAPTURE_ID,
        SEGMENT_INDEX,
        HOSTNAME,
        KERNEL_RELEASE,
        BOOT_ID,
        CLOCK_OFFSET_NS,
        SEGMENT_START,
        SEGMENT_END,
        EVENTS,
        EVENTS_BY_KIND,
        EVENTS_RECORDED_BY_KIND,
        LOST_EVENTS,
        LOST_EVENTS_BY_KIND,
        UNTRACKED_SOCKET_EVENTS,
        UNKNOWN_SOCKET_ROWS,
        CAPTURE_CPU_USER_NS,
        CAPTURE_CPU_SYS_NS,
        CAPTURE_PEAK_RSS_BYTES,
        BPF_PROGRAMS,
        CAPTURE_TABLES,
        DATA,
        DATA_SWITCHES,
        MECHANISMS,
        FILTERS,
        PROBES,
        COMMAND_LINE,
        REDACTION,
    ];
}

/// Segment files: `<stem>-<index>.parquet`, named `….parquet.inprogress`
/// while being written, so a glob on `*.parquet` sees finished ones only.
pub mod files {
    pub const EXTENSION: &str = ".parquet";
    pub const IN_PROGRESS_SUFFIX: &str = ".inprogress";

    /// `netrec-<host>-<start, %Y%m%dT%H%M%SZ>-<capture id, 8 hex digits>`.
    pub fn stem(host: &str, start_utc: &str, capture_id: &str) -> String {
        format!("netrec-{host}-{start_utc}-{}", &capture_id[..capture_id.len().min(8)])
    }

    pub fn segment_name(stem: &str, index: u32) -> String {
        format!("{stem}-{index:05}{EXTENSION}")
    }

    pub fn in_progress_name(stem: &str, index: u32) -> String {
        format!("{}{IN_PROGRESS_SUFFIX}", segment_name(stem, index))
    }

    pub fn is_segment(name: &str) -> bool {
        name.ends_with(EXTENSION)
    }

    pub fn is_in_progress(name: &str) -> bool {
        name.ends_with(&format!("{EXTENSION}{IN_PROGRESS_SUFFIX}"))
    }

    /// `--layout hive`: the directory of a segment under the output,
    /// `host=<host>/date=<YYYY-MM-DD>` (the segment's UTC start date), so
    /// Spark, Trino and DuckDB read a bucket of many hosts' segments as one
    /// dataset partitioned by host and date. Characters a path or a
    /// partition value cannot hold are %-escaped, as Hive escapes them.
    pub fn partition_dir(host: &str, date: &str) -> String {
        format!("host={}/date={date}", escape_partition_value(host))
    }

    fn escape_partition_value(v: &str) -> String {
        let mut out = String::with_capacity(v.len());
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    /// Whether a directory name is a partition (`key=value`): readers look
    /// for a capture's manifest above them.
    pub fn is_partition_dir(name: &str) -> bool {
        name.split_once('=').is_some_and(|(k, _)| !k.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_parses_and_names_every_kind() {
        let def = definition();
        assert_eq!(def.columns[0].name, "kind");
        assert!(def.columns.iter().all(|c| c.since <= def.version));
        let kinds: serde_json::Value = serde_json::from_str(EVENTS_JSON).unwrap();
        let mut documented: Vec<&str> = kinds["kinds"].as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut ours = Kind::ALL.map(Kind::name).to_vec();
        documented.sort();
        ours.sort();
        assert_eq!(documented, ours);
        assert!(column("samples").is_some_and(|c| c.since == 3));
    }

    #[test]
    fn segment_names() {
        let stem = files::stem("db1", "20260101T000000Z", "0123456789abcdef");
        assert_eq!(stem, "netrec-db1-20260101T000000Z-01234567");
        assert_eq!(files::segment_name(&stem, 3), "netrec-db1-20260101T000000Z-01234567-00003.parquet");
        assert!(files::is_in_progress(&files::in_progress_name(&stem, 3)));
        assert!(!files::is_segment(&files::in_progress_name(&stem, 3)));
    }

    #[test]
    fn every_key_is_in_the_definition() {
        let def: serde_json::Value = serde_json::from_str(EVENTS_JSON).unwrap();
        let mut listed: Vec<&str> = def["metadata"].as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut ours = meta::ALL.to_vec();
        listed.sort();
        ours.sort();
        assert_eq!(listed, ours);
    }

    #[test]
    fn every_key_is_documented() {
        let readme = include_str!("../README.md");
        for key in [
            meta::DATA,
            meta::DATA_SWITCHES,
            meta::EVENTS_RECORDED_BY_KIND,
            meta::BPF_PROGRAMS,
            meta::PROBES,
            meta::REDACTION,
        ] {
            assert!(readme.contains(&format!("`{key}`")), "schemas/README.md does not document {key}");
        }
    }
}
