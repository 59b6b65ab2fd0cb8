//! `berth update`, `berth restart` and `berth inspect`: one container group at a time through
//! the API (UpdateContainerGroup, RestartContainerGroup, DescribeContainerGroups).

use anyhow::{bail, Context};
use serde_json::Value;

use crate::cli::{client, ClientArgs};

#[derive(clap::Args)]
pub struct UpdateArgs {
    /// Container group id.
    id: String,
    /// vCPU of the group (rounded up to an offered size with the memory).
    #[arg(long)]
    cpu: Option<f64>,
    /// Memory of the group in GiB.
    #[arg(long)]
    memory: Option<f64>,
    /// Restart policy: Always, OnFailure or Never.
    #[arg(long)]
    restart: Option<String>,
    /// Tag KEY=VALUE added or changed (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Makes a repeat of this command with the same token harmless.
    #[arg(long)]
    client_token: Option<String>,
}

#[derive(clap::Args)]
pub struct RestartArgs {
    /// Container group ids.
    #[arg(required = true)]
    ids: Vec<String>,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Container group id.
    id: String,
    /// json or yaml.
    #[arg(long, default_value = "json")]
    format: String,
}

/// Changes a group's size, restart policy or tags (an IncrementalUpdate: what is not given
/// stays). Containers whose vCPU or memory came from the group's are recreated by the node.
pub async fn update(a: &ClientArgs, u: UpdateArgs) -> anyhow::Result<()> {
    let mut p: Vec<(String, String)> = vec![
        ("RegionId".into(), a.region.clone()),
        ("ContainerGroupId".into(), u.id.clone()),
        ("UpdateType".into(), "IncrementalUpdate".into()),
    ];
    if let Some(c) = u.cpu {
        p.push(("Cpu".into(), c.to_string()));
    }
    if let Some(m) = u.memory {
        p.push(("Memory".into(), m.to_string()));
    }
    if let Some(r) = &u.restart {
        p.push(("RestartPolicy".into(), r.clone()));
    }
    for (i, t) in u.tags.iter().enumerate() {
        let Some((k, v)) = t.split_once('=') else {
            bail!("tag {t:?} is not KEY=VALUE")
        };
        p.push((format!("Tag.{}.Key", i + 1), k.into()));
        p.push((format!("Tag.{}.Value", i + 1), v.into()));
    }
    if let Some(t) = &u.client_token {
        p.push(("ClientToken".into(), t.clone()));
    }
    if p.len() == 3 || (p.len() == 4 && u.client_token.is_some()) {
        bail!("nothing to update: give --cpu, --memory, --restart or --tag");
    }
    client(a)?.call("UpdateContainerGroup", &p).await?;
    println!("{}", u.id);
    Ok(())
}

pub async fn restart(a: &ClientArgs, r: RestartArgs) -> anyhow::Result<()> {
    crate::cli::each_group(a, &r.ids, "RestartContainerGroup", "restarted").await
}

/// The whole group as DescribeContainerGroups answers it, events included.
pub async fn inspect(a: &ClientArgs, i: InspectArgs) -> anyhow::Result<()> {
    let p = vec![
        ("RegionId".into(), a.region.clone()),
        ("ContainerGroupIds".into(), serde_json::to_string(&[&i.id])?),
        ("WithEvent".into(), "true".into()),
    ];
    let v = client(a)?.call("DescribeContainerGroups", &p).await?;
    let group = v["ContainerGroups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["ContainerGroupId"] == i.id.as_str()))
        .with_context(|| format!("no container group {}", i.id))?;
    match i.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(group)?),
        "yaml" => print!("{}", yaml(group)),
        f => bail!("unknown format {f:?}: json or yaml"),
    }
    Ok(())
}

/// YAML of a JSON value: block style, strings as JSON strings (valid YAML scalars, so no
/// value can be misread as a number, a boolean or a document marker). Written here rather
/// than with a YAML crate: the common one is unmaintained and this needs only emitting.
fn yaml(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                out.push_str(&format!("{pad}{}:", scalar(&Value::String(k.clone()))));
                nested(val, indent, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for val in a {
                out.push_str(&format!("{pad}-"));
                nested(val, indent, out);
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

/// A value after `key:` or `-`: on the same line when it is a scalar or empty.
fn nested(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            emit(v, indent + 2, out);
        }
        _ => out.push_str(&format!(" {}\n", scalar(v))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        // A JSON string is a YAML double-quoted scalar.
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_keeps_every_value_as_it_was() {
        let v = serde_json::json!({
            "Name": "web", "Cpu": 0.5, "Ready": true, "Ip": null,
            "Tricky": "yes: no\n- x", "Empty": [], "Map": {},
            "Containers": [{"Name": "c", "Args": ["a", "1"]}, "s"],
        });
        let text = yaml(&v);
        assert!(text.contains("\"Tricky\": \"yes: no\\n- x\"\n"), "{text}");
        assert!(text.contains("\"Empty\": []\n"), "{text}");
        assert!(
            text.contains("\"Containers\":\n  -\n    \"Args\":\n      - \"a\"\n"),
            "{text}"
        );
        assert!(text.contains("\"Cpu\": 0.5\n"), "{text}");
    }
}
