//! `container` and `pod`, derived from a row's cgroup path by the patterns
//! of the runtimes that made it: docker (cgroupfs `/docker/<id>`, systemd
//! `docker-<id>.scope`), containerd/CRI (`cri-containerd-<id>.scope`,
//! `/kubepods/<qos>/pod<uid>/<id>`), cri-o (`crio-<id>.scope`), podman
//! (`libpod-<id>.scope`, `/libpod_parent/libpod-<id>`), and systemd units
//! (`nginx.service`, `session-3.scope`) for processes in no container.

use std::collections::HashMap;
use std::sync::OnceLock;

use polars::prelude::*;
use regex::Regex;

fn container_id() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?:(?:docker|cri-containerd|containerd|crio|libpod)-)?([0-9a-f]{64})(?:\.scope)?$").unwrap()
    })
}

fn pod_uid() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let hex = |n| format!("[0-9a-f]{{{n}}}");
        let uid = [hex(8), hex(4), hex(4), hex(4), hex(12)].join("[-_]");
        Regex::new(&format!(r"^(?:kubepods(?:-[a-z]+)*-)?pod({uid})(?:\.slice)?$")).unwrap()
    })
}

/// The container id (64 hex digits) in a cgroup path, else the innermost
/// systemd unit (`.service`, `.scope`); None for neither (`/`, `/user.slice`).
pub fn container_of(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(id) = parts.iter().rev().find_map(|p| container_id().captures(p)) {
        return Some(id[1].to_string());
    }
    parts.iter().rev().find(|p| p.ends_with(".service") || p.ends_with(".scope")).map(|p| p.to_string())
}

/// A Kubernetes pod's uid in a cgroup path (the systemd driver writes its
/// dashes as underscores).
pub fn pod_of(path: &str) -> Option<String> {
    path.split('/').find_map(|p| pod_uid().captures(p)).map(|c| c[1].replace('_', "-"))
}

/// `derive` applied to a string column, each distinct path parsed once.
fn derived(cgroup: Expr, name: &'static str, derive: fn(&str) -> Option<String>) -> Expr {
    cgroup
        .map(
            move |c| {
                let mut seen: HashMap<&str, Option<String>> = HashMap::new();
                let ca = c.str()?;
                let out: StringChunked =
                    ca.iter().map(|v| v.and_then(|p| seen.entry(p).or_insert_with(|| derive(p)).clone())).collect();
                Ok(out.with_name(name.into()).into_column())
            },
            move |_, _| Ok(Field::new(name.into(), DataType::String)),
        )
        .alias(name)
}

/// Whether each string of `e` passes `test` (null stays null): prefix
/// filters without polars' string namespace (and its build time).
pub fn test_str(e: Expr, test: impl Fn(&str) -> bool + Send + Sync + 'static) -> Expr {
    e.map(
        move |c| {
            let out: BooleanChunked = c.str()?.iter().map(|v| v.map(&test)).collect();
            Ok(out.with_name(c.name().clone()).into_column())
        },
        |_, f| Ok(Field::new(f.name().clone(), DataType::Boolean)),
    )
}

/// The derived column `name` ("container" or "pod") from the `cgroup` expression.
pub fn column(name: &str, cgroup: Expr) -> Option<Expr> {
    match name {
        "container" => Some(derived(cgroup, "container", container_of)),
        "pod" => Some(derived(cgroup, "pod", pod_of)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";

    #[test]
    fn container_ids_of_every_runtime() {
        let cases = [
            (format!("/docker/{ID}"), Some(ID.to_string())),
            (format!("/system.slice/docker-{ID}.scope"), Some(ID.into())),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d_5e6f_7a8b_9c0d_1e2f3a4b5c6d.slice/cri-containerd-{ID}.scope"),
                Some(ID.into()),
            ),
            (format!("/kubepods/besteffort/pod1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d/{ID}"), Some(ID.into())),
            (format!("/kubepods.slice/kubepods-pod1a2b3c4d_5e6f_7a8b_9c0d_1e2f3a4b5c6d.slice/crio-{ID}.scope"), Some(ID.into())),
            (format!("/machine.slice/libpod-{ID}.scope/container"), Some(ID.into())),
            (format!("/libpod_parent/libpod-{ID}"), Some(ID.into())),
            ("/system.slice/nginx.service".into(), Some("nginx.service".into())),
            ("/user.slice/user-0.slice/session-3.scope".into(), Some("session-3.scope".into())),
            ("/".into(), None),
            ("/user.slice".into(), None),
        ];
        for (path, want) in cases {
            assert_eq!(container_of(&path), want, "{path}");
        }
    }

    #[test]
    fn pods_of_both_kubelet_drivers() {
        let uid = "1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d";
        let systemd = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
            uid.replace('-', "_")
        );
        assert_eq!(pod_of(&systemd).as_deref(), Some(uid));
        assert_eq!(pod_of(&format!("/kubepods/pod{uid}/{ID}")).as_deref(), Some(uid));
        assert_eq!(pod_of(&format!("/docker/{ID}")), None);
    }
}
