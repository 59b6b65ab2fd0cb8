//! The settings of the client commands: the flags and environment variables naming the
//! endpoint, the key, the region and the CA file, over a profile (`profile.rs`), over the
//! defaults; settled once before a command runs.

use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_client::{Client, Credentials};

/// The flags (and environment variables) naming the endpoint and the key; what they leave
/// out comes from the profile (`profile.rs`), then from the defaults.
#[derive(clap::Args)]
pub struct ClientFlags {
    /// The berth API endpoint [default: the profile's, else http://127.0.0.1:8080].
    #[arg(long, global = true, env = "BERTH_ENDPOINT")]
    endpoint: Option<String>,
    /// Credentials file ({"AccessKeyId": ..., "AccessKeySecret": ...}); else BERTH_ACCESS_KEY_ID
    /// and BERTH_ACCESS_KEY_SECRET; else the profile's; else /var/lib/berth/credentials.json.
    #[arg(long, global = true, env = "BERTH_CREDENTIALS")]
    credentials: Option<PathBuf>,
    /// Region of the requests [default: the profile's, else local].
    #[arg(long, global = true, env = "BERTH_REGION")]
    region: Option<String>,
    /// PEM file of the CA certificates an https:// endpoint is checked against (instead of
    /// the system's roots), e.g. the CA that signed `berth serve --tls-cert`.
    #[arg(long, global = true, env = "BERTH_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Profile of ~/.config/berth/config.toml ($XDG_CONFIG_HOME/berth/config.toml) to use
    /// [default: the file's default_profile].
    #[arg(long, global = true, env = "BERTH_PROFILE")]
    profile: Option<String>,
}

/// The endpoint used when nothing names one.
pub(crate) const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";
/// The key file used when nothing names one (the first account's, written by `berth serve`).
const DEFAULT_CREDENTIALS: &str = "/var/lib/berth/credentials.json";

/// Where a setting came from, for the advice after an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A flag or its environment variable.
    Flag,
    /// The named profile.
    Profile(String),
    /// Nothing named it.
    Default,
}

/// The settings of the client commands: flags and environment over the profile over the
/// defaults.
pub struct ClientArgs {
    pub(crate) endpoint: String,
    pub(crate) endpoint_source: Source,
    pub(crate) region: String,
    pub(crate) ca_file: Option<PathBuf>,
    credentials: Credentials,
    /// Where the access key came from, in words (`--credentials FILE`, `profile prod`, …).
    pub(crate) key_source: String,
    /// The config file looked at (it may not exist).
    pub(crate) config_file: Option<PathBuf>,
}

impl ClientFlags {
    /// Reads the config file when needed and settles every setting.
    pub fn resolve(&self) -> anyhow::Result<ClientArgs> {
        // An empty variable (BERTH_PROFILE=) counts as unset.
        let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let given_path = |v: &Option<PathBuf>| v.clone().filter(|v| !v.as_os_str().is_empty());
        let (endpoint, region, wanted) = (
            given(&self.endpoint),
            given(&self.region),
            given(&self.profile),
        );
        let (ca_file, credentials) = (given_path(&self.ca_file), given_path(&self.credentials));
        let env = |k: &str| std::env::var(k).ok();
        let home = env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let config_file = crate::profile::config_path(env);
        let profile = match &config_file {
            Some(path) => {
                let config = crate::profile::load(path, home.as_deref())?;
                crate::profile::select(config.as_ref(), wanted.as_deref(), path)?
            }
            None if wanted.is_some() => {
                bail!("--profile needs a config file, but neither XDG_CONFIG_HOME nor HOME is set")
            }
            None => None,
        };
        let (pname, p) = match profile {
            Some((n, p)) => (Some(n), p),
            None => (None, crate::profile::Profile::default()),
        };
        let from_profile = || Source::Profile(pname.clone().unwrap_or_default());
        let (endpoint, endpoint_source) = match (&endpoint, &p.endpoint) {
            (Some(e), _) => (e.clone(), Source::Flag),
            (None, Some(e)) => (e.clone(), from_profile()),
            (None, None) => (DEFAULT_ENDPOINT.to_string(), Source::Default),
        };
        let region = region
            .or(p.region.clone())
            .unwrap_or_else(|| "local".to_string());
        let ca_file = ca_file.or(p.ca_file.clone());
        let in_profile =
            |what: &str| format!("{what} of profile {}", pname.as_deref().unwrap_or(""));
        let (credentials, key_source) = match (&credentials, Credentials::from_env()?) {
            (Some(path), _) => (
                Credentials::from_file(path)?,
                format!("--credentials/BERTH_CREDENTIALS {}", path.display()),
            ),
            (None, Some(c)) => (
                c,
                "BERTH_ACCESS_KEY_ID and BERTH_ACCESS_KEY_SECRET".to_string(),
            ),
            (None, None) => match (&p.credentials, &p.access_key_id, &p.access_key_secret) {
                (Some(path), _, _) => (
                    Credentials::from_file(path)?,
                    in_profile(&format!("the credentials file {}", path.display())),
                ),
                (None, Some(id), Some(secret)) => {
                    (Credentials::new(id, secret), in_profile("the access key"))
                }
                _ => {
                    let path = std::path::Path::new(DEFAULT_CREDENTIALS);
                    let c = Credentials::from_file(path).with_context(|| {
                        format!(
                            "no access key configured, and the default {DEFAULT_CREDENTIALS} cannot be used: \
                             give --credentials FILE (BERTH_CREDENTIALS), set BERTH_ACCESS_KEY_ID and \
                             BERTH_ACCESS_KEY_SECRET, or name a key in a profile of {}",
                            config_file
                                .as_deref()
                                .map_or("~/.config/berth/config.toml".into(), |p| p
                                    .display()
                                    .to_string())
                        )
                    })?;
                    (c, format!("the default {DEFAULT_CREDENTIALS}"))
                }
            },
        };
        Ok(ClientArgs {
            endpoint,
            endpoint_source,
            region,
            ca_file,
            credentials,
            key_source,
            config_file,
        })
    }
}

impl ClientArgs {
    /// The contents of `--ca-file`, if given.
    pub(crate) fn ca_pem(&self) -> anyhow::Result<Option<Vec<u8>>> {
        self.ca_file
            .as_deref()
            .map(|p| {
                std::fs::read(p).with_context(|| format!("cannot read the CA file {}", p.display()))
            })
            .transpose()
    }

    /// The id of the access key used.
    pub(crate) fn access_key_id(&self) -> &str {
        &self.credentials.access_key_id
    }

    /// Settings of a test: `endpoint` from `endpoint_source`, a made-up key.
    #[cfg(test)]
    pub(crate) fn for_tests(endpoint: &str, endpoint_source: Source) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            endpoint_source,
            region: "local".into(),
            ca_file: None,
            credentials: Credentials::new("LTAItest", "secret"),
            key_source: "--credentials/BERTH_CREDENTIALS k.json".into(),
            config_file: Some(PathBuf::from("/home/u/.config/berth/config.toml")),
        }
    }
}

pub(crate) fn client(a: &ClientArgs) -> anyhow::Result<Client> {
    let mut c = Client::from_credentials(&a.endpoint, &a.credentials)?.with_region(&a.region);
    if let (Some(pem), Some(path)) = (a.ca_pem()?, &a.ca_file) {
        c = c.with_ca_pem(&pem, &path.display().to_string())?;
    }
    Ok(c)
}
