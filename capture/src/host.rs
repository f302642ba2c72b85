//! Facts about this host and its clocks, recorded in every segment.

use std::fs;

fn proc_value(path: &str) -> String {
    fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

pub fn hostname() -> String {
    proc_value("/proc/sys/kernel/hostname")
}

pub fn kernel_release() -> String {
    proc_value("/proc/sys/kernel/osrelease")
}

pub fn boot_id() -> String {
    proc_value("/proc/sys/kernel/random/boot_id")
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// CLOCK_BOOTTIME now, the kernel side's clock, in ns.
pub fn boottime_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME) as u64
}

/// Wall clock minus CLOCK_BOOTTIME (what bpf_ktime_get_boot_ns reads), in ns.
/// Takes the reading bracketed most tightly of a few.
pub fn clock_offset_ns() -> i64 {
    let mut best: Option<(i128, i128)> = None;
    for _ in 0..5 {
        let b0 = clock_ns(libc::CLOCK_BOOTTIME);
        let wall = clock_ns(libc::CLOCK_REALTIME);
        let b1 = clock_ns(libc::CLOCK_BOOTTIME);
        let width = b1 - b0;
        let offset = wall - (b0 + width / 2);
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, offset));
        }
    }
    best.expect("five readings").1 as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_maps_boottime_to_now() {
        let offset = clock_offset_ns() as i128;
        let now = clock_ns(libc::CLOCK_REALTIME);
        let mapped = clock_ns(libc::CLOCK_BOOTTIME) + offset;
        assert!((mapped - now).abs() < 50_000_000, "off by {} ns", mapped - now);
    }

    #[test]
    fn host_facts_are_read() {
        assert!(!kernel_release().is_empty());
        assert_eq!(boot_id().len(), 36);
    }
}
