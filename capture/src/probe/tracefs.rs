//! tracefs is needed to attach syscall tracepoints (splice accounting) and,
//! on kernels without the kprobe PMU, kprobes.

use std::path::Path;

use anyhow::{bail, Result};

const TRACEFS: &str = "/sys/kernel/tracing";

/// Where tracefs lists its events once mounted.
pub fn events() -> &'static Path {
    Path::new("/sys/kernel/tracing/events")
}

/// Unmounts tracefs on drop if we were the ones to mount it.
pub struct TracefsGuard {
    mounted_by_us: bool,
}

impl Drop for TracefsGuard {
    fn drop(&mut self) {
        if self.mounted_by_us {
            let target = std::ffi::CString::new(TRACEFS).expect("no NUL");
            // SAFETY: valid C string; MNT_DETACH leaves busy users alone.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Makes sure `/sys/kernel/tracing/events` exists, mounting tracefs if needed.
pub fn ensure_mounted() -> Result<TracefsGuard> {
    let events = events();
    if events.is_dir() {
        return Ok(TracefsGuard { mounted_by_us: false });
    }
    let src = std::ffi::CString::new("nodev").expect("no NUL");
    let target = std::ffi::CString::new(TRACEFS).expect("no NUL");
    let fstype = std::ffi::CString::new("tracefs").expect("no NUL");
    // SAFETY: valid C strings, no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 || !events.is_dir() {
        let err = std::io::Error::last_os_error();
        bail!(
            "tracefs is not mounted at {TRACEFS} and mounting it failed ({err}); \
             mount it with `mount -t tracefs nodev {TRACEFS}` and try again"
        );
    }
    Ok(TracefsGuard { mounted_by_us: true })
}
