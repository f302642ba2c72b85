//! A damaged segment — bytes changed inside a data page, its footer intact —
//! makes polars' Parquet decoder fail, or assert and panic, part-way through a
//! scan of many files, naming none of them. `quietly` turns a panic into an
//! error; `first_damaged` decodes each segment alone to say which one it was.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

use polars::prelude::*;

/// Sections running under `quietly`: while any runs, a panic on any thread
/// (polars decodes on its own threads) is recorded instead of printed.
static QUIET: AtomicUsize = AtomicUsize::new(0);
static FIRST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.load(Ordering::SeqCst) == 0 {
                return default(info);
            }
            let mut first = FIRST_PANIC.lock().unwrap_or_else(|p| p.into_inner());
            if first.is_none() {
                let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                *first = Some(format!("{}{at}", message(info.payload())));
            }
        }));
    });
}

/// A panic's message, on one line (assertions span several).
fn message(payload: &dyn Any) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    one_line(&text)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs `f`; a panic in it, or on a thread it waits for, becomes Err with the
/// first panic's message (nothing printed).
pub fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    QUIET.fetch_add(1, Ordering::SeqCst);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.fetch_sub(1, Ordering::SeqCst);
    let first = FIRST_PANIC.lock().unwrap_or_else(|p| p.into_inner()).take();
    result.map_err(|payload| first.unwrap_or_else(|| message(&*payload)))
}

/// Whether an error came from polars (reading or computing), not from netrec's own checks.
pub fn from_polars(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<PolarsError>().is_some())
}

/// Decodes one segment in full, every column, with polars' eager reader:
/// not the streaming engine, whose executor a panic in the failed run may
/// have left waiting (seen once: a hang, in one of thousands of runs).
fn decode(path: &Path) -> Result<(), String> {
    let scan = || -> PolarsResult<DataFrame> {
        let file = std::fs::File::open(path).map_err(|e| polars_err!(ComputeError: "{e}"))?;
        ParquetReader::new(file).finish()
    };
    match quietly(scan) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(one_line(&e.to_string())),
        Err(panic) => Err(panic),
    }
}

/// The first of `segments` that does not decode on its own, and why.
pub fn first_damaged(segments: &[PathBuf]) -> Option<(PathBuf, String)> {
    segments.iter().find_map(|p| decode(p).err().map(|why| (p.clone(), why)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_later_panics_print_again() {
        let r: Result<(), String> = quietly(|| panic!("decoder assert"));
        let e = r.unwrap_err();
        assert!(e.starts_with("decoder assert at ") && e.contains("damage.rs"), "{e}");
        // A panic on another thread the section waits for is the one reported.
        let r = quietly(|| std::thread::spawn(|| panic!("on a worker")).join().map_err(|_| ()).unwrap());
        assert!(r.unwrap_err().starts_with("on a worker"));
        assert_eq!(quietly(|| 7), Ok(7));
        assert_eq!(QUIET.load(Ordering::SeqCst), 0);
    }
}
