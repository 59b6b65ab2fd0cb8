//! `berth events GROUP`: the events of a group (the last 50 ECI keeps, and more), oldest
//! first, from DescribeContainerGroupEvents; `-o json|yaml` prints them whole.

use anyhow::Context;
use berth_client::response::{DescribeContainerGroupEventsResponse, K8sEvent};

use crate::cli::{client, ClientArgs};
use crate::ui::table::Cell;
use crate::ui::{Format, Table};

#[derive(clap::Args)]
pub struct EventsArgs {
    /// Container group id.
    id: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    output: Format,
}

pub async fn events(a: &ClientArgs, e: EventsArgs) -> anyhow::Result<()> {
    let c = client(a)?;
    let v: DescribeContainerGroupEventsResponse = c
        .call_as(
            "DescribeContainerGroupEvents",
            &[
                ("RegionId".into(), a.region.clone()),
                ("ContainerGroupIds".into(), serde_json::to_string(&[&e.id])?),
            ],
        )
        .await?;
    let data = v
        .data
        .into_iter()
        .find(|d| d.container_group_id == e.id)
        .with_context(|| format!("no container group {}", e.id))?;
    if crate::ui::format::print_document(e.output, &data.events)? {
        return Ok(());
    }
    print!(
        "{}",
        table(&data.events).render(crate::ui::colour::stdout())
    );
    Ok(())
}

fn table(events: &[K8sEvent]) -> Table {
    let mut t = Table::new(&["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    for ev in events {
        t.row(vec![
            ev.last_timestamp.clone().into(),
            Cell::status(&ev.event_type),
            ev.reason.clone().into(),
            ev.involved_object.name.clone().into(),
            ev.message.trim_end().replace('\n', "\n    ").into(),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> K8sEvent {
        K8sEvent {
            count: 1,
            event_type: "Warning".into(),
            reason: "Failed".into(),
            message: "Failed to pull image \"x\": not found".into(),
            first_timestamp: "2026-12-04T12:00:00Z".into(),
            last_timestamp: "2026-12-04T12:00:00Z".into(),
            ..Default::default()
        }
    }

    #[test]
    fn json_shape() {
        let doc = crate::ui::format::document(Format::Json, &[sample()]).unwrap();
        insta::assert_snapshot!(doc.unwrap());
    }
}
