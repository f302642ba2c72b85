//! Segments checked against their capture's manifest (netrec_schema::manifest):
//! the size and sha256 of every segment it lists, before any is read. A copy
//! damaged in transit can otherwise decode and give wrong numbers.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use netrec_schema::manifest::{self, Manifest, SegmentEntry};
use sha2::{Digest, Sha256};

use super::InputError;

/// A capture's manifest, read from `path`.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub manifest: Manifest,
}

pub fn read(path: &Path) -> Result<Found, InputError> {
    let text = std::fs::read(path).map_err(|e| InputError::Io(path.to_path_buf(), e))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| InputError::BadManifest(path.to_path_buf(), format!("not a netrec manifest ({e})")))?;
    if manifest.netrec_manifest > manifest::FORMAT {
        return Err(InputError::BadManifest(
            path.to_path_buf(),
            format!(
                "manifest format {} is newer than this netrec-analyze reads ({})",
                manifest.netrec_manifest,
                manifest::FORMAT
            ),
        ));
    }
    Ok(Found { path: path.to_path_buf(), manifest })
}

/// The directories a segment's manifest may be in: its own, and above
/// partition directories (`host=…/date=…`, `--layout hive`) the one they are in.
fn manifest_dirs(segment: &Path) -> Vec<&Path> {
    let mut dirs = Vec::new();
    let mut dir = segment.parent();
    while let Some(d) = dir {
        dirs.push(d);
        let partition = d.file_name().and_then(|n| n.to_str()).is_some_and(netrec_schema::files::is_partition_dir);
        dir = if partition { d.parent() } else { None };
    }
    dirs
}

/// The manifests in the directories the segments are in (or above their partitions).
pub fn beside(segments: &[PathBuf]) -> Result<Vec<Found>, InputError> {
    let mut dirs: Vec<&Path> = segments.iter().flat_map(|p| manifest_dirs(p)).collect();
    dirs.sort();
    dirs.dedup();
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut names: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(manifest::is_manifest))
            .collect();
        names.sort();
        for p in names {
            found.push(read(&p)?);
        }
    }
    Ok(found)
}

/// Each segment file a manifest lists, with its entry.
pub fn listed(manifests: &[Found]) -> HashMap<PathBuf, (PathBuf, SegmentEntry)> {
    let mut map = HashMap::new();
    for m in manifests {
        let dir = m.path.parent().unwrap_or(Path::new("."));
        for e in &m.manifest.segments {
            map.insert(dir.join(&e.file), (m.path.clone(), e.clone()));
        }
    }
    map
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Why a file does not have the size and sha256 a manifest lists; None when it does.
pub fn mismatch(path: &Path, bytes: u64, sha256: &str) -> Result<Option<String>, InputError> {
    let size = std::fs::metadata(path).map_err(|e| InputError::Io(path.to_path_buf(), e))?.len();
    if size != bytes {
        return Ok(Some(format!("{size} bytes, its manifest says {bytes}")));
    }
    let sha = sha256_file(path).map_err(|e| InputError::Io(path.to_path_buf(), e))?;
    Ok((sha != sha256).then(|| format!("sha256 {sha}, its manifest says {sha256}")))
}

/// Every segment a manifest lists matches it (both cores hash at once).
pub fn verify(segments: &[PathBuf]) -> Result<(), InputError> {
    let manifests = beside(segments)?;
    if manifests.is_empty() {
        return Ok(());
    }
    let listed = listed(&manifests);
    let todo: Vec<(&PathBuf, &SegmentEntry)> =
        segments.iter().filter_map(|p| listed.get(p).map(|(_, e)| (p, e))).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(todo.len().max(1));
    let chunk = todo.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = todo
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    for (path, entry) in part {
                        if let Some(why) = mismatch(path, entry.bytes, &entry.sha256)? {
                            return Err(InputError::Checksum(path.to_path_buf(), why));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().expect("hashing does not panic"))
    })
}
