//! The volumes of the create form beyond the `NAME:/path[:ro]` lines: one fieldset a volume,
//! of each type CreateContainerGroup takes — an emptyDir on disk or in memory (`SizeLimit`),
//! a config-file volume (its files' paths, contents typed as text and sent in base64, modes),
//! an NFS export and a host path (offered only when the operator allows some: `berth serve
//! --nfs-server`, `--host-path-prefix`) — each with its mount in the container (`MountPath`,
//! `SubPath`, `ReadOnly`). The API checks every value; the form sends what was entered.
//! There are as many fieldsets as the volumes entered and one more (more after "Show the
//! command"), and as many file rows, up to the API's bounds.

use std::collections::BTreeMap;

use base64::Engine;
use berth_core::volume::{MAX_CONFIG_FILES, MAX_VOLUMES};
use maud::{html, Markup};

use crate::api::kv;

/// What the operator allows beyond the group's own volumes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offered {
    pub nfs: bool,
    pub host_path: bool,
}

impl Offered {
    pub fn of(policy: &berth_core::VolumePolicy) -> Self {
        Self {
            nfs: policy.nfs_servers().next().is_some(),
            host_path: policy.host_path_prefixes().next().is_some(),
        }
    }
}

/// One file of a config-file volume.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct File {
    pub path: String,
    /// The content as text (sent base64-encoded).
    pub content: String,
    /// Decimal, as the API takes it (420 is 0644).
    pub mode: String,
}

impl File {
    fn is_empty(&self) -> bool {
        self.path.is_empty() && self.content.is_empty() && self.mode.is_empty()
    }
}

/// One volume of the form and its mount in the container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slot {
    pub name: String,
    /// `disk`, `memory`, `config`, `nfs`, `hostpath`; empty: the slot is not used.
    pub kind: String,
    pub size_limit: String,
    pub default_mode: String,
    pub files: BTreeMap<u32, File>,
    pub server: String,
    pub export: String,
    pub host_path: String,
    pub host_path_type: String,
    pub mount_path: String,
    pub sub_path: String,
    pub read_only: bool,
}

impl Slot {
    /// Nothing entered (empty file rows aside): the slot is not used.
    fn is_empty(&self) -> bool {
        self.files.values().all(File::is_empty)
            && Self {
                files: BTreeMap::new(),
                ..self.clone()
            } == Self::default()
    }

    fn files(&self) -> impl Iterator<Item = &File> {
        self.files.values().filter(|f| !f.is_empty())
    }
}

/// The volume slots of a form, by number.
pub type Slots = BTreeMap<u32, Slot>;

/// Takes the form field `key` (`vol.N.FIELD` or `vol.N.file.M.FIELD`) into `slots`; `false`
/// when it is no field of a volume slot.
pub fn take(slots: &mut Slots, key: &str, value: String) -> bool {
    let Some(rest) = key.strip_prefix("vol.") else {
        return false;
    };
    let Some((n, field)) = rest.split_once('.') else {
        return false;
    };
    let Some(n) = n.parse::<u32>().ok().filter(|n| *n >= 1) else {
        return false;
    };
    let s = slots.entry(n).or_default();
    let text = value.trim().to_string();
    match field {
        "name" => s.name = text,
        "kind" => s.kind = text,
        "size_limit" => s.size_limit = text,
        "default_mode" => s.default_mode = text,
        "server" => s.server = text,
        "export" => s.export = text,
        "host_path" => s.host_path = text,
        "host_path_type" => s.host_path_type = text,
        "mount_path" => s.mount_path = text,
        "sub_path" => s.sub_path = text,
        "read_only" => s.read_only = true,
        _ => {
            let Some((m, f)) = field.strip_prefix("file.").and_then(|r| r.split_once('.')) else {
                return false;
            };
            let Some(m) = m.parse::<u32>().ok().filter(|m| *m >= 1) else {
                return false;
            };
            let file = s.files.entry(m).or_default();
            match f {
                "path" => file.path = text,
                // The content as typed, not trimmed.
                "content" => file.content = value,
                "mode" => file.mode = text,
                _ => return false,
            }
        }
    }
    true
}

/// The API's name of a slot's type.
fn api_type(kind: &str) -> &str {
    match kind {
        "disk" | "memory" => "EmptyDirVolume",
        "config" => "ConfigFileVolume",
        "nfs" => "NFSVolume",
        "hostpath" => "HostPathVolume",
        other => other,
    }
}

/// CreateContainerGroup's parameters of the used slots, numbered after `volumes` volumes and
/// `mounts` mounts of the container the form already gave. Every field entered is sent under
/// its API name, whatever the type: a field of another type is the API's refusal, naming it,
/// not something dropped.
pub fn params(slots: &Slots, volumes: usize, mounts: usize) -> Vec<(String, String)> {
    let mut p = Vec::new();
    let used = slots.values().filter(|s| !s.is_empty());
    let mut mount = mounts;
    for (i, s) in used.enumerate() {
        let v = format!("Volume.{}", volumes + i + 1);
        let mut put = |field: &str, value: &str| {
            if !value.is_empty() {
                p.push(kv(format!("{v}.{field}"), value));
            }
        };
        put("Name", &s.name);
        put("Type", api_type(&s.kind));
        if s.kind == "memory" {
            put("EmptyDirVolume.Medium", "Memory");
        }
        put("EmptyDirVolume.SizeLimit", &s.size_limit);
        put("ConfigFileVolume.DefaultMode", &s.default_mode);
        for (j, f) in s.files().enumerate() {
            let f_ = format!("ConfigFileVolume.ConfigFileToPath.{}", j + 1);
            p.push(kv(format!("{v}.{f_}.Path"), &f.path));
            p.push(kv(
                format!("{v}.{f_}.Content"),
                base64::engine::general_purpose::STANDARD.encode(f.content.as_bytes()),
            ));
            if !f.mode.is_empty() {
                p.push(kv(format!("{v}.{f_}.Mode"), &f.mode));
            }
        }
        let mut put = |field: &str, value: &str| {
            if !value.is_empty() {
                p.push(kv(format!("{v}.{field}"), value));
            }
        };
        put("NFSVolume.Server", &s.server);
        put("NFSVolume.Path", &s.export);
        if s.kind == "nfs" && s.read_only {
            put("NFSVolume.ReadOnly", "true");
        }
        put("HostPathVolume.Path", &s.host_path);
        put("HostPathVolume.Type", &s.host_path_type);
        let read_only_mount = s.read_only && s.kind != "nfs";
        if !s.mount_path.is_empty() || !s.sub_path.is_empty() || read_only_mount {
            mount += 1;
            let m = format!("Container.1.VolumeMount.{mount}");
            p.push(kv(format!("{m}.Name"), &s.name));
            p.push(kv(format!("{m}.MountPath"), &s.mount_path));
            if !s.sub_path.is_empty() {
                p.push(kv(format!("{m}.SubPath"), &s.sub_path));
            }
            if s.read_only {
                p.push(kv(format!("{m}.ReadOnly"), "true"));
            }
        }
    }
    p
}

/// The Python SDK's `models.CreateContainerGroupRequestVolume(...)` of the used slots, and
/// their `models.CreateContainerGroupRequestContainerVolumeMount(...)`.
pub fn python(slots: &Slots) -> (Vec<String>, Vec<String>) {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut vols = Vec::new();
    let mut mounts = Vec::new();
    for s in slots.values().filter(|s| !s.is_empty()) {
        let source = match s.kind.as_str() {
            "disk" | "memory" => {
                let mut a = Vec::new();
                if s.kind == "memory" {
                    a.push("medium=\"Memory\"".to_string());
                }
                if !s.size_limit.is_empty() {
                    a.push(format!("size_limit={}", q(&s.size_limit)));
                }
                format!(
                    ", empty_dir_volume=models.CreateContainerGroupRequestVolumeEmptyDirVolume({})",
                    a.join(", ")
                )
            }
            "config" => {
                let files: Vec<String> = s
                    .files()
                    .map(|f| {
                        let mode = if f.mode.is_empty() {
                            String::new()
                        } else {
                            format!(", mode={}", f.mode)
                        };
                        format!(
                            "models.CreateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath(path={}, content={}{mode})",
                            q(&f.path),
                            q(&base64::engine::general_purpose::STANDARD.encode(f.content.as_bytes()))
                        )
                    })
                    .collect();
                format!(
                    ", config_file_volume=models.CreateContainerGroupRequestVolumeConfigFileVolume(config_file_to_path=[{}])",
                    files.join(", ")
                )
            }
            "nfs" => format!(
                ", nfsvolume=models.CreateContainerGroupRequestVolumeNFSVolume(server={}, path={}, read_only={})",
                q(&s.server),
                q(&s.export),
                if s.read_only { "True" } else { "False" }
            ),
            "hostpath" => format!(
                ", host_path_volume=models.CreateContainerGroupRequestVolumeHostPathVolume(path={}, type={})",
                q(&s.host_path),
                q(&s.host_path_type)
            ),
            _ => String::new(),
        };
        vols.push(format!(
            "models.CreateContainerGroupRequestVolume(name={}, type={}{source})",
            q(&s.name),
            q(api_type(&s.kind))
        ));
        if !s.mount_path.is_empty() {
            let sub = if s.sub_path.is_empty() {
                String::new()
            } else {
                format!(", sub_path={}", q(&s.sub_path))
            };
            mounts.push(format!(
                "models.CreateContainerGroupRequestContainerVolumeMount(name={}, mount_path={}{sub}, read_only={})",
                q(&s.name),
                q(&s.mount_path),
                if s.read_only { "True" } else { "False" }
            ));
        }
    }
    (vols, mounts)
}

/// Whether any slot is used (`berth run` has flags for none of them).
pub fn any(slots: &Slots) -> bool {
    slots.values().any(|s| !s.is_empty())
}

/// The fieldsets: the slots entered and one empty one more, up to [`MAX_VOLUMES`].
pub fn render(slots: &Slots, offered: Offered) -> Markup {
    let used = slots.values().filter(|s| !s.is_empty()).count();
    let count = (used + 1).min(MAX_VOLUMES);
    let mut shown: Vec<Slot> = slots.values().filter(|s| !s.is_empty()).cloned().collect();
    shown.resize(count, Slot::default());
    html! {
        @for (i, s) in shown.iter().enumerate() {
            (slot(i + 1, s, offered))
        }
    }
}

fn slot(n: usize, s: &Slot, offered: Offered) -> Markup {
    let id = |f: &str| format!("vol-{n}-{f}");
    let name = |f: &str| format!("vol.{n}.{f}");
    let mut kinds = vec![
        ("", "Not used"),
        ("disk", "emptyDir on the group's storage"),
        ("memory", "emptyDir in memory"),
        ("config", "Config files"),
    ];
    if offered.nfs || s.kind == "nfs" {
        kinds.push(("nfs", "NFS export"));
    }
    if offered.host_path || s.kind == "hostpath" {
        kinds.push(("hostpath", "Host path"));
    }
    let mut files: Vec<File> = s.files().cloned().collect();
    files.resize((files.len() + 1).min(MAX_CONFIG_FILES), File::default());
    html! {
        fieldset.volume {
            legend { "Volume " (n) }
            label for=(id("name")) { "Volume name" }
            input id=(id("name")) name=(name("name")) value=(s.name);
            label for=(id("kind")) { "Volume type" }
            select id=(id("kind")) name=(name("kind")) {
                @for (v, label) in &kinds {
                    option value=(v) selected[s.kind == *v] { (label) }
                }
            }
            label for=(id("size_limit")) { "Size limit (emptyDir, e.g. 64Mi; empty: none)" }
            input id=(id("size_limit")) name=(name("size_limit")) value=(s.size_limit);
            label for=(id("default_mode")) { "Default mode of the files (config files; decimal, 420 is 0644)" }
            input id=(id("default_mode")) name=(name("default_mode")) value=(s.default_mode);
            @for (j, f) in files.iter().enumerate() {
                @let fid = |x: &str| format!("vol-{n}-file-{}-{x}", j + 1);
                @let fname = |x: &str| format!("vol.{n}.file.{}.{x}", j + 1);
                div.file {
                    label for=(fid("path")) { "File " (j + 1) " path (config files; relative to the volume)" }
                    input id=(fid("path")) name=(fname("path")) value=(f.path);
                    label for=(fid("content")) { "File " (j + 1) " content" }
                    textarea id=(fid("content")) name=(fname("content")) rows="3" { (f.content) }
                    label for=(fid("mode")) { "File " (j + 1) " mode (decimal; empty: the default)" }
                    input id=(fid("mode")) name=(fname("mode")) value=(f.mode);
                }
            }
            @if offered.nfs || s.kind == "nfs" {
                label for=(id("server")) { "NFS server" }
                input id=(id("server")) name=(name("server")) value=(s.server);
                label for=(id("export")) { "NFS export path" }
                input id=(id("export")) name=(name("export")) value=(s.export);
            }
            @if offered.host_path || s.kind == "hostpath" {
                label for=(id("host_path")) { "Host path" }
                input id=(id("host_path")) name=(name("host_path")) value=(s.host_path);
                label for=(id("host_path_type")) { "Host path type" }
                select id=(id("host_path_type")) name=(name("host_path_type")) {
                    @for t in ["", "Directory", "DirectoryOrCreate", "File"] {
                        option value=(t) selected[s.host_path_type == t] { @if t.is_empty() { "Any" } @else { (t) } }
                    }
                }
            }
            label for=(id("mount_path")) { "Mount path in the container (empty: not mounted)" }
            input id=(id("mount_path")) name=(name("mount_path")) value=(s.mount_path);
            label for=(id("sub_path")) { "Sub-path of the volume to mount (empty: all of it)" }
            input id=(id("sub_path")) name=(name("sub_path")) value=(s.sub_path);
            div.check {
                input id=(id("read_only")) name=(name("read_only")) type="checkbox" value="on" checked[s.read_only];
                label for=(id("read_only")) { "Read-only (the mount; an NFS volume mounted read-only)" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(fields: &[(&str, &str)]) -> Slots {
        let mut s = Slots::new();
        for (k, v) in fields {
            assert!(take(&mut s, k, v.to_string()), "{k}");
        }
        s
    }

    #[test]
    fn slots_become_volumes_and_mounts_after_the_lines() {
        let s = slots(&[
            ("vol.1.name", "conf"),
            ("vol.1.kind", "config"),
            ("vol.1.default_mode", "384"),
            ("vol.1.file.1.path", "app/app.conf"),
            ("vol.1.file.1.content", "a = 1\n"),
            ("vol.1.file.1.mode", "420"),
            ("vol.1.file.2.path", ""),
            ("vol.1.file.2.content", ""),
            ("vol.1.mount_path", "/etc/app"),
            ("vol.1.read_only", "on"),
            ("vol.2.name", ""),
            ("vol.2.kind", ""),
            ("vol.3.name", "shm"),
            ("vol.3.kind", "memory"),
            ("vol.3.size_limit", "64Mi"),
            ("vol.3.mount_path", "/dev/shm"),
            ("vol.3.sub_path", "x"),
            ("vol.4.name", "n"),
            ("vol.4.kind", "nfs"),
            ("vol.4.server", "nfs.local"),
            ("vol.4.export", "/srv"),
            ("vol.5.name", "h"),
            ("vol.5.kind", "hostpath"),
            ("vol.5.host_path", "/srv/data"),
            ("vol.5.host_path_type", "Directory"),
        ]);
        let p = params(&s, 1, 1);
        let want = [
            ("Volume.2.Name", "conf"),
            ("Volume.2.Type", "ConfigFileVolume"),
            ("Volume.2.ConfigFileVolume.DefaultMode", "384"),
            (
                "Volume.2.ConfigFileVolume.ConfigFileToPath.1.Path",
                "app/app.conf",
            ),
            (
                "Volume.2.ConfigFileVolume.ConfigFileToPath.1.Content",
                "YSA9IDEK",
            ),
            ("Volume.2.ConfigFileVolume.ConfigFileToPath.1.Mode", "420"),
            ("Container.1.VolumeMount.2.Name", "conf"),
            ("Container.1.VolumeMount.2.MountPath", "/etc/app"),
            ("Container.1.VolumeMount.2.ReadOnly", "true"),
            ("Volume.3.Name", "shm"),
            ("Volume.3.Type", "EmptyDirVolume"),
            ("Volume.3.EmptyDirVolume.Medium", "Memory"),
            ("Volume.3.EmptyDirVolume.SizeLimit", "64Mi"),
            ("Container.1.VolumeMount.3.Name", "shm"),
            ("Container.1.VolumeMount.3.MountPath", "/dev/shm"),
            ("Container.1.VolumeMount.3.SubPath", "x"),
            ("Volume.4.Name", "n"),
            ("Volume.4.Type", "NFSVolume"),
            ("Volume.4.NFSVolume.Server", "nfs.local"),
            ("Volume.4.NFSVolume.Path", "/srv"),
            ("Volume.5.Name", "h"),
            ("Volume.5.Type", "HostPathVolume"),
            ("Volume.5.HostPathVolume.Path", "/srv/data"),
            ("Volume.5.HostPathVolume.Type", "Directory"),
        ];
        assert_eq!(p, want.iter().map(|(k, v)| kv(*k, *v)).collect::<Vec<_>>());
    }

    #[test]
    fn a_field_of_another_type_is_sent_for_the_api_to_refuse() {
        let s = slots(&[
            ("vol.1.name", "d"),
            ("vol.1.kind", "disk"),
            ("vol.1.file.1.path", "a"),
            ("vol.1.server", "nfs.local"),
        ]);
        let p = params(&s, 0, 0);
        assert!(p.contains(&kv(
            "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Path",
            "a"
        )));
        assert!(p.contains(&kv("Volume.1.NFSVolume.Server", "nfs.local")));
    }

    #[test]
    fn a_slot_without_a_type_is_sent_for_the_api_to_refuse() {
        let s = slots(&[("vol.1.name", "x"), ("vol.1.kind", "")]);
        assert_eq!(params(&s, 0, 0), vec![kv("Volume.1.Name", "x")]);
    }

    #[test]
    fn fields_of_no_slot_are_not_taken() {
        let mut s = Slots::new();
        for k in [
            "vol.0.name",
            "vol.x.name",
            "vol.1",
            "vol.1.other",
            "vol.1.file.1.other",
            "vol.1.file.0.path",
            "name",
        ] {
            assert!(!take(&mut s, k, "v".into()), "{k}");
        }
    }

    #[test]
    fn nfs_and_host_paths_are_offered_only_when_allowed() {
        let none = render(&Slots::new(), Offered::default()).into_string();
        assert!(!none.contains("value=\"nfs\"") && !none.contains("value=\"hostpath\""));
        assert!(none.contains("value=\"config\""));
        let policy = berth_core::VolumePolicy::default().with_nfs_servers(["nfs.local"]);
        let nfs = render(&Slots::new(), Offered::of(&policy)).into_string();
        assert!(nfs.contains("value=\"nfs\"") && !nfs.contains("value=\"hostpath\""));
    }
}
