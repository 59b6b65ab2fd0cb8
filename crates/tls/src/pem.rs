//! PEM files of a serving certificate: the chain (leaf first) and its private key (PKCS#8,
//! PKCS#1 or SEC1). A key file that other users may read is refused; its group may read it,
//! as Debian's `ssl-cert` group does.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a PEM file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {what} {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path} holds no PEM {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{what} {path} is not valid PEM")]
    Invalid {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "the TLS key file {path} can be read by other users (mode {mode:04o}); \
         chmod o-rwx it (0600 or 0640)"
    )]
    KeyReadable { path: PathBuf, mode: u32 },
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The certificates of a PEM file, at least one; `what` names the file in errors ("the TLS
/// certificate file", "the client CA file").
pub fn read_chain(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = read_file(what, path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PemError::Invalid {
            what,
            path: path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(PemError::Empty {
            what,
            path: path.to_path_buf(),
            expected: "CERTIFICATE",
        });
    }
    Ok(chain)
}

/// The private key of a PEM file that gives no access to other users.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    const WHAT: &str = "the TLS key file";
    let meta = std::fs::metadata(path).map_err(|source| PemError::Read {
        what: WHAT,
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(PemError::KeyReadable {
            path: path.to_path_buf(),
            mode,
        });
    }
    let pem = read_file(WHAT, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => PemError::Empty {
            what: WHAT,
            path: path.to_path_buf(),
            expected: "PRIVATE KEY",
        },
        source => PemError::Invalid {
            what: WHAT,
            path: path.to_path_buf(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        assert!(matches!(
            read_chain("the cert", &cert),
            Err(PemError::Read { .. })
        ));
        std::fs::write(&cert, "not pem\n").unwrap();
        assert!(matches!(
            read_chain("the cert", &cert),
            Err(PemError::Empty { .. })
        ));
    }

    #[test]
    fn key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key(&key).unwrap_err();
        assert!(
            matches!(e, PemError::KeyReadable { mode: 0o644, .. }),
            "{e}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(read_key(&key), Err(PemError::Empty { .. })));
    }
}
