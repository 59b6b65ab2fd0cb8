//! Fast task migration into cgroups: the cgroup2 mount option `favordynmods`.
//!
//! Every container start moves the container's init into its new cgroups (a write to
//! `cgroup.procs`). The kernel guards migrations with one global per-CPU rwsem whose writer
//! waits for an RCU grace period — unless a cgroup2 hierarchy is mounted with `favordynmods`
//! (Linux 6.0+), which keeps that lock in its reader-slow mode: forks and exits pay a few
//! atomic operations more, migrations stop waiting. On the 2-core reference host the first
//! `cgroup.procs` write of a `crun run` took 23 ms without the option and 0.02–0.04 ms with it.
//! The rwsem is global, so one cgroup2 mount with the option speeds up the v1 hierarchies of a
//! hybrid host as well. See docs/adr/0003-favordynmods.md.

use std::path::Path;

use nix::mount::{mount, MsFlags};

use crate::cgroup::CgroupLayout;

/// What [`favor_dynmods`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynmodsOutcome {
    /// The cgroup2 mount already had the option.
    AlreadyOn,
    /// The cgroup2 mount was remounted with the option.
    Enabled,
    /// The host has no cgroup2 mount to set it on.
    NoCgroup2,
    /// The kernel or the mount refused; migrations keep waiting for RCU.
    Failed(String),
}

/// Turns `favordynmods` on for the host's cgroup2 mount, keeping its other options.
pub fn favor_dynmods(layout: &CgroupLayout) -> DynmodsOutcome {
    let mount_point = match layout {
        CgroupLayout::V2 { root } => root.as_path(),
        CgroupLayout::Hybrid { unified, .. } => unified.as_path(),
        CgroupLayout::V1 { .. } => return DynmodsOutcome::NoCgroup2,
    };
    let read = || std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(opts) = cgroup2_options(&read(), mount_point) else {
        return DynmodsOutcome::Failed(format!("{} is not in mountinfo", mount_point.display()));
    };
    if opts.is_on() {
        return DynmodsOutcome::AlreadyOn;
    }
    let (flags, data) = opts.remount_args();
    if let Err(e) = mount(
        None::<&str>,
        mount_point,
        None::<&str>,
        flags,
        Some(data.as_str()),
    ) {
        return DynmodsOutcome::Failed(format!(
            "remounting {} with {data}: {e}",
            mount_point.display()
        ));
    }
    match cgroup2_options(&read(), mount_point) {
        Some(o) if o.is_on() => DynmodsOutcome::Enabled,
        _ => DynmodsOutcome::Failed("the kernel ignored the option".into()),
    }
}

/// A cgroup2 mount's per-mount and superblock options, as mountinfo lists them.
#[derive(Debug, PartialEq, Eq)]
struct MountOptions {
    per_mount: Vec<String>,
    superblock: Vec<String>,
}

impl MountOptions {
    fn is_on(&self) -> bool {
        self.superblock.iter().any(|o| o == "favordynmods")
    }

    /// The flags and data of a remount that adds `favordynmods` and keeps everything else.
    fn remount_args(&self) -> (MsFlags, String) {
        let mut flags = MsFlags::MS_REMOUNT;
        for o in &self.per_mount {
            flags |= match o.as_str() {
                "ro" => MsFlags::MS_RDONLY,
                "nosuid" => MsFlags::MS_NOSUID,
                "nodev" => MsFlags::MS_NODEV,
                "noexec" => MsFlags::MS_NOEXEC,
                "noatime" => MsFlags::MS_NOATIME,
                "nodiratime" => MsFlags::MS_NODIRATIME,
                "relatime" => MsFlags::MS_RELATIME,
                "strictatime" => MsFlags::MS_STRICTATIME,
                _ => MsFlags::empty(),
            };
        }
        let mut data: Vec<&str> = self
            .superblock
            .iter()
            .map(String::as_str)
            .filter(|o| !matches!(*o, "rw" | "ro"))
            .collect();
        data.push("favordynmods");
        (flags, data.join(","))
    }
}

/// The options of the cgroup2 mount at `mount_point`, from mountinfo text.
fn cgroup2_options(mountinfo: &str, mount_point: &Path) -> Option<MountOptions> {
    let want = mount_point.to_str()?;
    mountinfo.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        if fields.get(4) != Some(&want) || right.next() != Some("cgroup2") {
            return None;
        }
        let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        Some(MountOptions {
            per_mount: split(fields.get(5)?),
            superblock: split(right.nth(1)?),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
34 25 0:29 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
35 25 0:30 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn reads_the_options_of_the_cgroup2_mount() {
        let o = cgroup2_options(INFO, Path::new("/sys/fs/cgroup/unified")).expect("found");
        assert_eq!(o.per_mount, ["rw", "nosuid", "nodev", "noexec", "relatime"]);
        assert_eq!(o.superblock, ["rw", "nsdelegate", "memory_recursiveprot"]);
        assert!(!o.is_on());
        assert!(cgroup2_options(INFO, Path::new("/sys/fs/cgroup/memory")).is_none());
    }

    #[test]
    fn the_remount_keeps_every_other_option() {
        let o = cgroup2_options(INFO, Path::new("/sys/fs/cgroup/unified")).expect("found");
        let (flags, data) = o.remount_args();
        assert_eq!(
            flags,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC
                | MsFlags::MS_RELATIME
        );
        assert_eq!(data, "nsdelegate,memory_recursiveprot,favordynmods");
    }

    #[test]
    fn an_option_already_set_is_seen() {
        let info = INFO.replace("memory_recursiveprot", "favordynmods");
        let o = cgroup2_options(&info, Path::new("/sys/fs/cgroup/unified")).expect("found");
        assert!(o.is_on());
    }

    /// On this host (root tests): the option ends up on and stays on when asked again.
    #[test]
    fn the_host_ends_up_with_the_option() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let layout = CgroupLayout::detect().expect("cgroup layout");
        match favor_dynmods(&layout) {
            DynmodsOutcome::Enabled | DynmodsOutcome::AlreadyOn | DynmodsOutcome::NoCgroup2 => {}
            DynmodsOutcome::Failed(e) => panic!("favordynmods: {e}"),
        }
        if layout.unified_to_hide().is_some() {
            assert_eq!(favor_dynmods(&layout), DynmodsOutcome::AlreadyOn);
        }
    }
}
