//! One segment's footer: its netrec metadata, checked before any data is read.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use netrec_schema::meta;
use polars::io::SerReader;
use polars::prelude::ParquetReader;
use serde::Deserialize;

use super::InputError;

/// Each row group's rows and its events' `ts` range (ns since the epoch,
/// inclusive) from the footer's statistics; None where they are missing
/// (netrec-capture always writes them).
pub fn row_group_times(path: &Path) -> anyhow::Result<Vec<(usize, Option<(i64, i64)>)>> {
    use anyhow::Context;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::statistics::Statistics;

    let file = File::open(path).with_context(|| path.display().to_string())?;
    let reader = SerializedFileReader::new(file).with_context(|| format!("{}: footer", path.display()))?;
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let ts = (0..schema.num_columns()).find(|&i| schema.column(i).name() == "ts");
    Ok(meta
        .row_groups()
        .iter()
        .map(|rg| {
            let range = ts.and_then(|c| match rg.column(c).statistics() {
                Some(Statistics::Int64(s)) => Some((*s.min_opt()?, *s.max_opt()?)),
                _ => None,
            });
            (rg.num_rows().max(0) as usize, range)
        })
        .collect())
}

/// The newest event schema version this build understands.
pub fn supported_version() -> u32 {
    netrec_schema::version()
}

#[derive(Debug, Clone)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub schema_version: u32,
    pub host: String,
    pub capture_id: String,
    /// Its place in its capture's sequence (`netrec.segment_index`).
    pub index: Option<u32>,
    pub kernel_release: String,
    pub command_line: Vec<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub events: u64,
    pub events_by_kind: BTreeMap<String, u64>,
    /// Events the rows stand for, per kind (version 4; else the rows).
    pub events_recorded_by_kind: BTreeMap<String, u64>,
    pub lost: u64,
    pub mechanisms: BTreeMap<String, String>,
    pub filters: serde_json::Value,
    /// Application probes (`netrec.probes`, version 2): name -> spec.
    pub probes: BTreeMap<String, String>,
    /// What the capture cost while writing this segment; None in segments
    /// written before netrec recorded it.
    pub cost: Option<Cost>,
    /// How send/recv were recorded (version 4); None: a row per call.
    pub data: Option<DataRecording>,
    /// What `redact` replaced (`netrec.redaction`); None: not redacted.
    pub redaction: Option<serde_json::Value>,
}

/// `netrec.data` and `netrec.data_switches`.
#[derive(Debug, Clone, Deserialize)]
pub struct DataRecording {
    /// "calls", or the interval of --data INTERVAL.
    pub mode: String,
    pub interval_ns: u64,
    pub budget_events_per_s: u64,
    #[serde(skip)]
    pub switches: Vec<DataSwitch>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DataSwitch {
    pub ts: String,
    pub to: String,
    pub reason: String,
}

impl DataRecording {
    /// Whether this segment may hold aggregate send/recv rows.
    pub fn has_aggregates(&self) -> bool {
        self.mode != "calls" || !self.switches.is_empty()
    }
}

impl SegmentInfo {
    /// Events the rows stand for (aggregate rows stand for their calls);
    /// the rows where the segment does not say.
    pub fn events_recorded(&self) -> u64 {
        let n: u64 = self.events_recorded_by_kind.values().sum();
        if n == 0 {
            self.events
        } else {
            n
        }
    }
}

/// The capture's own cost over one segment (`netrec.capture_*`, `netrec.bpf_programs`).
#[derive(Debug, Clone, Default)]
pub struct Cost {
    pub cpu_user_ns: u64,
    pub cpu_sys_ns: u64,
    pub peak_rss_bytes: u64,
    /// Program name -> (runs, run time in ns); empty when BPF statistics were off.
    pub programs: BTreeMap<String, (u64, u64)>,
}

#[derive(Deserialize)]
struct ProgStats {
    run_cnt: u64,
    run_time_ns: u64,
}

fn bad(path: &Path, why: impl Into<String>) -> InputError {
    InputError::NotSegment(path.to_path_buf(), why.into())
}

/// A Parquet file's reader and its key-value metadata.
fn open(path: &Path) -> Result<(ParquetReader<File>, BTreeMap<String, String>), InputError> {
    let file = File::open(path).map_err(|e| InputError::Io(path.to_path_buf(), e))?;
    let mut reader = ParquetReader::new(file);
    let meta = reader.get_metadata().map_err(|e| {
        let msg = e.to_string();
        InputError::NotParquet(path.to_path_buf(), msg.lines().next().unwrap_or("unreadable").to_string())
    })?;
    let kv = meta
        .key_value_metadata()
        .as_ref()
        .map(|kvs| kvs.iter().map(|k| (k.key.clone(), k.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    Ok((reader, kv))
}

/// Every key-value pair of a segment's footer, as written.
pub fn key_values(path: &Path) -> Result<BTreeMap<String, String>, InputError> {
    open(path).map(|(_, kv)| kv)
}

/// Reads and checks the footer of one segment.
pub fn read(path: &Path) -> Result<SegmentInfo, InputError> {
    let (mut reader, kv) = open(path)?;
    let get = |k: &str| kv.get(k).cloned().ok_or_else(|| bad(path, format!("no {k} in its metadata")));
    let version: u32 = kv
        .get(meta::SCHEMA_VERSION)
        .ok_or_else(|| bad(path, "a Parquet file, but not a netrec segment (no netrec.schema_version metadata)"))?
        .parse()
        .map_err(|_| bad(path, "netrec.schema_version is not a number"))?;
    let supported = supported_version();
    if version > supported {
        return Err(InputError::NewerSchema(path.to_path_buf(), version, supported));
    }
    let schema = reader.schema().map_err(|e| InputError::NotParquet(path.to_path_buf(), e.to_string()))?;
    for col in netrec_schema::definition().columns.iter().filter(|c| c.since <= version) {
        if !schema.contains(col.name.as_str()) {
            return Err(bad(path, format!("column {} is missing", col.name)));
        }
    }
    let time = |k: &str| -> Result<DateTime<Utc>, InputError> {
        DateTime::parse_from_rfc3339(&get(k)?)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| bad(path, format!("{k} is not RFC 3339")))
    };
    let json = |k: &str| -> Result<serde_json::Value, InputError> {
        serde_json::from_str(&get(k)?).map_err(|_| bad(path, format!("{k} is not JSON")))
    };
    let number =
        |k: &str| -> Result<u64, InputError> { get(k)?.parse().map_err(|_| bad(path, format!("{k} is not a number"))) };
    let probes = match kv.get(meta::PROBES) {
        None => BTreeMap::new(),
        Some(text) => {
            let list: Vec<serde_json::Value> =
                serde_json::from_str(text).map_err(|_| bad(path, "netrec.probes is not a JSON array"))?;
            list.iter()
                .map(|p| {
                    let field = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                    (field("probe"), format!("{} {}", field("type"), field("spec")))
                })
                .collect()
        }
    };
    let cost = match kv.get(meta::CAPTURE_CPU_USER_NS) {
        None => None,
        Some(_) => {
            let programs: BTreeMap<String, ProgStats> = serde_json::from_value(json(meta::BPF_PROGRAMS)?)
                .map_err(|_| bad(path, "netrec.bpf_programs is not an object of run counts and times"))?;
            Some(Cost {
                cpu_user_ns: number(meta::CAPTURE_CPU_USER_NS)?,
                cpu_sys_ns: number(meta::CAPTURE_CPU_SYS_NS)?,
                peak_rss_bytes: number(meta::CAPTURE_PEAK_RSS_BYTES)?,
                programs: programs.into_iter().map(|(k, p)| (k, (p.run_cnt, p.run_time_ns))).collect(),
            })
        }
    };
    let data = match kv.get(meta::DATA) {
        None => None,
        Some(text) => {
            let mut d: DataRecording = serde_json::from_str(text)
                .map_err(|_| bad(path, "netrec.data is not a JSON object of mode, interval_ns, budget_events_per_s"))?;
            d.switches = serde_json::from_value(json(meta::DATA_SWITCHES)?)
                .map_err(|_| bad(path, "netrec.data_switches is not a JSON array of ts, to, reason"))?;
            Some(d)
        }
    };
    let events_by_kind: BTreeMap<String, u64> = serde_json::from_value(json(meta::EVENTS_BY_KIND)?).unwrap_or_default();
    let events_recorded_by_kind = match kv.get(meta::EVENTS_RECORDED_BY_KIND) {
        None => events_by_kind.clone(),
        Some(_) => serde_json::from_value(json(meta::EVENTS_RECORDED_BY_KIND)?)
            .map_err(|_| bad(path, "netrec.events_recorded_by_kind is not a JSON object of counts"))?,
    };
    Ok(SegmentInfo {
        path: path.to_path_buf(),
        schema_version: version,
        host: get(meta::HOSTNAME)?,
        capture_id: get(meta::CAPTURE_ID)?,
        index: kv.get(meta::SEGMENT_INDEX).and_then(|v| v.parse().ok()),
        kernel_release: get(meta::KERNEL_RELEASE)?,
        command_line: serde_json::from_value(json(meta::COMMAND_LINE)?).unwrap_or_default(),
        start: time(meta::SEGMENT_START)?,
        end: time(meta::SEGMENT_END)?,
        events: number(meta::EVENTS)?,
        events_by_kind,
        events_recorded_by_kind,
        lost: number(meta::LOST_EVENTS)?,
        mechanisms: serde_json::from_value(json(meta::MECHANISMS)?).unwrap_or_default(),
        filters: json(meta::FILTERS)?,
        probes,
        cost,
        data,
        redaction: kv.get(meta::REDACTION).and_then(|v| serde_json::from_str(v).ok()),
    })
}
