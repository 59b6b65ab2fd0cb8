//! `berth update`, `berth restart` and `berth inspect`: one container group at a time through
//! the API (UpdateContainerGroup, RestartContainerGroup, DescribeContainerGroups).

use anyhow::{bail, Context};
use berth_client::response::{ContainerGroup, DescribeContainerGroupsResponse};

use crate::cli::{client, ClientArgs};
use crate::ui::table::Cell;
use crate::ui::{Format, Table};

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
    /// Output format: the whole group as JSON (the default) or YAML, or a summary table.
    #[arg(short = 'o', long = "output", visible_alias = "format", value_enum, default_value_t = Format::Json)]
    output: Format,
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
    let v: DescribeContainerGroupsResponse =
        client(a)?.call_as("DescribeContainerGroups", &p).await?;
    let group = v
        .container_groups
        .into_iter()
        .find(|g| g.container_group_id == i.id)
        .with_context(|| format!("no container group {}", i.id))?;
    if !crate::ui::format::print_document(i.output, &group)? {
        print!(
            "{}",
            summary(&group, chrono::Utc::now(), crate::ui::colour::stdout())
        );
    }
    Ok(())
}

/// `inspect -o table`: the group's main fields, its containers and its events.
fn summary(g: &ContainerGroup, now: chrono::DateTime<chrono::Utc>, colour: bool) -> String {
    let tags: Vec<String> = g
        .tags
        .iter()
        .map(|t| format!("{}={}", t.key, t.value))
        .collect();
    let mut fields = vec![
        ("ID", g.container_group_id.clone()),
        ("Name", g.container_group_name.clone()),
        (
            "Status",
            crate::ui::colour::paint(&g.status, crate::ui::colour::of_status(&g.status), colour),
        ),
        ("IP", g.intranet_ip.clone()),
        ("Size", format!("{} vCPU, {} GiB", g.cpu, g.memory)),
        ("Restart policy", g.restart_policy.clone()),
        (
            "Created",
            format!(
                "{} ({})",
                g.creation_time,
                crate::ui::time::ago(&g.creation_time, now)
            ),
        ),
    ];
    if !g.internet_ip.is_empty() {
        fields.push(("Public IP", g.internet_ip.clone()));
    }
    if !tags.is_empty() {
        fields.push(("Tags", tags.join(", ")));
    }
    let mut out = String::new();
    for (k, v) in fields {
        out.push_str(&format!("{:<16}{v}\n", format!("{k}:")));
    }
    let mut t = Table::new(&[
        "CONTAINER",
        "IMAGE",
        "STATE",
        "READY",
        "RESTARTS",
        "REASON",
        "EXIT",
    ]);
    let init = g.init_containers.iter().map(|c| {
        (
            format!("{} (init)", c.name),
            &c.image,
            &c.current_state,
            c.ready,
            c.restart_count,
        )
    });
    let app = g.containers.iter().map(|c| {
        (
            c.name.clone(),
            &c.image,
            &c.current_state,
            c.ready,
            c.restart_count,
        )
    });
    for (name, image, st, ready, restarts) in init.chain(app) {
        let state = st.state.clone().unwrap_or_default();
        t.row(vec![
            name.into(),
            image.clone().into(),
            Cell::status(&state),
            if ready { "yes" } else { "no" }.into(),
            restarts.to_string().into(),
            st.reason.clone().unwrap_or_default().into(),
            st.exit_code
                .map(|c| c.to_string())
                .unwrap_or_default()
                .into(),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render(colour));
    if !g.events.is_empty() {
        let mut t = Table::new(&["LAST SEEN", "TYPE", "REASON", "MESSAGE"]);
        for e in &g.events {
            t.row(vec![
                e.last_timestamp.clone().into(),
                Cell::status(&e.event_type),
                e.reason.clone().into(),
                e.message.trim_end().replace('\n', "\n    ").into(),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render(colour));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_fields_and_containers() {
        let mut g = crate::ps_cmd::tests::sample();
        g.tags.push(berth_client::response::TagInfo {
            key: "team".into(),
            value: "a".into(),
        });
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-04T12:05:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        insta::assert_snapshot!(summary(&g, now, false));
    }
}
