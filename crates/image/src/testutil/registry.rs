//! A throwaway Debian `docker-registry` on a loopback port, optionally behind htpasswd basic
//! auth, storing into a temporary directory. Stopped when dropped.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::ImageError;

/// The registry binary of Debian's `docker-registry` package.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running registry.
pub struct TestRegistry {
    /// `127.0.0.1:<port>`, the host part of references to it.
    pub addr: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts an anonymous registry.
    pub fn start() -> Result<Self, ImageError> {
        Self::start_with(None)
    }

    /// Starts a registry; with `login`, only that user name and password may push and pull.
    pub fn start_with(login: Option<(&str, &str)>) -> Result<Self, ImageError> {
        Self::spawn(login, false)
    }

    /// Starts an anonymous registry serving HTTPS with a self-signed certificate for
    /// 127.0.0.1 (made with the `openssl` command).
    pub fn start_tls() -> Result<Self, ImageError> {
        Self::spawn(None, true)
    }

    /// Starts a registry that accepts only bearer tokens issued by the token service at
    /// `realm` for `service`, signed by `issuer` with the key of the certificate in
    /// `root_cert` (PEM), as distribution's `auth: token` does.
    pub fn start_token_auth(
        realm: &str,
        service: &str,
        issuer: &str,
        root_cert: &Path,
    ) -> Result<Self, ImageError> {
        let auth = format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    \
             rootcertbundle: {}\n",
            root_cert.display()
        );
        Self::spawn_with(None, false, Some(auth))
    }

    fn spawn(login: Option<(&str, &str)>, tls: bool) -> Result<Self, ImageError> {
        Self::spawn_with(login, tls, None)
    }

    fn spawn_with(
        login: Option<(&str, &str)>,
        tls: bool,
        auth: Option<String>,
    ) -> Result<Self, ImageError> {
        let dir = tempfile::tempdir().map_err(|e| ImageError::io("creating", "tempdir", e))?;
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = login {
            let hash = bcrypt::hash_with_result(password, 4)
                .map_err(|e| ImageError::io("hashing", "htpasswd", std::io::Error::other(e)))?
                .format_for_version(bcrypt::Version::TwoY);
            let htpasswd = dir.path().join("htpasswd");
            fs::write(&htpasswd, format!("{user}:{hash}\n"))
                .map_err(|e| ImageError::io("writing", &htpasswd, e))?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        if let Some(auth) = auth {
            config.push_str(&auth);
        }
        if tls {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let status = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| ImageError::io("running", "openssl", e))?;
            if !status.success() {
                let e = std::io::Error::other(format!("openssl req failed: {status}"));
                return Err(ImageError::io("making certificate", cert, e));
            }
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).map_err(|e| ImageError::io("writing", &config_path, e))?;
        let log_path = dir.path().join("registry.log");
        let log =
            fs::File::create(&log_path).map_err(|e| ImageError::io("creating", &log_path, e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| ImageError::io("opening", &log_path, e))?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| ImageError::io("starting", REGISTRY_BIN, e))?;
        let mut registry = Self { addr, child, dir };
        registry.wait_ready()?;
        Ok(registry)
    }

    fn wait_ready(&mut self) -> Result<(), ImageError> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(&self.addr).is_ok() {
                return Ok(());
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let log =
                    fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
                return Err(ImageError::io(
                    "waiting for",
                    REGISTRY_BIN,
                    std::io::Error::other(format!("registry not ready ({exited:?}): {log}")),
                ));
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Where the registry keeps the content of blob `digest` (to corrupt it in tests).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage().join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2.min(hex.len())]
        ))
    }

    /// The registry's storage root.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding config, log and storage.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, ImageError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ImageError::io("binding", "127.0.0.1:0", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| ImageError::io("binding", "127.0.0.1:0", e))?
        .port();
    Ok(port)
}
