//! Once its probes are attached the capture needs no privilege: it reads the
//! ring buffer and the kernel's tables through file descriptors it already
//! holds, and writes into its own output directory. So it gives up every
//! capability, from every set (the bounding set too), and sets no_new_privs:
//! a compromised capture cannot load programs, read other processes or
//! regain root's powers by exec.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use caps::{CapSet, Capability, CapsHashSet};

/// Drops every capability; keeps CAP_DAC_OVERRIDE only when the output
/// directory belongs to another user (root writes there through it).
/// Returns the capabilities kept.
pub fn drop_all(output: &Path) -> Result<Vec<Capability>> {
    let owner = std::fs::metadata(output).with_context(|| format!("--output {}", output.display()))?.uid();
    // SAFETY: geteuid cannot fail.
    let keep: CapsHashSet =
        if owner == unsafe { libc::geteuid() } { CapsHashSet::new() } else { [Capability::CAP_DAC_OVERRIDE].into() };
    let fail = |what: &str| format!("dropping capabilities ({what})");
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes next.
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).with_context(|| fail("bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).with_context(|| fail("ambient set"))?;
    caps::clear(None, CapSet::Inheritable).with_context(|| fail("inheritable set"))?;
    caps::set(None, CapSet::Effective, &keep).with_context(|| fail("effective set"))?;
    caps::set(None, CapSet::Permitted, &keep).with_context(|| fail("permitted set"))?;
    // SAFETY: plain prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| fail("no_new_privs"));
    }
    Ok(keep.into_iter().collect())
}
