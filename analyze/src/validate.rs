//! `validate PATH`: is this trace (a capture directory, files, or a bundle)
//! whole and sound? Checksums against the manifests, footers, schema
//! versions, gaps in a capture's segment sequence, overlapping captures of
//! one host, and losses.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use polars::prelude::*;

use crate::input::{discover, manifest, segment, SegmentInfo};
use crate::output::{Format, Frame, Report, Style};
use crate::Outcome;

pub const HELP: &str = "\
Checks, and the problems they report:
  checksum   a segment's size or sha256 differs from its capture's manifest
  missing    a manifest lists a segment that is not there
  unlisted   a segment of a capture whose manifest does not list it
  footer     a segment's footer or metadata does not read (or a newer schema)
  gap        an index missing from the middle of a capture's sequence (not
             one the capture deleted itself under --max-disk/--max-segments)
  overlap    two captures of one host overlapping in time (counted twice if
             analyzed together)
  unfinished a segment still being written, or its capture was killed
  lost       events the capture lost (a problem with --strict)

Examples:
  netrec-analyze validate /var/tmp/netrec
  netrec-analyze validate ticket-4711.tar --format json

Exit status: 0 sound, 1 a problem found, 2 error (nothing to validate).";

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Capture directories, segment files, globs or bundles
    #[arg(required = true, value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    /// Count lost events as a problem
    #[arg(long)]
    pub strict: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Default)]
struct Problems {
    kind: Vec<&'static str>,
    file: Vec<String>,
    detail: Vec<String>,
}

impl Problems {
    fn add(&mut self, kind: &'static str, file: impl Into<String>, detail: impl Into<String>) {
        self.kind.push(kind);
        self.file.push(file.into());
        self.detail.push(detail.into());
    }
}

/// Segment rows: file, host, capture, index, bytes, events, lost, schema, checksum, footer.
#[derive(Default)]
struct Rows {
    file: Vec<String>,
    host: Vec<Option<String>>,
    capture: Vec<Option<String>>,
    index: Vec<Option<u32>>,
    bytes: Vec<u64>,
    events: Vec<Option<u64>>,
    lost: Vec<Option<u64>>,
    schema: Vec<Option<u32>>,
    checksum: Vec<&'static str>,
    footer: Vec<String>,
}

pub fn run(args: &ValidateArgs, out: &mut dyn Write) -> Result<Outcome> {
    let found = discover::discover(&args.inputs)?;
    let manifests = manifest::beside(&found.segments)?;
    let listed = manifest::listed(&manifests);
    let mut problems = Problems::default();
    let mut rows = Rows::default();
    let mut infos: Vec<SegmentInfo> = Vec::new();
    let shown = |p: &std::path::Path| -> String {
        // Inside an unpacked bundle, the path within it.
        let inside = found.unpacked.iter().find_map(|d| p.strip_prefix(d.path()).ok());
        inside.unwrap_or(p).display().to_string()
    };

    for p in &found.skipped_in_progress {
        problems.add("unfinished", shown(p), "still being written, or its capture was killed");
    }
    for path in &found.segments {
        let name = shown(path);
        let checksum = match listed.get(path) {
            Some((_, entry)) => match manifest::mismatch(path, entry.bytes, &entry.sha256)? {
                None => "ok",
                Some(why) => {
                    problems.add("checksum", &name, why);
                    "mismatch"
                }
            },
            None => "no manifest",
        };
        rows.file.push(name.clone());
        rows.bytes.push(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0));
        rows.checksum.push(checksum);
        match segment::read(path) {
            Ok(info) => {
                rows.host.push(Some(info.host.clone()));
                rows.capture.push(Some(info.capture_id.clone()));
                rows.index.push(info.index);
                rows.events.push(Some(info.events));
                rows.lost.push(Some(info.lost));
                rows.schema.push(Some(info.schema_version));
                rows.footer.push("ok".into());
                if info.lost > 0 {
                    problems.add("lost", &name, format!("the capture lost {} events while writing it", info.lost));
                }
                infos.push(info);
            }
            Err(e) => {
                let why = e.to_string();
                let why = why.strip_prefix(&format!("{}: ", path.display())).unwrap_or(&why).to_string();
                problems.add("footer", &name, why.clone());
                rows.host.push(None);
                rows.capture.push(None);
                rows.index.push(None);
                rows.events.push(None);
                rows.lost.push(None);
                rows.schema.push(None);
                rows.footer.push(why);
            }
        }
    }

    // A bundle's own manifest: every file it lists, whole.
    for dir in &found.unpacked {
        let path = dir.path().join(crate::input::bundle::MANIFEST);
        let Ok(text) = std::fs::read(&path) else {
            problems.add("missing", crate::input::bundle::MANIFEST, "the bundle has no manifest.json");
            continue;
        };
        let listing: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| crate::input::InputError::BadManifest(path.clone(), format!("not a bundle manifest ({e})")))?;
        for f in listing["files"].as_array().into_iter().flatten() {
            let (Some(file), Some(bytes), Some(sha)) = (f["file"].as_str(), f["bytes"].as_u64(), f["sha256"].as_str())
            else {
                continue;
            };
            let p = dir.path().join(file);
            if listed.contains_key(&p) {
                continue; // a segment: checked against its capture's manifest above
            }
            if !p.exists() {
                problems.add("missing", file, "listed in the bundle's manifest.json");
            } else if let Some(why) = manifest::mismatch(&p, bytes, sha)? {
                problems.add("checksum", file, why);
            }
        }
    }

    // Manifests: what they list must be there; what a listed capture wrote must be listed.
    let on_disk: BTreeSet<&PathBuf> = found.segments.iter().collect();
    let mut deleted: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for m in &manifests {
        let dir = m.path.parent().unwrap_or(std::path::Path::new("."));
        for e in &m.manifest.segments {
            if !on_disk.contains(&dir.join(&e.file)) {
                problems.add("missing", shown(&dir.join(&e.file)), format!("listed in {}", shown(&m.path)));
            }
        }
        deleted.entry(m.manifest.capture_id.as_str()).or_default().extend(&m.manifest.deleted);
    }
    let with_manifest: BTreeSet<&str> = manifests.iter().map(|m| m.manifest.capture_id.as_str()).collect();
    for info in &infos {
        if with_manifest.contains(info.capture_id.as_str()) && !listed.contains_key(&info.path) {
            problems.add("unlisted", shown(&info.path), "its capture's manifest does not list it");
        }
    }

    // Gaps: every index between a capture's first and last is there, or was deleted on purpose.
    let mut by_capture: BTreeMap<(&str, &str), Vec<&SegmentInfo>> = BTreeMap::new();
    for info in &infos {
        by_capture.entry((info.host.as_str(), info.capture_id.as_str())).or_default().push(info);
    }
    // A segment whose footer does not read is still there: its manifest says which it is.
    let mut unreadable: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for path in found.segments.iter().filter(|p| !infos.iter().any(|i| &i.path == *p)) {
        if let Some((mpath, entry)) = listed.get(path) {
            if let Some(m) = manifests.iter().find(|m| &m.path == mpath) {
                unreadable.entry(m.manifest.capture_id.as_str()).or_default().insert(entry.index);
            }
        }
    }
    for ((host, capture), segs) in &by_capture {
        let mut have: BTreeSet<u32> = segs.iter().filter_map(|s| s.index).collect();
        have.extend(unreadable.get(capture).into_iter().flatten());
        let gone = deleted.get(capture).cloned().unwrap_or_default();
        if let (Some(&first), Some(&last)) = (have.first(), have.last()) {
            let missing: Vec<String> =
                (first..=last).filter(|i| !have.contains(i) && !gone.contains(i)).map(|i| i.to_string()).collect();
            if !missing.is_empty() {
                problems.add(
                    "gap",
                    format!("capture {capture} on {host}"),
                    format!("segment {} of {first}..{last} missing", missing.join(", ")),
                );
            }
        }
    }

    // Overlaps: two captures of one host recording the same moments.
    let mut spans: BTreeMap<&str, Vec<(i64, i64, &str)>> = BTreeMap::new();
    for ((host, capture), segs) in &by_capture {
        let ns = |t: &chrono::DateTime<chrono::Utc>| t.timestamp_nanos_opt().unwrap_or(0);
        let start = segs.iter().map(|s| ns(&s.start)).min().unwrap_or(0);
        let end = segs.iter().map(|s| ns(&s.end)).max().unwrap_or(0);
        spans.entry(host).or_default().push((start, end, capture));
    }
    for (host, mut list) in spans {
        list.sort();
        for pair in list.windows(2) {
            let ((_, a_end, a), (b_start, _, b)) = (pair[0], pair[1]);
            if b_start < a_end {
                problems.add(
                    "overlap",
                    format!("captures {a} and {b} on {host}"),
                    format!(
                        "they overlap by {:.3} s: analyzed together, those events count twice",
                        (a_end - b_start) as f64 / 1e9
                    ),
                );
            }
        }
    }

    let serious = problems.kind.iter().filter(|k| args.strict || **k != "lost").count();
    let segments = df!(
        "file" => rows.file,
        "host" => rows.host,
        "capture_id" => rows.capture,
        "index" => rows.index,
        "bytes" => rows.bytes,
        "events" => rows.events,
        "lost_events" => rows.lost,
        "schema_version" => rows.schema,
        "checksum" => rows.checksum,
        "footer" => rows.footer,
    )?;
    let listing = df!("problem" => problems.kind, "file" => problems.file, "detail" => problems.detail)?;
    let verdict = if serious == 0 { "sound".to_string() } else { format!("{serious} problems") };
    let report = Report {
        frames: vec![
            Frame::new(
                format!("netrec validate: {} segments, {} manifests: {verdict}", segments.height(), manifests.len()),
                segments.lazy(),
            ),
            Frame::new("Problems", listing.lazy()),
        ],
        ..Default::default()
    };
    crate::output::write(report, &Style { format: args.format, local_time: false }, out)?;
    out.flush()?;
    Ok(if serious > 0 { Outcome::Invalid(serious) } else { Outcome::Ok })
}
