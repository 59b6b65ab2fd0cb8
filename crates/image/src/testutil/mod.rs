//! Test images: a busybox layer built from the host's static busybox, OCI and Docker schema-2
//! manifests and indexes, an OCI image layout on disk, and a push to a registry over plain HTTP.
//! For tests only (feature `testutil`), with a throwaway `docker-registry` to push to.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::ImageError;

mod registry;
pub use registry::TestRegistry;

/// The static busybox the test images are made of (Debian `busybox-static`).
pub const BUSYBOX: &str = "/usr/bin/busybox";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A piece of content with its digest and media type.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub data: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: sha256(&data),
            data,
        }
    }

    fn descriptor(&self) -> serde_json::Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.data.len()})
    }
}

/// How a layer tar is stored in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Which manifest schema an image uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Oci,
    /// Docker image manifest v2 schema 2 (gzip layers only).
    Docker,
}

/// An image ready to be written to a layout or pushed.
#[derive(Clone, Debug)]
pub struct TestImage {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Blob,
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ImageError + 'a {
    move |e| ImageError::io(op, path, e)
}

/// Appends one entry; paths are relative, parents need no entries of their own.
pub fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    mode: u32,
    data: &[u8],
    link: Option<&str>,
) -> Result<(), ImageError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header.set_size(data.len() as u64);
    let result = match link {
        Some(target) => builder.append_link(&mut header, path, target),
        None => builder.append_data(&mut header, path, data),
    };
    result.map_err(io_err("building tar entry", Path::new(path)))
}

/// An uncompressed busybox layer: `bin/busybox` with a symlink per applet, a minimal `/etc`,
/// and `extra_files` (mode 0755) at their relative paths.
pub fn busybox_layer(extra_files: &[(&str, &[u8])]) -> Result<Vec<u8>, ImageError> {
    let busybox = fs::read(BUSYBOX).map_err(io_err("reading", Path::new(BUSYBOX)))?;
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .map_err(io_err("running", Path::new(BUSYBOX)))?;
    let applets = String::from_utf8_lossy(&list.stdout).into_owned();
    let mut b = tar::Builder::new(Vec::new());
    use tar::EntryType::{Directory, Regular, Symlink};
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("var", 0o755),
    ] {
        append(&mut b, dir, Directory, mode, &[], None)?;
    }
    append(&mut b, "bin/busybox", Regular, 0o755, &busybox, None)?;
    for applet in applets.lines().map(str::trim) {
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            append(
                &mut b,
                &format!("bin/{applet}"),
                Symlink,
                0o777,
                &[],
                Some("busybox"),
            )?;
        }
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    append(&mut b, "etc/passwd", Regular, 0o644, passwd, None)?;
    append(
        &mut b,
        "etc/group",
        Regular,
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n",
        None,
    )?;
    for (path, data) in extra_files {
        append(
            &mut b,
            path.trim_start_matches('/'),
            Regular,
            0o755,
            data,
            None,
        )?;
    }
    b.into_inner()
        .map_err(io_err("building tar", Path::new("busybox layer")))
}

fn compress(tar: &[u8], compression: Compression) -> Result<Vec<u8>, ImageError> {
    match compression {
        Compression::None => Ok(tar.to_vec()),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder
                .write_all(tar)
                .and_then(|()| encoder.finish())
                .map_err(io_err("compressing", Path::new("layer")))
        }
        Compression::Zstd => Ok(ruzstd::encoding::compress_to_vec(
            tar,
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
    }
}

/// Builds an image from uncompressed layer tars (lowest first) with `cmd` as its command.
pub fn build_image(
    layers: &[(Vec<u8>, Compression)],
    cmd: &[&str],
    format: Format,
) -> Result<TestImage, ImageError> {
    let mut blobs = Vec::new();
    let mut diff_ids = Vec::new();
    for (tar, compression) in layers {
        diff_ids.push(sha256(tar));
        let media_type = match (format, compression) {
            (Format::Docker, _) => DOCKER_LAYER,
            (Format::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (Format::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (Format::Oci, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        };
        blobs.push(Blob::new(media_type, compress(tar, *compression)?));
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (manifest_type, config_type) = match format {
        Format::Oci => (OCI_MANIFEST, OCI_CONFIG),
        Format::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG),
    };
    let config = Blob::new(config_type, config.to_string().into_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config.descriptor(),
        "layers": blobs.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    Ok(TestImage {
        config,
        layers: blobs,
        manifest: Blob::new(manifest_type, manifest.to_string().into_bytes()),
    })
}

/// The busybox image: one gzip layer, command `sh`.
pub fn build_busybox(extra_files: &[(&str, &[u8])]) -> Result<TestImage, ImageError> {
    let layer = busybox_layer(extra_files)?;
    build_image(&[(layer, Compression::Gzip)], &["sh"], Format::Oci)
}

/// An OCI index of `(image, architecture)` entries, all for `linux`.
pub fn build_index(entries: &[(&TestImage, &str)]) -> Blob {
    let manifests: Vec<_> = entries
        .iter()
        .map(|(image, arch)| {
            let mut descriptor = image.manifest.descriptor();
            descriptor["platform"] = json!({"os": "linux", "architecture": arch});
            descriptor
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    Blob::new(OCI_INDEX, index.to_string().into_bytes())
}

/// Writes the busybox image as an OCI image layout (tag `latest`) into `dir`, for tools such as
/// skopeo or umoci. Returns the manifest digest.
pub fn build_busybox_layout(
    dir: &Path,
    extra_files: &[(&str, &[u8])],
) -> Result<String, ImageError> {
    let image = build_busybox(extra_files)?;
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err("creating", &blobs))?;
    for blob in image.layers.iter().chain([&image.config, &image.manifest]) {
        let path = blobs.join(blob.digest.trim_start_matches("sha256:"));
        fs::write(&path, &blob.data).map_err(io_err("writing", &path))?;
    }
    let mut descriptor = image.manifest.descriptor();
    descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": "latest"});
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]});
    for (name, content) in [
        ("oci-layout", json!({"imageLayoutVersion": "1.0.0"})),
        ("index.json", index),
    ] {
        let path = dir.join(name);
        fs::write(&path, content.to_string()).map_err(io_err("writing", &path))?;
    }
    Ok(image.manifest.digest)
}

/// Pushes blobs and manifests to one repository of a registry reached over plain HTTP.
pub struct Pusher {
    client: Client,
    registry: String,
    repo: String,
}

impl Pusher {
    /// `login` is a user name and password for basic auth, anonymous when `None`.
    pub async fn new(
        registry: &str,
        repo: &str,
        login: Option<(&str, &str)>,
    ) -> Result<Self, ImageError> {
        Self::with_transport(registry, repo, login, false).await
    }

    /// A pusher to a registry serving HTTPS with a certificate that is not checked.
    pub async fn new_insecure_tls(registry: &str, repo: &str) -> Result<Self, ImageError> {
        Self::with_transport(registry, repo, None, true).await
    }

    async fn with_transport(
        registry: &str,
        repo: &str,
        login: Option<(&str, &str)>,
        tls: bool,
    ) -> Result<Self, ImageError> {
        let client = Client::try_from(ClientConfig {
            protocol: if tls {
                ClientProtocol::Https
            } else {
                ClientProtocol::Http
            },
            accept_invalid_certificates: tls,
            ..ClientConfig::default()
        })
        .map_err(|source| ImageError::Registry {
            reference: registry.to_owned(),
            source,
        })?;
        let auth = match login {
            Some((user, password)) => RegistryAuth::Basic(user.to_owned(), password.to_owned()),
            None => RegistryAuth::Anonymous,
        };
        client.store_auth_if_needed(registry, &auth).await;
        Ok(Self {
            client,
            registry: registry.to_owned(),
            repo: repo.to_owned(),
        })
    }

    fn reference(&self, tag: &str) -> Result<Reference, ImageError> {
        crate::reference::parse(&format!("{}/{}:{tag}", self.registry, self.repo))
    }

    fn registry_err(&self) -> impl FnOnce(oci_client::errors::OciDistributionError) -> ImageError {
        let reference = format!("{}/{}", self.registry, self.repo);
        move |source| ImageError::Registry { reference, source }
    }

    pub async fn blob(&self, blob: &Blob) -> Result<(), ImageError> {
        let reference = self.reference("latest")?;
        self.client
            .push_blob(&reference, blob.data.clone(), &blob.digest)
            .await
            .map_err(self.registry_err())?;
        Ok(())
    }

    /// Pushes a manifest or index under `tag` (which may also be a digest-less tag name).
    pub async fn manifest(&self, tag: &str, manifest: &Blob) -> Result<(), ImageError> {
        let reference = self.reference(tag)?;
        let content_type = http::HeaderValue::from_str(&manifest.media_type).map_err(|e| {
            ImageError::io(
                "using media type",
                manifest.media_type.clone(),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            )
        })?;
        self.client
            .push_manifest_raw(&reference, manifest.data.clone(), content_type)
            .await
            .map_err(self.registry_err())?;
        Ok(())
    }

    /// Pushes the image's blobs and its manifest under `tag`. Returns the manifest digest.
    pub async fn image(&self, tag: &str, image: &TestImage) -> Result<String, ImageError> {
        for blob in image.layers.iter().chain([&image.config]) {
            self.blob(blob).await?;
        }
        self.manifest(tag, &image.manifest).await?;
        Ok(image.manifest.digest.clone())
    }
}

/// Builds the busybox image (plus `extra_files`) and pushes it anonymously over plain HTTP to
/// `registry` (`127.0.0.1:5000`) as `repo:tag`. Returns the manifest digest.
pub async fn push_busybox(
    registry: &str,
    repo: &str,
    tag: &str,
    extra_files: &[(&str, &[u8])],
) -> Result<String, ImageError> {
    let image = build_busybox(extra_files)?;
    Pusher::new(registry, repo, None)
        .await?
        .image(tag, &image)
        .await
}
