//! The client commands: `berth run`, `ps`, `logs`, `rm`, talking to a berth endpoint with
//! signed ECI requests like the official SDKs.

use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_client::{Client, Credentials};
use serde_json::Value;

#[derive(clap::Args)]
pub struct ClientArgs {
    /// The berth API endpoint.
    #[arg(
        long,
        global = true,
        env = "BERTH_ENDPOINT",
        default_value = "http://127.0.0.1:8080"
    )]
    endpoint: String,
    /// Credentials file ({"AccessKeyId": ..., "AccessKeySecret": ...}); else BERTH_ACCESS_KEY_ID
    /// and BERTH_ACCESS_KEY_SECRET; else /var/lib/berth/credentials.json.
    #[arg(long, global = true, env = "BERTH_CREDENTIALS")]
    credentials: Option<PathBuf>,
    /// Region of the requests.
    #[arg(long, global = true, env = "BERTH_REGION", default_value = "local")]
    pub(crate) region: String,
    /// PEM file of the CA certificates an https:// endpoint is checked against (instead of
    /// the system's roots), e.g. the CA that signed `berth serve --tls-cert`.
    #[arg(long, global = true, env = "BERTH_CA_FILE")]
    pub(crate) ca_file: Option<PathBuf>,
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
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Image reference, e.g. 127.0.0.1:5000/busybox:latest.
    image: String,
    /// Name of the group (and of its container).
    #[arg(long)]
    name: Option<String>,
    /// vCPU.
    #[arg(long)]
    cpu: Option<f64>,
    /// Memory in GiB.
    #[arg(long)]
    memory: Option<f64>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Restart policy: Always, OnFailure or Never.
    #[arg(long, default_value = "Always")]
    restart: String,
    /// Reach the image's registry over plain HTTP (automatic for 127.0.0.1 and localhost).
    #[arg(long)]
    plain_http: bool,
    #[command(flatten)]
    extras: crate::run_flags::RunExtras,
    /// Publish a port of the container on the node's public address, as HOSTPORT:PORT[/udp]
    /// or PORT[/udp] (berth chooses the host port); repeatable. Asks for AutoCreateEip=true.
    #[arg(short = 'p', long = "publish", value_name = "[HOSTPORT:]PORT[/udp]", value_parser = parse_publish)]
    publish: Vec<Publish>,
    /// Command and arguments, after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
pub struct PsArgs {
    /// Only groups in this status.
    #[arg(long)]
    status: Option<String>,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    /// Container group id.
    id: String,
    /// Container (default: the first app container).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Last lines only.
    #[arg(long)]
    tail: Option<u32>,
    /// Logs of the previous run of the container.
    #[arg(long)]
    previous: bool,
    /// Prefix each line with its time.
    #[arg(long)]
    timestamps: bool,
    /// Keep printing new lines until the container exits.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only lines of the last DURATION (e.g. 30s, 5m, 2h).
    #[arg(long)]
    since: Option<String>,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Container group ids.
    #[arg(required = true)]
    ids: Vec<String>,
}

pub(crate) fn client(a: &ClientArgs) -> anyhow::Result<Client> {
    let creds = match (&a.credentials, Credentials::from_env()?) {
        (Some(p), _) => Credentials::from_file(p)?,
        (None, Some(c)) => c,
        (None, None) => Credentials::from_file(std::path::Path::new("/var/lib/berth/credentials.json")).context(
            "no credentials: pass --credentials FILE or set BERTH_ACCESS_KEY_ID and BERTH_ACCESS_KEY_SECRET",
        )?,
    };
    let mut c = Client::from_credentials(&a.endpoint, &creds)?.with_region(&a.region);
    if let (Some(pem), Some(path)) = (a.ca_pem()?, &a.ca_file) {
        c = c.with_ca_pem(&pem, &path.display().to_string())?;
    }
    Ok(c)
}

pub(crate) fn registry_host(image: &str) -> Option<&str> {
    let first = image.split('/').next()?;
    (image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost"))
        .then_some(first)
}

pub async fn run(a: &ClientArgs, r: RunArgs) -> anyhow::Result<()> {
    let name = r.name.clone().unwrap_or_else(|| {
        let base = r
            .image
            .rsplit('/')
            .next()
            .unwrap_or("group")
            .split([':', '@'])
            .next()
            .unwrap_or("group");
        let clean: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        format!("{}-{}", clean.trim_matches('-'), std::process::id())
    });
    let mut p: Vec<(String, String)> = vec![
        ("RegionId".into(), a.region.clone()),
        ("ContainerGroupName".into(), name.clone()),
        ("RestartPolicy".into(), r.restart.clone()),
        ("Container.1.Name".into(), name.clone()),
        ("Container.1.Image".into(), r.image.clone()),
    ];
    if let Some(c) = r.cpu {
        p.push(("Cpu".into(), c.to_string()));
        p.push(("Container.1.Cpu".into(), c.to_string()));
    }
    if let Some(m) = r.memory {
        p.push(("Memory".into(), m.to_string()));
        p.push(("Container.1.Memory".into(), m.to_string()));
    }
    for (i, (k, v)) in r.extras.env(&r.env)?.into_iter().enumerate() {
        p.push((format!("Container.1.EnvironmentVar.{}.Key", i + 1), k));
        p.push((format!("Container.1.EnvironmentVar.{}.Value", i + 1), v));
    }
    r.extras.params(&mut p)?;
    for (i, c) in r.command.iter().enumerate() {
        p.push((format!("Container.1.Command.{}", i + 1), c.clone()));
    }
    if !r.publish.is_empty() {
        p.push(("AutoCreateEip".into(), "true".into()));
    }
    for (i, pb) in r.publish.iter().enumerate() {
        let k = format!("Container.1.Port.{}", i + 1);
        p.push((format!("{k}.Port"), pb.port.to_string()));
        p.push((format!("{k}.Protocol"), pb.protocol.into()));
        if let Some(h) = pb.host_port {
            p.push((format!("{k}.HostPort"), h.to_string()));
        }
    }
    if let Some(host) = registry_host(&r.image) {
        let local =
            host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
        if r.plain_http || local {
            p.push(("PlainHttpRegistry".into(), host.to_string()));
        }
    }
    let v = client(a)?.call("CreateContainerGroup", &p).await?;
    println!("{}", v["ContainerGroupId"].as_str().unwrap_or_default());
    Ok(())
}

/// One `-p` of `berth run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    host_port: Option<u16>,
    port: u16,
    protocol: &'static str,
}

/// `HOSTPORT:PORT[/udp]` or `PORT[/udp]`, in Docker's spelling (`/tcp` too); a host address
/// is not for the client to choose (the operator's --public-ip is).
fn parse_publish(text: &str) -> Result<Publish, String> {
    let (ports, protocol) = match text.rsplit_once('/') {
        Some((p, "udp")) => (p, "UDP"),
        Some((p, "tcp")) => (p, "TCP"),
        Some(_) => return Err(format!("`{text}`: the protocol is tcp or udp")),
        None => (text, "TCP"),
    };
    let number = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{text}`: `{s}` is not a port number"))
    };
    let (host_port, port) = match ports.split(':').collect::<Vec<_>>()[..] {
        [port] => (None, number(port)?),
        [host, port] => (Some(number(host)?), number(port)?),
        _ => {
            return Err(format!(
                "`{text}` is not [HOSTPORT:]PORT[/udp] (the address is the node's --public-ip)"
            ))
        }
    };
    Ok(Publish {
        host_port,
        port,
        protocol,
    })
}

pub async fn ps(a: &ClientArgs, r: PsArgs) -> anyhow::Result<()> {
    let c = client(a)?;
    println!(
        "{:<24}  {:<24}  {:<10}  {:<15}  {:>4}  {:>6}  CREATED",
        "ID", "NAME", "STATUS", "IP", "CPU", "MEM"
    );
    let mut token = String::new();
    loop {
        let mut p = vec![
            ("RegionId".into(), a.region.clone()),
            ("Limit".into(), "20".into()),
        ];
        if let Some(s) = &r.status {
            p.push(("Status".into(), s.clone()));
        }
        if !token.is_empty() {
            p.push(("NextToken".into(), token.clone()));
        }
        let v = c.call("DescribeContainerGroups", &p).await?;
        for g in v["ContainerGroups"].as_array().into_iter().flatten() {
            println!(
                "{:<24}  {:<24}  {:<10}  {:<15}  {:>4}  {:>6}  {}",
                s(g, "ContainerGroupId"),
                s(g, "ContainerGroupName"),
                s(g, "Status"),
                s(g, "IntranetIp"),
                g["Cpu"].to_string(),
                g["Memory"].to_string(),
                s(g, "CreationTime")
            );
        }
        token = s(&v, "NextToken").to_string();
        if token.is_empty() {
            return Ok(());
        }
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

pub async fn logs(a: &ClientArgs, r: LogsArgs) -> anyhow::Result<()> {
    let c = client(a)?;
    let container = match r.container {
        Some(c) => c,
        None => {
            let ids = serde_json::to_string(&[&r.id])?;
            let v = c
                .call(
                    "DescribeContainerGroups",
                    &[
                        ("RegionId".into(), a.region.clone()),
                        ("ContainerGroupIds".into(), ids),
                    ],
                )
                .await?;
            let g = v["ContainerGroups"]
                .get(0)
                .with_context(|| format!("no container group {}", r.id))?;
            s(&g["Containers"][0], "Name").to_string()
        }
    };
    let mut p = vec![
        ("RegionId".into(), a.region.clone()),
        ("ContainerGroupId".into(), r.id.clone()),
        ("ContainerName".into(), container),
    ];
    if let Some(t) = r.tail {
        p.push(("Tail".into(), t.to_string()));
    }
    if r.previous {
        p.push(("LastTime".into(), "True".into()));
    }
    if r.timestamps {
        p.push(("Timestamps".into(), "True".into()));
    }
    if let Some(since) = &r.since {
        let secs = crate::follow::parse_duration(since)?;
        p.push(("SinceSeconds".into(), secs.to_string()));
    }
    if r.follow {
        let container = p[2].1.clone();
        let extra = p.split_off(3);
        return crate::follow::follow(a, &r.id, &container, extra).await;
    }
    let v = c.call("DescribeContainerLog", &p).await?;
    print!("{}", s(&v, "Content"));
    Ok(())
}

pub async fn rm(a: &ClientArgs, r: RmArgs) -> anyhow::Result<()> {
    each_group(a, &r.ids, "DeleteContainerGroup", "deleted").await
}

/// Calls `action` for each group id in turn, printing the ids that went through and the
/// errors of the others; fails when any did.
pub(crate) async fn each_group(
    a: &ClientArgs,
    ids: &[String],
    action: &str,
    done: &str,
) -> anyhow::Result<()> {
    let c = client(a)?;
    let mut failed = false;
    for id in ids {
        let p = vec![
            ("RegionId".into(), a.region.clone()),
            ("ContainerGroupId".into(), id.clone()),
        ];
        match c.call(action, &p).await {
            Ok(_) => println!("{id}"),
            Err(e) => {
                eprintln!("berth: {id}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        bail!("some container groups were not {done}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_flags_parse_in_dockers_spelling() {
        let p = |t| parse_publish(t);
        assert_eq!(
            p("8080:80").unwrap(),
            Publish {
                host_port: Some(8080),
                port: 80,
                protocol: "TCP"
            }
        );
        assert_eq!(
            p("53/udp").unwrap(),
            Publish {
                host_port: None,
                port: 53,
                protocol: "UDP"
            }
        );
        assert_eq!(p("80/tcp").unwrap().protocol, "TCP");
        for bad in ["127.0.0.1:8080:80", "0:80", "x", "80/sctp", "70000", ""] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
