//! Turning the paths on the command line into a list of segment files.

use std::path::{Path, PathBuf};

use netrec_schema::files;

use super::InputError;

/// What was found: finished segments, and in-progress ones skipped.
#[derive(Debug, Default)]
pub struct Found {
    pub segments: Vec<PathBuf>,
    pub skipped_in_progress: Vec<PathBuf>,
    /// Bundles given as inputs, unpacked; their segments are among `segments`.
    pub unpacked: Vec<tempfile::TempDir>,
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn push_file(found: &mut Found, path: PathBuf) {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(files::IN_PROGRESS_SUFFIX) {
        found.skipped_in_progress.push(path);
    } else {
        found.segments.push(path);
    }
}

/// Files under `dir`, each directory's entries in name order, whose names pass `keep`.
pub fn files_under(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<PathBuf>, InputError> {
    let mut found = Vec::new();
    collect_under(dir, keep, &mut found)?;
    Ok(found)
}

fn collect_under(dir: &Path, keep: &dyn Fn(&str) -> bool, found: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let entries = std::fs::read_dir(dir).map_err(|e| InputError::Io(dir.to_path_buf(), e))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect_under(&p, keep, found)?;
        } else if p.file_name().and_then(|n| n.to_str()).is_some_and(keep) {
            found.push(p);
        }
    }
    Ok(())
}

fn walk(dir: &Path, found: &mut Found) -> Result<(), InputError> {
    // In a directory, only segments count; other files are none of ours.
    for p in files_under(dir, &|n| files::is_segment(n) || files::is_in_progress(n))? {
        push_file(found, p);
    }
    Ok(())
}

/// Files are taken as given, directories searched recursively for
/// `*.parquet`, globs expanded.
pub fn discover(inputs: &[PathBuf]) -> Result<Found, InputError> {
    let mut found = Found::default();
    for input in inputs {
        let text = input.to_string_lossy();
        if !input.exists() && is_glob(&text) {
            let matches = glob::glob(&text).map_err(|e| InputError::BadGlob(text.to_string(), e.to_string()))?;
            let mut any = false;
            for m in matches.flatten() {
                any = true;
                if m.is_file() && super::bundle::is_bundle(&m) {
                    let dir = super::bundle::unpack(&m)?;
                    walk(dir.path(), &mut found)?;
                    found.unpacked.push(dir);
                } else if m.is_dir() {
                    walk(&m, &mut found)?;
                } else {
                    push_file(&mut found, m);
                }
            }
            if !any {
                return Err(InputError::NoMatch(text.to_string()));
            }
        } else if input.is_dir() {
            let before = found.segments.len() + found.skipped_in_progress.len();
            walk(input, &mut found)?;
            if found.segments.len() + found.skipped_in_progress.len() == before {
                return Err(InputError::EmptyDir(input.clone()));
            }
        } else if input.is_file() && super::bundle::is_bundle(input) {
            let dir = super::bundle::unpack(input)?;
            let before = found.segments.len();
            walk(dir.path(), &mut found)?;
            if found.segments.len() == before {
                return Err(InputError::BadBundle(input.clone(), "it holds no segments".into()));
            }
            found.unpacked.push(dir);
        } else if input.exists() {
            push_file(&mut found, input.clone());
        } else {
            return Err(InputError::NotFound(input.clone()));
        }
    }
    found.segments.sort();
    found.segments.dedup();
    if found.segments.is_empty() {
        return Err(InputError::NoSegments);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_segments_recursively_and_skips_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("host-a");
        std::fs::create_dir(&sub).unwrap();
        for name in ["a.parquet", "b.parquet.inprogress", "notes.txt"] {
            std::fs::write(sub.join(name), b"").unwrap();
        }
        std::fs::write(dir.path().join("c.parquet"), b"").unwrap();
        let found = discover(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(found.segments, vec![dir.path().join("c.parquet"), sub.join("a.parquet")]);
        assert_eq!(found.skipped_in_progress, vec![sub.join("b.parquet.inprogress")]);
    }

    #[test]
    fn globs_expand_and_missing_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.parquet"), b"").unwrap();
        let pattern = dir.path().join("*.parquet");
        assert_eq!(discover(&[pattern]).unwrap().segments.len(), 1);
        let missing = dir.path().join("nope.parquet");
        let err = discover(std::slice::from_ref(&missing)).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(discover(&[empty]).unwrap_err().to_string().contains("no segments"));
        let err = discover(&[dir.path().join("*.nothing")]).unwrap_err().to_string();
        assert!(err.contains("matches nothing"), "{err}");
    }
}
