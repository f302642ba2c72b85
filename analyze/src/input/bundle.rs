//! A support bundle (`netrec-analyze pack`): a tar of segments, their
//! manifests, the bundle's own manifest and a report. Every subcommand reads
//! one as it reads a directory, unpacked into a private temporary directory.

use std::io::Read;
use std::path::Path;

use super::InputError;

/// The bundle's own manifest, at the archive's root.
pub const MANIFEST: &str = "manifest.json";

/// Whether `path` is a tar archive (by its name, else by the ustar magic).
pub fn is_bundle(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "tar") {
        return true;
    }
    let mut head = [0u8; 262];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head[257..262] == b"ustar"
}

/// Unpacks a bundle; the directory goes when the returned handle is dropped.
pub fn unpack(path: &Path) -> Result<tempfile::TempDir, InputError> {
    let bad = |why: String| InputError::BadBundle(path.to_path_buf(), why);
    let dir = tempfile::Builder::new().prefix("netrec-bundle-").tempdir().map_err(|e| bad(e.to_string()))?;
    let file = std::fs::File::open(path).map_err(|e| InputError::Io(path.to_path_buf(), e))?;
    // tar refuses entries that would land outside `dir` (absolute paths, `..`).
    tar::Archive::new(file).unpack(dir.path()).map_err(|e| bad(e.to_string()))?;
    Ok(dir)
}
