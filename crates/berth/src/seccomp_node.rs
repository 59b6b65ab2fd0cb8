//! Per-account seccomp profiles: the operator's profile files checked before they are stored
//! (`berth admin account set-seccomp`), and the node's view of the stored settings.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use berth_core::GroupId;
use berth_node::SeccompProfiles;
use berth_runtime::seccomp::{Profile, Seccomp, MAX_PROFILE_BYTES};
use berth_store::{AccountSeccomp, Store};

/// Parsed profiles kept by their text; beyond this many the map starts over.
const MAX_PARSED: usize = 64;

/// What `set-seccomp` stores for `arg`: `default`, `unconfined`, or the path of a profile
/// file, which must be a valid profile that libseccomp compiles for this host.
pub fn setting(arg: &str) -> anyhow::Result<AccountSeccomp> {
    match arg {
        "default" => return Ok(AccountSeccomp::Default),
        "unconfined" => return Ok(AccountSeccomp::Unconfined),
        _ => {}
    }
    let path = Path::new(arg);
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read the profile {}", path.display()))?
        .len();
    if len > MAX_PROFILE_BYTES as u64 {
        bail!(
            "the profile {} is {len} bytes, more than the {MAX_PROFILE_BYTES} allowed",
            path.display()
        );
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the profile {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("the profile {} is not UTF-8 text", path.display()))?;
    check(&text).with_context(|| format!("{} cannot be used", path.display()))?;
    Ok(AccountSeccomp::Profile(text))
}

/// Parses `text` and compiles it for a container with the default capabilities here.
fn check(text: &str) -> anyhow::Result<Profile> {
    let profile = Profile::parse(text.as_bytes())?;
    profile.check_compiles()?;
    Ok(profile)
}

/// Profiles parsed once, kept by their text.
#[derive(Default)]
pub(crate) struct ParsedProfiles(Mutex<HashMap<String, Arc<Profile>>>);

impl ParsedProfiles {
    /// The confinement a stored setting stands for.
    pub(crate) fn seccomp(&self, setting: AccountSeccomp) -> Result<Seccomp, String> {
        let text = match setting {
            AccountSeccomp::Default => return Ok(Seccomp::Default),
            AccountSeccomp::Unconfined => return Ok(Seccomp::Unconfined),
            AccountSeccomp::Profile(text) => text,
        };
        let mut parsed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = parsed.get(&text) {
            return Ok(Seccomp::Profile(p.clone()));
        }
        let profile =
            Profile::parse(text.as_bytes()).map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
        let profile = Arc::new(profile);
        if parsed.len() >= MAX_PARSED {
            parsed.clear();
        }
        parsed.insert(text, profile.clone());
        Ok(Seccomp::Profile(profile))
    }
}

/// The node's [`SeccompProfiles`] over the store: the setting is read at every group start,
/// a stored profile parsed once.
pub struct StoreSeccomp {
    store: Arc<dyn Store>,
    parsed: ParsedProfiles,
}

impl StoreSeccomp {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            parsed: ParsedProfiles::default(),
        }
    }
}

#[async_trait::async_trait]
impl SeccompProfiles for StoreSeccomp {
    async fn for_group(&self, _group: &GroupId, account: &str) -> Result<Seccomp, String> {
        let setting = self
            .store
            .account_seccomp(account)
            .await
            .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
        self.parsed.seccomp(setting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_file_is_checked_before_it_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.to_string_lossy().into_owned()
        };
        assert_eq!(setting("default").unwrap(), AccountSeccomp::Default);
        assert_eq!(setting("unconfined").unwrap(), AccountSeccomp::Unconfined);
        let good = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["keyctl"],"action":"SCMP_ACT_ERRNO"}]}"#;
        assert_eq!(
            setting(&write("good.json", good)).unwrap(),
            AccountSeccomp::Profile(good.into())
        );
        for (name, text, says) in [
            ("bad.json", "{not json", "not a seccomp profile"),
            (
                "action.json",
                r#"{"defaultAction":"SCMP_ACT_MAYBE"}"#,
                "unknown variant `SCMP_ACT_MAYBE`",
            ),
            (
                "field.json",
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscals":[]}"#,
                "unknown field `syscals`",
            ),
        ] {
            let err = format!("{:#}", setting(&write(name, text)).unwrap_err());
            assert!(err.contains(says), "{name}: {err}");
        }
        let big = write("big.json", &" ".repeat(MAX_PROFILE_BYTES + 1));
        assert!(format!("{:#}", setting(&big).unwrap_err()).contains("more than"));
        assert!(setting("/nonexistent/profile.json").is_err());
    }
}
