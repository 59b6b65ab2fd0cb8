//! `berth events GROUP`: the events of a group (the last 50 ECI keeps, and more), oldest
//! first, from DescribeContainerGroupEvents.

use anyhow::Context;

use crate::cli::{client, ClientArgs};

#[derive(clap::Args)]
pub struct EventsArgs {
    /// Container group id.
    id: String,
}

pub async fn events(a: &ClientArgs, e: EventsArgs) -> anyhow::Result<()> {
    let c = client(a)?;
    let v = c
        .call(
            "DescribeContainerGroupEvents",
            &[
                ("RegionId".into(), a.region.clone()),
                ("ContainerGroupIds".into(), serde_json::to_string(&[&e.id])?),
            ],
        )
        .await?;
    let data = v["Data"]
        .get(0)
        .with_context(|| format!("no container group {}", e.id))?;
    println!(
        "{:<20} {:<8} {:<14} {:<24} MESSAGE",
        "LAST SEEN", "TYPE", "REASON", "OBJECT"
    );
    for ev in data["Events"].as_array().cloned().unwrap_or_default() {
        let field = |k: &str| ev[k].as_str().unwrap_or("").to_string();
        let obj = ev["involvedObject"]["FieldPath"]
            .as_str()
            .or(ev["involvedObject"]["Name"].as_str())
            .unwrap_or("")
            .to_string();
        println!(
            "{:<20} {:<8} {:<14} {:<24} {}",
            field("LastTimestamp"),
            field("Type"),
            field("Reason"),
            obj,
            field("Message").replace('\n', "\n    ")
        );
    }
    Ok(())
}
