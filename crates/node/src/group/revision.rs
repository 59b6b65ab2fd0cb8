//! What each container was started from (its spec, the vCPU and memory it got, the volumes it
//! mounts), written next to its bundle as `revision.json`. When a group runs again after
//! UpdateContainerGroup (or after berth restarted during one), the containers whose revision
//! changed are recreated and the containers the group no longer has are removed; the others
//! keep running. A container started by a berth that wrote no revision counts as unchanged.
//! A change of only the files of a ConfigFile volume it mounts does not count: the node
//! writes them in place (`volumes::in_place`), as the kubelet updates configMap and secret
//! volumes.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_core::{ContainerSpec, EventType, GroupSpec, Volume};
use serde::{Deserialize, Serialize};

use super::state::GroupState;
use crate::files::GroupDirs;
use crate::host::Host;

const FILE: &str = "revision.json";

/// What a container runs as, for telling whether an update changed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    #[serde(default)]
    init: bool,
    spec: ContainerSpec,
    cpu: f64,
    memory: f64,
    #[serde(default)]
    volumes: Vec<Volume>,
    /// Whether it runs in the group's own cgroup (`container::owns_group_cgroup`): an update
    /// that changes that (a second container, an init container) starts it afresh in the
    /// other place. Absent (false) in revisions written before the layout existed.
    #[serde(default)]
    group_cgroup: bool,
}

impl Revision {
    pub fn of(group: &GroupSpec, c: &ContainerSpec, init: bool) -> Self {
        let volumes = group
            .volumes
            .iter()
            .filter(|v| c.volume_mounts.iter().any(|m| m.name == v.name))
            .cloned()
            .collect();
        Self {
            init,
            spec: c.clone(),
            cpu: c.cpu.unwrap_or(group.cpu),
            memory: c.memory.unwrap_or(group.memory),
            volumes,
            group_cgroup: !init && super::container::owns_group_cgroup(group),
        }
    }

    /// Writes it into the container's directory (replacing the former one at once).
    pub fn write(&self, cdir: &Path) -> io::Result<()> {
        let tmp = cdir.join(".revision.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)?;
        std::fs::rename(&tmp, cdir.join(FILE))
    }

    fn read(cdir: &Path) -> Option<Self> {
        let bytes = std::fs::read(cdir.join(FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether a container started as `self` must start afresh to run as `now`: anything
    /// changed but the files of ConfigFile volumes the node rewrites in place.
    fn differs(&self, now: &Self, dirs: &GroupDirs) -> bool {
        if self == now {
            return false;
        }
        let mut was = self.clone();
        let is = now.clone();
        for v in &mut was.volumes {
            if let Some(n) = is.volumes.iter().find(|n| n.name == v.name) {
                if super::volumes::in_place(v, n, &super::volumes::source(dirs, v)) {
                    v.source = n.source.clone();
                }
            }
        }
        was != is
    }
}

/// Whether the container in `cdir` was started from another revision than `group` now gives it.
pub fn changed(
    dirs: &GroupDirs,
    group: &GroupSpec,
    c: &ContainerSpec,
    init: bool,
    cdir: &Path,
) -> bool {
    Revision::read(cdir).is_some_and(|r| r.differs(&Revision::of(group, c, init), dirs))
}

/// Whether an init container that ran is no longer what the group asks, or is gone (an
/// update of the init containers runs the whole group again).
pub fn init_changed(dirs: &GroupDirs, group: &GroupSpec) -> bool {
    on_disk(dirs).iter().any(|n| {
        let Some(r) = Revision::read(&dirs.container(n)) else {
            return false;
        };
        r.init
            && group
                .init_containers
                .iter()
                .find(|c| &c.name == n)
                .is_none_or(|c| r.differs(&Revision::of(group, c, true), dirs))
    })
}

/// The containers that have a directory on this node.
fn on_disk(dirs: &GroupDirs) -> Vec<String> {
    std::fs::read_dir(dirs.root.join("containers"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The app containers whose revision changed: they start afresh.
pub fn changed_app(dirs: &GroupDirs, spec: &GroupSpec) -> Vec<String> {
    spec.containers
        .iter()
        .filter(|c| changed(dirs, spec, c, false, &dirs.container(&c.name)))
        .map(|c| c.name.clone())
        .collect()
}

/// Marks the `changed` containers of a resumed group's observed state as waiting to start
/// again: a status that goes on as after a restart.
pub fn mark_changed(obs: &mut berth_core::ObservedGroup, changed: &[String]) {
    for s in obs
        .containers
        .iter_mut()
        .filter(|s| changed.contains(&s.name))
    {
        if s.current.state != berth_core::StateKind::Waiting {
            s.previous = Some(s.current.clone());
            s.restart_count += 1;
        }
        s.current = berth_core::ContainerState::waiting("ContainerCreating");
    }
}

/// Brings the group's containers on this node to `spec` before it runs again: removes the
/// containers it no longer has and stops the `changed` app containers (see
/// [`changed_app`]), with a fresh writable layer, so that they start afresh.
pub async fn reconcile(
    host: &Arc<Host>,
    gid: &str,
    dirs: &GroupDirs,
    spec: &GroupSpec,
    state: &GroupState,
    changed: &[String],
) {
    let grace = Duration::from_secs(spec.termination_grace_period_secs);
    let known = |n: &str| spec.all_containers().any(|c| c.name == n);
    for name in on_disk(dirs).into_iter().filter(|n| !known(n)) {
        tracing::info!(group = %gid, container = %name, "removing a container the group no longer has");
        stop(host, gid, &name, grace).await;
        if let Err(e) = remove_files(dirs, &name) {
            tracing::warn!(group = %gid, container = %name, error = %e, "cannot remove the files of a removed container");
        }
    }
    for name in changed {
        let cdir = dirs.container(name);
        state.event(
            EventType::Normal,
            "Killing",
            format!("Container {name} definition changed, will be restarted"),
            Some(name),
        );
        stop(host, gid, name, grace).await;
        // A fresh writable layer: it may lie over another image now.
        let res = berth_image::unmount_rootfs(&cdir)
            .map_err(io::Error::other)
            .and_then(|()| remove_tree(&dirs.container_rw(name)))
            .and_then(|()| remove_file(&cdir.join("exit.json")))
            .and_then(|()| remove_file(&cdir.join(FILE)));
        if let Err(e) = res {
            tracing::warn!(group = %gid, container = %name, error = %e, "cannot reset a changed container");
        }
    }
}

/// Stops a container as any stop does (its PreStop hook as it was started, SIGTERM, SIGKILL
/// after the grace period) and deletes it from the runtime.
async fn stop(host: &Arc<Host>, gid: &str, name: &str, grace: Duration) {
    let target = super::handler::Target::of(host, gid, name);
    let started_as = Revision::read(&target.cdir).map(|r| r.spec);
    super::handler::stop(&target, started_as.as_ref(), grace).await;
    let deleted = match target.runtime() {
        Ok(rt) => rt.delete(&target.rid).await.map_err(crate::NodeError::from),
        Err(e) => Err(e),
    };
    if let Err(e) = deleted {
        tracing::warn!(container = %target.rid, error = %e, "cannot delete container");
    }
}

fn remove_files(dirs: &GroupDirs, name: &str) -> io::Result<()> {
    let cdir = dirs.container(name);
    berth_image::unmount_rootfs(&cdir).map_err(io::Error::other)?;
    for d in [cdir, dirs.container_rw(name), dirs.logs(name)] {
        remove_tree(&d)?;
    }
    Ok(())
}

fn remove_file(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_tree(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::{ConfigFile, VolumeMount, VolumeSource};

    fn group(content: &str, mount: &str) -> GroupSpec {
        let c = ContainerSpec {
            name: "app".into(),
            image: "busybox".into(),
            volume_mounts: vec![VolumeMount {
                name: "cfg".into(),
                mount_path: mount.into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        GroupSpec {
            containers: vec![c],
            volumes: vec![Volume {
                name: "cfg".into(),
                source: VolumeSource::ConfigFile {
                    files: vec![ConfigFile {
                        path: "token".into(),
                        content: content.into(),
                        mode: None,
                    }],
                    default_mode: None,
                },
            }],
            ..Default::default()
        }
    }

    fn dirs(root: &Path) -> GroupDirs {
        crate::files::NodeDirs::new(root).group("eci-1")
    }

    /// Started from `g`: its revision written, its volume made as berth makes it.
    fn started(dirs: &GroupDirs, g: &GroupSpec, atomic: bool) {
        let cdir = dirs.container("app");
        std::fs::create_dir_all(&cdir).unwrap();
        Revision::of(g, &g.containers[0], false)
            .write(&cdir)
            .unwrap();
        let vol = super::super::volumes::source(dirs, &g.volumes[0]);
        std::fs::create_dir_all(&vol).unwrap();
        if atomic {
            std::os::unix::fs::symlink("..2026", vol.join("..data")).unwrap();
        }
    }

    #[test]
    fn a_second_container_moves_the_first_out_of_the_groups_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        let one = group("YQ==", "/etc/cfg");
        started(&d, &one, true);
        assert!(changed_app(&d, &one).is_empty());
        let mut two = one.clone();
        let mut side = two.containers[0].clone();
        side.name = "side".into();
        two.containers.push(side);
        // `app` ran in /berth/<group>; beside `side` it runs in /berth/<group>/app.
        assert_eq!(changed_app(&d, &two), ["app"]);
        let mut with_init = one.clone();
        with_init.init_containers.push(one.containers[0].clone());
        with_init.init_containers[0].name = "init".into();
        assert_eq!(changed_app(&d, &with_init), ["app"]);
    }

    #[test]
    fn only_new_contents_of_a_config_volume_change_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        started(&d, &group("YQ==", "/etc/cfg"), true);
        assert!(changed_app(&d, &group("YQ==", "/etc/cfg")).is_empty());
        assert!(
            changed_app(&d, &group("Yg==", "/etc/cfg")).is_empty(),
            "new contents are written in place"
        );
        assert_eq!(
            changed_app(&d, &group("Yg==", "/etc/other")),
            ["app"],
            "a new mount recreates"
        );
    }

    #[test]
    fn new_contents_of_a_volume_made_flat_recreate() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        started(&d, &group("YQ==", "/etc/cfg"), false);
        assert!(changed_app(&d, &group("YQ==", "/etc/cfg")).is_empty());
        assert_eq!(changed_app(&d, &group("Yg==", "/etc/cfg")), ["app"]);
    }
}
