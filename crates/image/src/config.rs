//! The parts of an image configuration blob that a container needs.

use serde::{Deserialize, Serialize};

/// Process defaults from the image configuration (`config` of the OCI image config).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// What is read from a configuration blob.
pub(crate) struct ParsedConfig {
    pub config: ImageConfig,
    /// Digests of the uncompressed layers, lowest first, when the blob lists them.
    pub diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    config: Option<RawProcess>,
    #[serde(default)]
    rootfs: Option<RawRootfs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawProcess {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

pub(crate) fn parse(blob: &[u8]) -> Result<ParsedConfig, serde_json::Error> {
    let raw: RawConfig = serde_json::from_slice(blob)?;
    let process = raw.config;
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let config = match process {
        Some(p) => ImageConfig {
            entrypoint: p.entrypoint.unwrap_or_default(),
            cmd: p.cmd.unwrap_or_default(),
            env: p.env.unwrap_or_default(),
            working_dir: non_empty(p.working_dir),
            user: non_empty(p.user),
        },
        None => ImageConfig::default(),
    };
    let diff_ids = raw.rootfs.and_then(|r| r.diff_ids).unwrap_or_default();
    Ok(ParsedConfig { config, diff_ids })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_process_defaults() {
        let blob = br#"{"architecture":"amd64","os":"linux",
            "config":{"Entrypoint":null,"Cmd":["sh"],"Env":["PATH=/bin"],"WorkingDir":"","User":"1000"},
            "rootfs":{"type":"layers","diff_ids":["sha256:ab"]}}"#;
        let parsed = parse(blob).unwrap();
        assert_eq!(parsed.config.cmd, vec!["sh"]);
        assert!(parsed.config.entrypoint.is_empty());
        assert_eq!(parsed.config.working_dir, None);
        assert_eq!(parsed.config.user.as_deref(), Some("1000"));
        assert_eq!(parsed.diff_ids, vec!["sha256:ab"]);
        assert!(parse(b"{}").unwrap().config.cmd.is_empty());
        assert!(parse(b"[").is_err());
    }
}
