//! Secrets at rest. Access-key secrets and registry passwords (the `ImageRegistryCredential`s
//! of groups and image caches, and their copies in the parameters kept with ClientTokens) are
//! written to the database sealed with XChaCha20-Poly1305 under a key of its own, kept in a
//! separate 0600 file beside the database ([`KEY_FILE`]). A copy of the database without that
//! file reveals none of them.
//!
//! A sealed value is the text `sealed:v1:` followed by the base64 of a random 24-byte nonce
//! and the ciphertext with its tag. Reading a value without that prefix returns it as it is
//! (a row written before sealing existed); [`SqliteStore::open`](crate::SqliteStore::open)
//! seals such rows when it finds them.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use berth_core::{GroupRecord, ImageCacheRecord, RegistryCredential};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::StoreError;

/// Name of the key file, in the directory of the database.
pub const KEY_FILE: &str = "secrets.key";

/// What starts every sealed value.
pub(crate) const PREFIX: &str = "sealed:v1:";

/// Bytes of a nonce.
const NONCE_LEN: usize = 24;

/// Why the key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the key file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the key file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key file {0} does not hold a key (64 hex digits)")]
    Malformed(PathBuf),
    #[error(
        "the key file {0} is missing but the database holds secrets sealed with it; \
         restore the file from a backup (without it those secrets cannot be read)"
    )]
    Missing(PathBuf),
}

/// Seals and opens the secrets of one database.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer with a fresh random key (a database in memory needs no file).
    pub fn generate() -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(&mut OsRng)),
        }
    }

    fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// The key of `path`; `None` when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>, KeyError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key)
            .map_err(|_| KeyError::Malformed(path.to_path_buf()))?;
        Ok(Some(Self::from_key(&key)))
    }

    /// Makes a new key file at `path` (0600) and returns its key; when another process made
    /// the file first, returns that one's key.
    pub fn create(path: &Path) -> Result<Self, KeyError> {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let write_err = |source| KeyError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = path.as_os_str().to_os_string();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err)?;
        let written = writeln!(f, "{}", hex::encode(key)).and_then(|()| f.sync_all());
        drop(f);
        // A hard link never replaces a file: of two processes making the key at once, one
        // wins and the other reads the winner's key.
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
                }
                Ok(Self::from_key(&key.into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::load(path)?.ok_or_else(|| KeyError::Missing(path.to_path_buf()))
            }
            Err(e) => Err(write_err(e)),
        }
    }

    /// `plain` sealed.
    pub(crate) fn seal(&self, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encrypting into a Vec fails only when the buffer cannot grow.
        let ct = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .unwrap_or_default();
        let mut raw = Vec::with_capacity(NONCE_LEN + ct.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ct);
        format!("{PREFIX}{}", B64.encode(raw))
    }

    /// `text` opened when sealed, else as it is.
    pub(crate) fn open(&self, text: &str) -> Result<String, StoreError> {
        let Some(b64) = text.strip_prefix(PREFIX) else {
            return Ok(text.to_string());
        };
        let raw = B64.decode(b64).map_err(|_| StoreError::Unseal)?;
        if raw.len() < NONCE_LEN {
            return Err(StoreError::Unseal);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| StoreError::Unseal)?;
        String::from_utf8(plain).map_err(|_| StoreError::Unseal)
    }

    /// `text` sealed unless it is already.
    pub(crate) fn seal_once(&self, text: &str) -> String {
        if is_sealed(text) {
            text.to_string()
        } else {
            self.seal(text)
        }
    }

    fn seal_credentials(&self, creds: &mut [RegistryCredential]) {
        for c in creds {
            c.password = self.seal_once(&c.password);
        }
    }

    fn open_credentials(&self, creds: &mut [RegistryCredential]) -> Result<(), StoreError> {
        for c in creds {
            if is_sealed(&c.password) {
                c.password = self.open(&c.password)?;
            }
        }
        Ok(())
    }

    /// The JSON a group is stored as: its registry passwords sealed.
    pub(crate) fn group_json(&self, rec: &GroupRecord) -> Result<String, StoreError> {
        if rec.spec.registry_credentials.is_empty() {
            return Ok(serde_json::to_string(rec)?);
        }
        let mut rec = rec.clone();
        self.seal_credentials(&mut rec.spec.registry_credentials);
        Ok(serde_json::to_string(&rec)?)
    }

    /// A group as read: its registry passwords opened.
    pub(crate) fn open_group(&self, rec: &mut GroupRecord) -> Result<(), StoreError> {
        self.open_credentials(&mut rec.spec.registry_credentials)
    }

    /// The JSON an image cache is stored as: its registry passwords sealed.
    pub(crate) fn cache_json(&self, rec: &ImageCacheRecord) -> Result<String, StoreError> {
        if rec.registry_credentials.is_empty() {
            return Ok(serde_json::to_string(rec)?);
        }
        let mut rec = rec.clone();
        self.seal_credentials(&mut rec.registry_credentials);
        Ok(serde_json::to_string(&rec)?)
    }

    /// An image cache as read: its registry passwords opened.
    pub(crate) fn open_cache(&self, rec: &mut ImageCacheRecord) -> Result<(), StoreError> {
        self.open_credentials(&mut rec.registry_credentials)
    }

    /// Any JSON text (the parameters kept with a ClientToken) with every `password` of a
    /// `registry_credentials` list in it sealed; text that is not JSON is kept as it is.
    pub(crate) fn seal_json(&self, json: &str) -> Result<String, StoreError> {
        self.map_json(json, &mut |p| Ok(self.seal_once(p)))
    }

    /// [`seal_json`](Self::seal_json) undone.
    pub(crate) fn open_json(&self, json: &str) -> Result<String, StoreError> {
        if !json.contains(PREFIX) {
            return Ok(json.to_string());
        }
        self.map_json(json, &mut |p| self.open(p))
    }

    fn map_json(
        &self,
        json: &str,
        f: &mut dyn FnMut(&str) -> Result<String, StoreError>,
    ) -> Result<String, StoreError> {
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json) else {
            return Ok(json.to_string());
        };
        if !map_passwords(&mut v, f)? {
            return Ok(json.to_string());
        }
        Ok(serde_json::to_string(&v)?)
    }
}

/// Whether `text` is a sealed value.
pub(crate) fn is_sealed(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// Applies `f` to every `password` string of the objects in a `registry_credentials` list
/// anywhere in `v`; whether there was any.
fn map_passwords(
    v: &mut serde_json::Value,
    f: &mut dyn FnMut(&str) -> Result<String, StoreError>,
) -> Result<bool, StoreError> {
    use serde_json::Value;
    let mut any = false;
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "registry_credentials" {
                    if let Value::Array(list) = child {
                        for cred in list {
                            if let Some(Value::String(p)) = cred.get_mut("password") {
                                *p = f(p)?;
                                any = true;
                            }
                        }
                        continue;
                    }
                }
                any |= map_passwords(child, f)?;
            }
        }
        Value::Array(list) => {
            for child in list {
                any |= map_passwords(child, f)?;
            }
        }
        _ => {}
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_text_opens_to_the_plain_text_and_hides_it() {
        let s = Sealer::generate();
        let sealed = s.seal("hunter2-secret");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, s.seal("hunter2-secret"), "nonces differ");
        assert_eq!(s.open(&sealed).unwrap(), "hunter2-secret");
        assert_eq!(s.open("plain").unwrap(), "plain");
    }

    #[test]
    fn another_key_or_a_changed_byte_does_not_open() {
        let s = Sealer::generate();
        let sealed = s.seal("x");
        assert!(matches!(
            Sealer::generate().open(&sealed),
            Err(StoreError::Unseal)
        ));
        let mut bad = sealed.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert!(matches!(s.open(&bad), Err(StoreError::Unseal)));
        assert!(matches!(s.open("sealed:v1:AAAA"), Err(StoreError::Unseal)));
    }

    #[test]
    fn passwords_in_json_are_sealed_wherever_they_are() {
        let s = Sealer::generate();
        let json = r#"{"name":"g","registry_credentials":[{"server":"r","user_name":"u","password":"pw-1"}],"nested":{"registry_credentials":[{"password":"pw-2"}]},"password":"not-a-credential"}"#;
        let sealed = s.seal_json(json).unwrap();
        assert!(!sealed.contains("pw-1") && !sealed.contains("pw-2"));
        assert!(sealed.contains("not-a-credential"));
        assert_eq!(s.seal_json(&sealed).unwrap(), sealed, "sealing is once");
        let opened: serde_json::Value =
            serde_json::from_str(&s.open_json(&sealed).unwrap()).unwrap();
        assert_eq!(
            opened,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
        assert_eq!(s.seal_json("not json").unwrap(), "not json");
    }

    #[test]
    fn the_key_file_is_private_and_made_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        assert!(Sealer::load(&path).unwrap().is_none());
        let a = Sealer::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = a.seal("s");
        // A second create finds the first key.
        let b = Sealer::create(&path).unwrap();
        assert_eq!(b.open(&sealed).unwrap(), "s");
        let c = Sealer::load(&path).unwrap().unwrap();
        assert_eq!(c.open(&sealed).unwrap(), "s");
        std::fs::write(&path, "nope").unwrap();
        assert!(matches!(Sealer::load(&path), Err(KeyError::Malformed(_))));
    }
}
