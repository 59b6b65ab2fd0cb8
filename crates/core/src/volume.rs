//! Volumes of a group (`Volume.N.*`) and where its containers mount them
//! (`Container.N.VolumeMount.N.*`), as decoded from the API.

use serde::{Deserialize, Serialize};

/// Most volumes in one group.
pub const MAX_VOLUMES: usize = 32;
/// Most mounts of one container.
pub const MAX_VOLUME_MOUNTS: usize = 32;
/// Most files in one ConfigFile volume.
pub const MAX_CONFIG_FILES: usize = 64;
/// Most bytes of all config files of a group together, decoded.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;
/// Mode of a config file that names none, when its volume gives no `DefaultMode` (0644).
pub const DEFAULT_CONFIG_MODE: u32 = 0o644;

/// One volume of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// A DNS label, unique in the group.
    pub name: String,
    pub source: VolumeSource,
}

/// What a volume is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum VolumeSource {
    /// `EmptyDirVolume`: an empty directory shared by the group's containers.
    EmptyDir {
        #[serde(default)]
        medium: EmptyDirMedium,
        /// `SizeLimit` as given (a Kubernetes quantity), for the description.
        #[serde(default)]
        size_limit: Option<String>,
        /// `SizeLimit` in bytes.
        #[serde(default)]
        size_limit_bytes: Option<u64>,
    },
    /// `ConfigFileVolume`: files berth writes, mounted read-only.
    ConfigFile {
        files: Vec<ConfigFile>,
        /// `DefaultMode`: permission bits of files that give no `Mode`.
        #[serde(default)]
        default_mode: Option<u32>,
    },
    /// `NFSVolume`: an export berth mounts on the host for the group (only from servers the
    /// operator allows, see [`crate::volume_policy`]).
    Nfs {
        /// A host name or an IPv4 address.
        server: String,
        /// Absolute, normalised.
        path: String,
        /// Mounted read-only, for every container.
        #[serde(default)]
        read_only: bool,
    },
    /// `HostPathVolume`: a file or directory of the host below a prefix the operator allows
    /// (see [`crate::volume_policy`]).
    HostPath {
        /// Absolute, normalised, without `..`.
        path: String,
        #[serde(default)]
        kind: HostPathType,
    },
}

impl VolumeSource {
    /// ECI's `Type` of the volume.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::EmptyDir { .. } => "EmptyDirVolume",
            Self::ConfigFile { .. } => "ConfigFileVolume",
            Self::Nfs { .. } => "NFSVolume",
            Self::HostPath { .. } => "HostPathVolume",
        }
    }
}

/// `HostPathVolume.Type`: what must be at the path (Kubernetes' names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPathType {
    /// Empty: a directory or a regular file.
    #[default]
    Any,
    Directory,
    /// A directory, made (with its missing parents, mode 0755) when missing.
    DirectoryOrCreate,
    File,
}

impl HostPathType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" => Some(Self::Any),
            "Directory" => Some(Self::Directory),
            "DirectoryOrCreate" => Some(Self::DirectoryOrCreate),
            "File" => Some(Self::File),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "",
            Self::Directory => "Directory",
            Self::DirectoryOrCreate => "DirectoryOrCreate",
            Self::File => "File",
        }
    }
}

/// Where an emptyDir lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmptyDirMedium {
    /// In the group's temporary storage (counts against `EphemeralStorage`).
    #[default]
    Disk,
    /// A tmpfs (counts against the memory of the containers that write it).
    Memory,
}

/// One file of a ConfigFile volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFile {
    /// Relative to the volume, without `..`.
    pub path: String,
    /// The content, base64 as given.
    pub content: String,
    /// Permission bits; the volume's default mode when `None`.
    #[serde(default)]
    pub mode: Option<u32>,
}

/// How mounts below a volume propagate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountPropagation {
    /// `rprivate`.
    #[default]
    None,
    /// `rslave`.
    HostToContainer,
    /// `rshared` (refused by the API: see the decoder).
    Bidirectional,
}

impl MountPropagation {
    /// ECI's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::HostToContainer => "HostToContainer",
            Self::Bidirectional => "Bidirectional",
        }
    }
}

/// A volume mounted into a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The volume's name.
    pub name: String,
    /// Absolute, normalised (`/a/b`), never `/`.
    pub mount_path: String,
    /// Relative path inside the volume, normalised; `None` for the whole volume.
    #[serde(default)]
    pub sub_path: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub propagation: MountPropagation,
}

/// Bytes of a Kubernetes quantity (`256Mi`, `1Gi`, `500M`, `1024`): whole numbers with an
/// optional binary (`Ki` … `Ei`) or decimal (`k`, `M` … `E`) suffix; `None` for anything
/// else (fractions, exponents, signs, overflow).
pub fn parse_quantity(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    let (num, suffix) = s.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("256Mi"), Some(256 << 20));
        assert_eq!(parse_quantity("1Gi"), Some(1 << 30));
        assert_eq!(parse_quantity("500M"), Some(500_000_000));
        assert_eq!(parse_quantity("1024"), Some(1024));
        for bad in [
            "",
            "Mi",
            "1.5Gi",
            "-1Gi",
            "+1Gi",
            "1e9",
            "1 Gi",
            "1gi",
            "1GB",
            "20Ei",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn old_records_decode() {
        let m: VolumeMount = serde_json::from_str(r#"{"name":"v","mount_path":"/d"}"#).unwrap();
        assert_eq!(m.propagation, MountPropagation::None);
        let v: Volume =
            serde_json::from_str(r#"{"name":"v","source":{"type":"EmptyDir"}}"#).unwrap();
        assert_eq!(
            v.source,
            VolumeSource::EmptyDir {
                medium: EmptyDirMedium::Disk,
                size_limit: None,
                size_limit_bytes: None
            }
        );
    }
}
