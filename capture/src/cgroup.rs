//! A process's cgroup as a path, from the v2 id the kernel records with each
//! event. The path comes from /proc/<pid>/cgroup while the process lives, else
//! from the v2 hierarchy's directories (a v2 id is its directory's inode).
//! A process whose v2 cgroup is the root, on a host whose containers live in
//! v1 hierarchies (a v1-only docker host, hybrid hosts like this one), gets
//! its v1 path: that is where its container id is.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

/// v1 hierarchies whose path names a container, in order of preference.
const V1_PREFERRED: [&str; 4] = ["name=systemd", "pids", "memory", "cpu,cpuacct"];
/// A missed id walks the v2 tree at most this often.
const WALK_EVERY: Duration = Duration::from_secs(1);
/// Entries a cache holds before it starts again (pids and cgroups come and
/// go for as long as a capture runs; its memory must not grow with them).
const MAX_CACHED: usize = 65_536;

pub struct Cgroups {
    /// Where the v2 hierarchy is mounted (/sys/fs/cgroup, or
    /// /sys/fs/cgroup/unified on hybrid hosts); None without one.
    v2_mount: Option<PathBuf>,
    root_id: Option<u64>,
    by_id: FxHashMap<u64, Arc<str>>,
    /// The id a pid was last seen with, and its path.
    by_pid: FxHashMap<u32, (u64, Arc<str>)>,
    last_walk: Option<Instant>,
}

impl Cgroups {
    pub fn detect() -> Cgroups {
        let v2_mount = fs::read_to_string("/proc/self/mountinfo").ok().and_then(|m| v2_mount_point(&m));
        let root_id = v2_mount.as_deref().and_then(|m| fs::metadata(m).ok()).map(|m| m.ino());
        let mut by_id = FxHashMap::default();
        if let Some(id) = root_id {
            by_id.insert(id, Arc::from("/"));
        }
        Cgroups { v2_mount, root_id, by_id, by_pid: FxHashMap::default(), last_walk: None }
    }

    /// The cgroup path of `pid`, recorded with v2 id `id`; None if neither
    /// the process nor the cgroup is there any more.
    pub fn path(&mut self, pid: u32, id: u64) -> Option<Arc<str>> {
        if let Some((seen, path)) = self.by_pid.get(&pid) {
            if *seen == id {
                return Some(Arc::clone(path));
            }
        }
        let in_root = Some(id) == self.root_id;
        // A v2 cgroup's path is the same for every process in it: no /proc read.
        if let Some(path) = self.by_id.get(&id).filter(|_| !in_root).cloned() {
            self.remember_pid(pid, id, &path);
            return Some(path);
        }
        let found = match fs::read_to_string(format!("/proc/{pid}/cgroup")).ok().and_then(|t| parse_proc(&t)) {
            // The v2 path is the one of the recorded id, unless the process moved since.
            Some(p) if !in_root && p.v2.as_deref().is_some_and(|v2| self.is_id(v2, id)) => p.v2,
            Some(p) if in_root => p.v1.or(p.v2),
            _ => None,
        };
        let path = match found {
            Some(p) => {
                let p: Arc<str> = Arc::from(p);
                if !in_root {
                    self.trim_ids();
                    self.by_id.insert(id, Arc::clone(&p));
                }
                p
            }
            None => self.by_id_or_walk(id)?,
        };
        self.remember_pid(pid, id, &path);
        Some(path)
    }

    fn remember_pid(&mut self, pid: u32, id: u64, path: &Arc<str>) {
        if self.by_pid.len() >= MAX_CACHED {
            self.by_pid.clear();
        }
        self.by_pid.insert(pid, (id, Arc::clone(path)));
    }

    /// Entries cached: (cgroup ids, pids).
    pub fn len(&self) -> (usize, usize) {
        (self.by_id.len(), self.by_pid.len())
    }

    /// A process ended: its pid may come back as another one.
    pub fn forget_pid(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
    }

    fn trim_ids(&mut self) {
        if self.by_id.len() >= MAX_CACHED {
            let root = self.root_id;
            self.by_id.retain(|k, _| Some(*k) == root);
        }
    }

    fn is_id(&self, v2_path: &str, id: u64) -> bool {
        match &self.v2_mount {
            Some(m) => fs::metadata(m.join(v2_path.trim_start_matches('/'))).is_ok_and(|md| md.ino() == id),
            None => false,
        }
    }

    fn by_id_or_walk(&mut self, id: u64) -> Option<Arc<str>> {
        if let Some(p) = self.by_id.get(&id) {
            return Some(Arc::clone(p));
        }
        let mount = self.v2_mount.clone()?;
        if self.last_walk.is_some_and(|t| t.elapsed() < WALK_EVERY) {
            return None;
        }
        self.last_walk = Some(Instant::now());
        self.trim_ids();
        walk(&mount, &mount, &mut self.by_id, 0);
        self.by_id.get(&id).cloned()
    }
}

/// Every directory under `mount` by inode, as cgroup paths.
fn walk(mount: &Path, dir: &Path, by_id: &mut FxHashMap<u64, Arc<str>>, depth: usize) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let Ok(md) = e.metadata() else { continue };
        if !md.is_dir() || depth > 32 {
            continue;
        }
        let path = e.path();
        if let Ok(rel) = path.strip_prefix(mount) {
            by_id.entry(md.ino()).or_insert_with(|| Arc::from(format!("/{}", rel.display())));
        }
        walk(mount, &path, by_id, depth + 1);
    }
}

fn v2_mount_point(mountinfo: &str) -> Option<PathBuf> {
    // "36 25 0:31 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw"
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

struct ProcCgroup {
    v2: Option<String>,
    /// The preferred v1 hierarchy's path, if it is not the root.
    v1: Option<String>,
}

/// /proc/<pid>/cgroup: "0::/path" for v2, "N:controllers:/path" for v1.
fn parse_proc(text: &str) -> Option<ProcCgroup> {
    let mut v2 = None;
    let mut v1: Vec<(&str, &str)> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(n), Some(ctl), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if n == "0" && ctl.is_empty() {
            v2 = Some(path.to_string());
        } else if path != "/" {
            v1.push((ctl, path));
        }
    }
    let v1 = V1_PREFERRED
        .iter()
        .find_map(|want| v1.iter().find(|(ctl, _)| ctl == want))
        .or(v1.first())
        .map(|(_, p)| p.to_string());
    (v2.is_some() || v1.is_some()).then_some(ProcCgroup { v2, v1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_takes_v2_and_the_preferred_v1_path() {
        let hybrid = "9:name=systemd:/\n4:memory:/docker/abc\n8:pids:/docker/abc\n0::/\n";
        let p = parse_proc(hybrid).unwrap();
        assert_eq!((p.v2.as_deref(), p.v1.as_deref()), (Some("/"), Some("/docker/abc")));
        let v1_systemd = "1:name=systemd:/system.slice/docker-abc.scope\n4:memory:/other\n";
        assert_eq!(parse_proc(v1_systemd).unwrap().v1.as_deref(), Some("/system.slice/docker-abc.scope"));
        let v2 = "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope\n";
        let p = parse_proc(v2).unwrap();
        assert_eq!(
            (p.v2.as_deref(), p.v1),
            (Some("/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope"), None)
        );
    }

    #[test]
    fn the_v2_mount_is_found_on_hybrid_and_unified_hosts() {
        let hybrid = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                      40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n";
        assert_eq!(v2_mount_point(hybrid), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        let unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(v2_mount_point(unified), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(v2_mount_point("22 1 0:21 / /proc rw - proc proc rw\n"), None);
    }

    /// This process's own cgroup, by the id the kernel would record (the
    /// directory's inode): the path /proc/self/cgroup gives.
    #[test]
    fn a_live_process_resolves_to_its_proc_path() {
        let mut cg = Cgroups::detect();
        let Some(mount) = cg.v2_mount.clone() else { return };
        let own = parse_proc(&fs::read_to_string("/proc/self/cgroup").unwrap()).unwrap();
        let v2 = own.v2.unwrap();
        let id = fs::metadata(mount.join(v2.trim_start_matches('/'))).unwrap().ino();
        let want = if Some(id) == cg.root_id { own.v1.unwrap_or(v2) } else { v2 };
        assert_eq!(cg.path(std::process::id(), id).as_deref(), Some(want.as_str()));
    }
}
