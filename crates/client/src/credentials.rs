//! Access keys for the client: a JSON file `{"AccessKeyId": "…", "AccessKeySecret": "…"}` or
//! the environment variables `BERTH_ACCESS_KEY_ID` and `BERTH_ACCESS_KEY_SECRET`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const ENV_ACCESS_KEY_ID: &str = "BERTH_ACCESS_KEY_ID";
pub const ENV_ACCESS_KEY_SECRET: &str = "BERTH_ACCESS_KEY_SECRET";

/// An AccessKey pair. `Debug` does not show the secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read credentials file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials file {path} is not {{\"AccessKeyId\": …, \"AccessKeySecret\": …}}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0} is empty or unset while the other half of the access key is set")]
    Incomplete(&'static str),
    #[error("no credentials: give a credentials file or set {ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET}")]
    Missing,
}

impl Credentials {
    pub fn new(access_key_id: &str, access_key_secret: &str) -> Self {
        Self {
            access_key_id: access_key_id.to_string(),
            access_key_secret: access_key_secret.to_string(),
        }
    }

    /// Reads a JSON credentials file.
    pub fn from_file(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let c: Self = serde_json::from_str(&text).map_err(|source| CredentialsError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        if c.access_key_id.is_empty() {
            return Err(CredentialsError::Incomplete("AccessKeyId"));
        }
        if c.access_key_secret.is_empty() {
            return Err(CredentialsError::Incomplete("AccessKeySecret"));
        }
        Ok(c)
    }

    /// Reads the two variables through `lookup`; `None` when neither is set.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, CredentialsError> {
        let id = lookup(ENV_ACCESS_KEY_ID).filter(|v| !v.is_empty());
        let secret = lookup(ENV_ACCESS_KEY_SECRET).filter(|v| !v.is_empty());
        match (id, secret) {
            (None, None) => Ok(None),
            (Some(access_key_id), Some(access_key_secret)) => Ok(Some(Self {
                access_key_id,
                access_key_secret,
            })),
            (None, Some(_)) => Err(CredentialsError::Incomplete(ENV_ACCESS_KEY_ID)),
            (Some(_), None) => Err(CredentialsError::Incomplete(ENV_ACCESS_KEY_SECRET)),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Option<Self>, CredentialsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The file when one is given, else the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, CredentialsError> {
        match file {
            Some(path) => Self::from_file(path),
            None => Self::from_env()?.ok_or(CredentialsError::Missing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred.json");
        std::fs::write(&path, r#"{"AccessKeyId": "ak", "AccessKeySecret": "sk"}"#).unwrap();
        let c = Credentials::load(Some(&path)).unwrap();
        assert_eq!(c, Credentials::new("ak", "sk"));
        assert!(!format!("{c:?}").contains("sk\""));
        std::fs::write(&path, r#"{"AccessKeyId": "ak"}"#).unwrap();
        assert!(matches!(
            Credentials::from_file(&path),
            Err(CredentialsError::Parse { .. })
        ));
        assert!(matches!(
            Credentials::from_file(&dir.path().join("none")),
            Err(CredentialsError::Read { .. })
        ));

        let env = |id: Option<&str>, sk: Option<&str>| {
            let (id, sk) = (id.map(str::to_string), sk.map(str::to_string));
            Credentials::from_lookup(move |k| {
                if k == ENV_ACCESS_KEY_ID {
                    id.clone()
                } else {
                    sk.clone()
                }
            })
        };
        assert_eq!(
            env(Some("a"), Some("b")).unwrap(),
            Some(Credentials::new("a", "b"))
        );
        assert_eq!(env(None, None).unwrap(), None);
        assert!(env(Some("a"), None).is_err());
        assert!(env(Some(""), Some("b")).is_err());
    }
}
