//! Once its probes are attached the capture needs almost no privilege: it
//! reads the ring buffer and the kernel's tables through file descriptors it
//! already holds, and writes into its own output directory. So it gives up
//! every capability it can, from every set (the bounding set too), and sets
//! no_new_privs: a compromised capture cannot load programs, read other
//! processes or regain root's powers by exec.
//!
//! How few is enough depends on the kernel: since 5.11 a bpf() call on a
//! descriptor one holds needs no capability, while 5.10 still refuses every
//! bpf() call without CAP_BPF when kernel.unprivileged_bpf_disabled is set.
//! Capabilities are per thread, so each candidate is tried in a thread of
//! its own before the capture's main thread keeps it.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use caps::{CapSet, Capability, CapsHashSet};

/// Drops every capability this kernel lets the capture do without, keeping
/// CAP_DAC_OVERRIDE too when the output directory belongs to another user
/// (root writes there through it). `map`: a map of the capture's, to try
/// bpf() on. Returns the capabilities kept.
pub fn drop_all(output: &Path, map: BorrowedFd<'_>) -> Result<Vec<Capability>> {
    let owner = std::fs::metadata(output).with_context(|| format!("--output {}", output.display()))?.uid();
    // SAFETY: geteuid cannot fail.
    let base: CapsHashSet =
        if owner == unsafe { libc::geteuid() } { CapsHashSet::new() } else { [Capability::CAP_DAC_OVERRIDE].into() };
    let fd = map.as_raw_fd();
    for extra in [None, Some(Capability::CAP_BPF), Some(Capability::CAP_SYS_ADMIN)] {
        let mut keep = base.clone();
        keep.extend(extra);
        let trial = keep.clone();
        let works = std::thread::spawn(move || drop_to(&trial).is_ok() && bpf_works(fd)).join().unwrap_or(false);
        if works {
            drop_to(&keep)?;
            return Ok(keep.into_iter().collect());
        }
    }
    bail!("dropping capabilities: this kernel refuses bpf() on the capture's own maps even with CAP_SYS_ADMIN")
}

/// This thread's capabilities become `keep`, in every set, for good.
fn drop_to(keep: &CapsHashSet) -> Result<()> {
    let fail = |what: &str| format!("dropping capabilities ({what})");
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes next.
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).with_context(|| fail("bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).with_context(|| fail("ambient set"))?;
    caps::clear(None, CapSet::Inheritable).with_context(|| fail("inheritable set"))?;
    caps::set(None, CapSet::Effective, keep).with_context(|| fail("effective set"))?;
    caps::set(None, CapSet::Permitted, keep).with_context(|| fail("permitted set"))?;
    // SAFETY: plain prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| fail("no_new_privs"));
    }
    Ok(())
}

/// Whether this thread may still ask the kernel about the map `fd`.
fn bpf_works(fd: i32) -> bool {
    let mut info = libbpf_rs::libbpf_sys::bpf_map_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: valid pointers to an info struct and its length.
    unsafe {
        libbpf_rs::libbpf_sys::bpf_obj_get_info_by_fd(
            fd,
            (&mut info as *mut libbpf_rs::libbpf_sys::bpf_map_info).cast(),
            &mut len,
        ) == 0
    }
}
