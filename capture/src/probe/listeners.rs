//! Seeds the kernel's listener table with sockets that were listening before
//! the capture started, so connections they accept are attributed to the
//! server from their first state change (the kernel side only sees listen()
//! calls made while attached).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use libbpf_rs::{MapCore, MapFlags};

use crate::abi::skel::types::{listener_key, owner};
use crate::cli::Config;

const TCP_LISTEN: &str = "0A";

fn pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// "net:[4026531840]" -> 4026531840
fn netns_of(pid: u32) -> Option<u32> {
    let link = fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    dir.filter_map(|e| {
        let link = fs::read_link(e.ok()?.path()).ok()?;
        link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
    })
    .collect()
}

/// Listening TCP sockets of one network namespace: (inode, local port).
pub fn parse_listeners(table: &str) -> Vec<(u64, u16)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != TCP_LISTEN {
                return None;
            }
            let port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            Some((f[9].parse().ok()?, port))
        })
        .collect()
}

/// The cgroup v2 path of a process, as a path under the cgroup2 mount.
fn cgroup_of(pid: u32) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("0::")).map(|p| PathBuf::from(p.trim_start_matches('/')))
}

fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

fn comm_of(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim_end().to_string()).unwrap_or_default()
}

/// The same process filters the kernel applies, evaluated from /proc.
fn selected(pid: u32, cfg: &Config, cgroup_rel: Option<&Path>) -> bool {
    if !cfg.pids.is_empty() && !cfg.pids.contains(&pid) {
        return false;
    }
    if cfg.comm.as_ref().is_some_and(|c| *c != comm_of(pid)) {
        return false;
    }
    if let Some(want) = cgroup_rel {
        if !cgroup_of(pid).is_some_and(|have| have.starts_with(want)) {
            return false;
        }
    }
    true
}

/// Inserts every current listener whose owner the kernel does not know yet.
/// Best effort: a process may vanish meanwhile.
pub fn seed(map: &dyn MapCore, cfg: &Config) {
    let cgroup_rel = cfg.cgroup.as_ref().and_then(|cg| {
        let mount = cgroup2_mount()?;
        let full = fs::canonicalize(cg).ok()?;
        full.strip_prefix(mount).ok().map(Path::to_path_buf)
    });
    let mut holders: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut netns_pid: HashMap<u32, u32> = HashMap::new();
    for pid in pids() {
        let inodes = socket_inodes(pid);
        if inodes.is_empty() {
            continue;
        }
        if let Some(ns) = netns_of(pid) {
            netns_pid.entry(ns).or_insert(pid);
        }
        for ino in inodes {
            holders.entry(ino).or_default().push(pid);
        }
    }
    for (netns, pid) in netns_pid {
        for table in ["tcp", "tcp6"] {
            let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{table}")) else { continue };
            for (inode, port) in parse_listeners(&text) {
                let Some(pids) = holders.get(&inode) else { continue };
                // Prefer a holder the filters select: a prefork server's workers share the socket.
                let (chosen, is_selected) = pids
                    .iter()
                    .find(|&&p| selected(p, cfg, cgroup_rel.as_deref()))
                    .map_or((pids[0], false), |&p| (p, true));
                let key = listener_key { netns, port, pad: 0 };
                let mut value = owner { pid: chosen, tid: chosen, selected: is_selected as u8, ..Default::default() };
                for (dst, src) in value.comm.iter_mut().zip(comm_of(chosen).bytes().take(15)) {
                    *dst = src as i8;
                }
                // NOEXIST: what the kernel learned from a live listen() wins.
                // SAFETY: both are padding-free plain data (explicit pad fields).
                let (k, v) = unsafe { (plain::as_bytes(&key), plain::as_bytes(&value)) };
                let _ = map.update(k, v, MapFlags::NO_EXIST);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 31541 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A3F2 0100007F:0CEA 01 00000000:00000000 00:00000000 00000000     0        0 44519 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(parse_listeners(table), vec![(31541, 3306)]);
    }

    #[test]
    fn finds_a_listener_of_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id();
        let text = fs::read_to_string(format!("/proc/{me}/net/tcp")).unwrap();
        let inodes = socket_inodes(me);
        assert!(parse_listeners(&text).iter().any(|(ino, p)| *p == port && inodes.contains(ino)));
    }
}
