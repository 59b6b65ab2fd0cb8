//! The client commands `berth run`, `logs` and `rm`, talking to a berth endpoint with
//! signed ECI requests like the official SDKs.

use anyhow::{bail, Context};
use serde_json::Value;

pub(crate) use crate::settings::{client, ClientArgs};

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
    /// Print the group's id as soon as it is created and return (the default).
    #[arg(short = 'd', long, conflicts_with = "wait")]
    detach: bool,
    /// Print the id, then wait until the group is Running: exit 0 then, or 1 with the reason
    /// when it fails or cannot start (an image that cannot be pulled, a crashing container).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits at most (e.g. 90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", requires = "wait")]
    wait_timeout: String,
    /// Command and arguments, after `--`.
    #[arg(last = true)]
    command: Vec<String>,
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
    let timeout = std::time::Duration::from_secs(crate::follow::parse_duration(&r.wait_timeout)?);
    let c = client(a)?;
    let v = c.call("CreateContainerGroup", &p).await?;
    let id = v["ContainerGroupId"].as_str().unwrap_or_default();
    println!("{id}");
    if r.detach || !r.wait {
        return Ok(());
    }
    use std::io::Write as _;
    std::io::stdout().flush()?;
    crate::wait::until_running(&c, id, timeout).await
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
