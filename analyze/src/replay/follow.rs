//! `replay --follow DIR`: a directory a capture is still writing, replayed
//! segment by segment as each is finished.
//!
//! A segment is read once it has its final name (the capture renames it
//! from `*.inprogress` when it is whole) and its capture's manifest lists
//! it, so its checksum is verified first. The capture marks its manifest
//! finished after its last segment: the follower ends once every manifest
//! in the directory is finished and every segment listed has been read.
//! A directory without manifests (a capture older than them) is followed
//! until Ctrl-C.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use netrec_schema::{files, manifest as names};

use super::{play_segments, Player, ReplayArgs, SECOND};
use crate::input::{manifest, segment, InputError};

/// How often the directory is looked at.
const POLL: Duration = Duration::from_millis(100);

/// Files under `dir` whose names pass `keep`; none while it does not exist yet.
fn sorted_files(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<PathBuf>, InputError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    crate::input::discover::files_under(dir, keep)
}

/// The manifest's stem: its segments are `<stem>-<index>.parquet`.
fn stem(manifest: &Path) -> String {
    let name = manifest.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.strip_suffix(names::SUFFIX).unwrap_or(name).to_string()
}

pub fn run(args: &ReplayArgs, dir: &Path, out: &mut dyn Write) -> Result<crate::Outcome> {
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!("--follow {}: not a directory", dir.display());
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first ends the follow after the segment in hand; a second, at once.
        signal_hook::flag::register_conditional_shutdown(signal, 130, interrupted.clone())?;
        signal_hook::flag::register(signal, interrupted.clone())?;
    }
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut state: Option<(super::Plan, Player)> = None;
    let mut waiting_said = false;
    loop {
        // Manifests first: a segment renamed after this look waits for the next.
        let manifests = sorted_files(dir, &|n| names::is_manifest(n))?
            .iter()
            .map(|p| manifest::read(p))
            .collect::<Result<Vec<_>, InputError>>()?;
        let listed = manifest::listed(&manifests);
        let stems: Vec<String> = manifests.iter().map(|m| format!("{}-", stem(&m.path))).collect();
        for path in sorted_files(dir, &|n| files::is_segment(n))? {
            if seen.contains(&path) {
                continue;
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            match listed.get(&path) {
                Some((_, entry)) => {
                    if let Some(why) = manifest::mismatch(&path, entry.bytes, &entry.sha256)? {
                        return Err(InputError::Checksum(path, why).into());
                    }
                }
                // Its capture's manifest does not list it yet: the next look will.
                None if stems.iter().any(|s| name.starts_with(s.as_str())) => continue,
                None => {}
            }
            let info = segment::read(&path)?;
            if info.lost > 0 {
                eprintln!(
                    "netrec-analyze: warning: {}: the capture lost {} events here; the replay lacks them",
                    path.display(),
                    info.lost
                );
            }
            if state.is_none() {
                let filters = args.selection.filters(info.start.timestamp_nanos_opt().unwrap_or(0))?;
                // Rows can reach a later segment up to an aggregate interval late.
                let late = info.data.as_ref().map_or(0, |d| d.interval_ns as i64);
                let plan = args.plan(&filters);
                let player = args.player(&filters, false, 2 * SECOND + late);
                state = Some((plan, player));
            }
            let (plan, player) = state.as_mut().expect("set above");
            play_segments(std::slice::from_ref(&info), plan, player, out)?;
            seen.insert(path);
        }
        let finished = !manifests.is_empty()
            && manifests.iter().all(|m| m.manifest.finished.is_some())
            && listed.keys().all(|p| seen.contains(p) || !p.exists());
        if finished || interrupted.load(Ordering::Relaxed) {
            break;
        }
        if seen.is_empty() && !waiting_said && manifests.is_empty() {
            eprintln!("netrec-analyze: following {}: waiting for a capture's first segment", dir.display());
            waiting_said = true;
        }
        std::thread::sleep(POLL);
    }
    if let Some((_, player)) = state.as_mut() {
        player.sink.finish(out)?;
    }
    Ok(crate::Outcome::Ok)
}
