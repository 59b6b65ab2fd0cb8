//! Profiles of the client: `$XDG_CONFIG_HOME/berth/config.toml` (else
//! `~/.config/berth/config.toml`) names endpoints with their keys, region and CA file, one
//! of which `--profile NAME` or `BERTH_PROFILE` picks (else the file's `default_profile`).
//! Flags and environment variables override what the profile says (`settings.rs`).
//!
//! ```toml
//! default_profile = "local"
//!
//! [profiles.local]
//! endpoint = "http://127.0.0.1:8080"
//! credentials = "/var/lib/berth/credentials.json"
//!
//! [profiles.prod]
//! endpoint = "https://eci.example.com:8443"
//! access_key_id = "LTAI..."
//! access_key_secret = "..."
//! region = "local"
//! ca_file = "~/prod-ca.pem"
//! ```
//!
//! A file holding a secret that its group or others may read is refused.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// Largest config file read.
const MAX_FILE: u64 = 1024 * 1024;
/// Most profiles in one file.
const MAX_PROFILES: usize = 256;

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    default_profile: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// One profile; every field may be left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    pub(crate) endpoint: Option<String>,
    /// A credentials file as `--credentials` reads it.
    pub(crate) credentials: Option<PathBuf>,
    pub(crate) access_key_id: Option<String>,
    pub(crate) access_key_secret: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) ca_file: Option<PathBuf>,
}

/// Where the config file is, from the environment through `env`: `$XDG_CONFIG_HOME` when
/// it is an absolute path (as the XDG specification says), else `$HOME/.config`.
pub(crate) fn config_path(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".config"))
        })?;
    Some(base.join("berth").join("config.toml"))
}

/// Checks and reads the text of `path`; relative paths of its profiles are taken from the
/// file's directory, `~/` from `home`.
pub(crate) fn parse(text: &str, path: &Path, home: Option<&Path>) -> anyhow::Result<Config> {
    let mut c: Config = toml::from_str(text)
        .with_context(|| format!("{} is not a berth config", path.display()))?;
    if c.profiles.len() > MAX_PROFILES {
        bail!("{} has more than {MAX_PROFILES} profiles", path.display());
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    for (name, p) in &mut c.profiles {
        if p.access_key_id.is_some() != p.access_key_secret.is_some() {
            bail!(
                "profile {name} of {} has one half of an access key: give both access_key_id and access_key_secret",
                path.display()
            );
        }
        if p.credentials.is_some() && p.access_key_id.is_some() {
            bail!(
                "profile {name} of {} has both credentials and access_key_id: keep one",
                path.display()
            );
        }
        for f in [&mut p.credentials, &mut p.ca_file].into_iter().flatten() {
            *f = expand(f, dir, home);
        }
    }
    if let Some(d) = &c.default_profile {
        if !c.profiles.contains_key(d) {
            bail!(
                "default_profile {d:?} of {} is not one of its profiles",
                path.display()
            );
        }
    }
    Ok(c)
}

fn expand(p: &Path, dir: &Path, home: Option<&Path>) -> PathBuf {
    if let (Ok(rest), Some(home)) = (p.strip_prefix("~"), home) {
        return home.join(rest);
    }
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Whether any profile holds a secret.
fn holds_secret(c: &Config) -> bool {
    c.profiles.values().any(|p| p.access_key_secret.is_some())
}

/// Reads the config file at `path`: `None` when there is none.
pub(crate) fn load(path: &Path, home: Option<&Path>) -> anyhow::Result<Option<Config>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if !meta.is_file() || meta.len() > MAX_FILE {
        bail!(
            "{} is not a file of at most {} KiB",
            path.display(),
            MAX_FILE / 1024
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let c = parse(&text, path, home)?;
    if holds_secret(&c) && meta.mode() & 0o077 != 0 {
        bail!(
            "{p} holds an access key secret and other users can read it: run `chmod 600 {p}`",
            p = path.display()
        );
    }
    Ok(Some(c))
}

/// The profile `wanted` (`--profile`, `BERTH_PROFILE`) or else the file's default; `None`
/// when neither names one.
pub(crate) fn select(
    config: Option<&Config>,
    wanted: Option<&str>,
    path: &Path,
) -> anyhow::Result<Option<(String, Profile)>> {
    let name = match (wanted, config.and_then(|c| c.default_profile.as_deref())) {
        (Some(w), _) => w,
        (None, Some(d)) => d,
        (None, None) => return Ok(None),
    };
    let Some(c) = config else {
        bail!(
            "profile {name:?} asked for, but there is no config file {}",
            path.display()
        );
    };
    match c.profiles.get(name) {
        Some(p) => Ok(Some((name.to_string(), p.clone()))),
        None => {
            let known: Vec<&str> = c.profiles.keys().map(String::as_str).collect();
            bail!(
                "no profile {name:?} in {} (its profiles: {})",
                path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const TEXT: &str = r#"
default_profile = "local"

[profiles.local]
endpoint = "http://127.0.0.1:8080"
credentials = "creds.json"

[profiles.prod]
endpoint = "https://eci.example:8443"
access_key_id = "LTAIa"
access_key_secret = "s"
region = "r1"
ca_file = "~/ca.pem"
"#;

    #[test]
    fn the_config_path_follows_xdg() {
        let env = |xdg: Option<&'static str>, home: Option<&'static str>| {
            config_path(move |k| match k {
                "XDG_CONFIG_HOME" => xdg.map(str::to_string),
                "HOME" => home.map(str::to_string),
                _ => None,
            })
        };
        assert_eq!(
            env(Some("/x"), Some("/h")),
            Some(PathBuf::from("/x/berth/config.toml"))
        );
        assert_eq!(
            env(Some("relative"), Some("/h")),
            Some(PathBuf::from("/h/.config/berth/config.toml"))
        );
        assert_eq!(env(None, None), None);
    }

    #[test]
    fn profiles_are_selected_and_paths_resolved() {
        let path = Path::new("/etc/b/config.toml");
        let c = parse(TEXT, path, Some(Path::new("/home/u"))).unwrap();
        let (name, p) = select(Some(&c), None, path).unwrap().unwrap();
        assert_eq!(name, "local");
        assert_eq!(p.credentials, Some(PathBuf::from("/etc/b/creds.json")));
        let (_, p) = select(Some(&c), Some("prod"), path).unwrap().unwrap();
        assert_eq!(p.ca_file, Some(PathBuf::from("/home/u/ca.pem")));
        assert_eq!(p.region.as_deref(), Some("r1"));
        let e = select(Some(&c), Some("nope"), path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("local, prod"), "{e}");
        assert!(select(None, Some("x"), path).is_err());
        assert_eq!(select(None, None, path).unwrap(), None);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let path = Path::new("/c.toml");
        for (text, why) in [
            ("[profiles.a]\nendpont = \"x\"\n", "not a berth config"),
            ("[profiles.a]\naccess_key_id = \"x\"\n", "one half"),
            (
                "[profiles.a]\ncredentials = \"c\"\naccess_key_id = \"x\"\naccess_key_secret = \"y\"\n",
                "keep one",
            ),
            ("default_profile = \"b\"\n[profiles.a]\n", "not one of its profiles"),
        ] {
            let e = format!("{:#}", parse(text, path, None).unwrap_err());
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn a_readable_file_with_a_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, TEXT).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&path, None).unwrap_err().to_string();
        assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&path, None).unwrap().is_some());
        // Without a secret, the file may be readable.
        std::fs::write(&path, "[profiles.a]\nendpoint = \"h:1\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&path, None).unwrap().is_some());
        assert!(load(&dir.path().join("none.toml"), None).unwrap().is_none());
    }
}
