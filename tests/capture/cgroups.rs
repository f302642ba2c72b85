//! Containers: real cgroups the test creates, laid out as a Kubernetes
//! node's (cgroup v2, containerd, systemd driver) and as a v1-only docker
//! host's. Each process's rows carry its cgroup; the analyzer splits and
//! filters by cgroup, container and pod with the workload's exact bytes.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

const POD: &str = "1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d";
const SERVER_ID: &str = "5e1f00d0c0ffee00112233445566778899aabbccddeeff00112233445566aa01";
const CLIENT_ID: &str = "c11e0700c0ffee00112233445566778899aabbccddeeff00112233445566bb02";

/// A cgroup directory made for the test, removed with its parents when dropped.
struct Cgroup {
    /// Made directories, outermost first.
    made: Vec<PathBuf>,
    /// The cgroup's path within its hierarchy.
    path: String,
}

impl Cgroup {
    fn make(mount: &Path, path: &str) -> Cgroup {
        assert!(mount.is_dir(), "{} is not mounted", mount.display());
        let mut made = Vec::new();
        let mut dir = mount.to_path_buf();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                made.push(dir.clone());
            }
        }
        Cgroup { made, path: path.to_string() }
    }

    fn procs(&self) -> PathBuf {
        self.made.last().unwrap().join("cgroup.procs")
    }

    fn id(&self) -> u64 {
        std::fs::metadata(self.made.last().unwrap()).unwrap().ino()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in self.made.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// netio's totals per key of `--by by`: key -> (sent, consumed).
fn netio_totals(dir: &Path, args: &[&str]) -> BTreeMap<String, (u64, u64)> {
    let mut all = vec!["netio", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    analyze_json(&all)
        .into_iter()
        .filter(|r| r["total"] == "key")
        .map(|r| {
            let key = ["container", "pod", "cgroup", "pid"]
                .iter()
                .find_map(|k| r.get(*k).map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string())))
                .unwrap();
            (key, (r["sent_bytes"].as_u64().unwrap(), r["recv_bytes"].as_u64().unwrap()))
        })
        .collect()
}

/// The workload server in a pod's container (v2, as the kubelet's systemd
/// driver and containerd lay it out), its client in a v1-only docker
/// container: every row says its process's cgroup, and netio/churn by
/// container, pod and cgroup give each side's exact bytes and connections.
#[test]
fn rows_carry_their_cgroup_and_the_analyzer_splits_by_container_and_pod() {
    let _g = serial();
    let pod = POD.replace('-', "_");
    let run = std::process::id();
    let server_cg = Cgroup::make(
        Path::new("/sys/fs/cgroup/unified"),
        &format!(
            "/netrec-test-{run}.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod}.slice/cri-containerd-{SERVER_ID}.scope"
        ),
    );
    let client_cg = Cgroup::make(Path::new("/sys/fs/cgroup/pids"), &format!("/netrec-test-{run}/docker/{CLIENT_ID}"));
    let dir = tempdir();
    let out = dir.path().join("cgroups");
    let cap = Capture::start(&out, &[]);
    let server = Server::start_in(&[&server_cg.procs()]);
    let client = server.run_client_in(&[&client_cg.procs()]);
    let (port, other) = (server.port.to_string(), server.other_port.to_string());
    let served = server.finish();
    let (status, _, stderr) = cap.stop();
    assert!(status.success(), "{stderr:?}");

    let rows = all_rows(&read_segments(&out));
    let pid = |v: &Value| v["pid"].as_u64().unwrap() as u32;
    for (who, counts, cg, v1) in [("server", &served, &server_cg, false), ("client", &client, &client_cg, true)] {
        // Not the exec of the sh that moved itself into the cgroup and then exec'd the workload.
        let workload =
            |r: &&Row| r.kind != "exec" || r.filename.as_deref().is_some_and(|f| f.ends_with("tcp_workload"));
        let mine: Vec<&Row> = rows.iter().filter(|r| r.pid == Some(pid(counts))).filter(workload).collect();
        assert!(mine.iter().any(|r| r.kind == "send") && mine.iter().any(|r| r.kind == "exec"), "{who}: {mine:?}");
        for r in &mine {
            assert_eq!(r.cgroup.as_deref(), Some(cg.path.as_str()), "{who}: {r:?}");
            // A v1 cgroup has no v2 id: the process is in the v2 root.
            if !v1 {
                assert_eq!(r.cgroup_id, Some(cg.id()), "{who}: {r:?}");
            }
        }
    }

    let want_server = expected(&served);
    let want_client = expected(&client);
    let by_container = netio_totals(&out, &["--by", "container"]);
    assert_eq!(by_container.get(SERVER_ID), Some(&want_server), "{by_container:?}");
    assert_eq!(by_container.get(CLIENT_ID), Some(&want_client), "{by_container:?}");
    let by_pod = netio_totals(&out, &["--by", "pod"]);
    assert_eq!(by_pod.get(POD), Some(&want_server), "{by_pod:?}");
    let by_cgroup = netio_totals(&out, &["--by", "cgroup"]);
    assert_eq!(by_cgroup.get(&client_cg.path), Some(&want_client), "{by_cgroup:?}");
    // --container takes docker's 12-digit short id; --cgroup a parent slice.
    let short = netio_totals(&out, &["--container", &CLIENT_ID[..12], "--by", "pid"]);
    assert_eq!(short.into_values().collect::<Vec<_>>(), vec![want_client]);
    let parent = format!("/netrec-test-{run}.slice");
    let slice = netio_totals(&out, &["--cgroup", &parent, "--by", "pid"]);
    assert_eq!(slice.into_values().collect::<Vec<_>>(), vec![want_server]);

    // The server's passive opens are its container's, the client's active ones its own:
    // one each per connection the server accepted.
    let churn = analyze_json(&["churn", out.to_str().unwrap(), "--by", "container", "--port", &port, "--port", &other]);
    let sum = |id: &str, col: &str| -> u64 {
        churn.iter().filter(|r| r["container"] == id).filter_map(|r| r[col].as_u64()).sum()
    };
    let accepted = rows.iter().filter(|r| r.kind == "accept" && r.pid == Some(pid(&served))).count() as u64;
    let short = client["short_ports"].as_array().unwrap().len() as u64;
    assert!(accepted > short, "the 20 short connections and the long ones: {accepted}");
    assert_eq!(sum(SERVER_ID, "opened_passive"), accepted, "{churn:?}");
    assert_eq!(sum(CLIENT_ID, "opened_active"), accepted, "{churn:?}");
    assert_eq!(sum(SERVER_ID, "opened_active") + sum(CLIENT_ID, "opened_passive"), 0, "{churn:?}");
    assert_eq!(sum(SERVER_ID, "closed"), accepted, "{churn:?}");
}
