//! `berth top`: live CPU and memory use of the running groups, from
//! DescribeMultiContainerGroupMetric (the latest sample of up to 20 groups per call).

use std::time::Duration;

use serde_json::Value;

use crate::cli::{client, ClientArgs};
use crate::ui::Format;

#[derive(clap::Args)]
pub struct TopArgs {
    /// Print once and exit.
    #[arg(long)]
    once: bool,
    /// Seconds between two refreshes.
    #[arg(long, default_value_t = 2)]
    interval: u64,
    /// Output format; json and yaml (the latest DescribeMultiContainerGroupMetric records)
    /// go with --once.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    output: Format,
}

fn mib(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0)
}

pub async fn top(a: &ClientArgs, t: TopArgs) -> anyhow::Result<()> {
    if t.output != Format::Table && !t.once {
        anyhow::bail!("-o json and -o yaml go with --once");
    }
    let c = client(a)?;
    loop {
        let groups = c
            .call(
                "DescribeContainerGroups",
                &[
                    ("RegionId".into(), a.region.clone()),
                    ("Status".into(), "Running".into()),
                    ("Limit".into(), "20".into()),
                ],
            )
            .await?;
        let list = groups["ContainerGroups"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let names: std::collections::HashMap<String, String> = list
            .iter()
            .map(|g| {
                (
                    g["ContainerGroupId"].as_str().unwrap_or("").to_string(),
                    g["ContainerGroupName"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let ids: Vec<&str> = names.keys().map(String::as_str).collect();
        let mut lines = vec![format!(
            "{:<24} {:<20} {:<16} {:>8} {:>8} {:>10}",
            "GROUP", "NAME", "CONTAINER", "CPU", "LIMIT", "MEM(MiB)"
        )];
        if !ids.is_empty() {
            let v = c
                .call(
                    "DescribeMultiContainerGroupMetric",
                    &[
                        ("RegionId".into(), a.region.clone()),
                        ("ContainerGroupIds".into(), serde_json::to_string(&ids)?),
                    ],
                )
                .await?;
            let datas = v["MonitorDatas"].as_array().cloned().unwrap_or_default();
            if crate::ui::format::print_document(t.output, &datas)? {
                return Ok(());
            }
            for d in datas {
                let gid = d["ContainerGroupId"].as_str().unwrap_or("");
                let Some(r) = d["Records"].as_array().and_then(|r| r.last()) else {
                    continue;
                };
                let name = names.get(gid).map(String::as_str).unwrap_or("");
                let cores = |cpu: &Value| cpu["UsageNanoCores"].as_f64().unwrap_or(0.0) / 1e9;
                let limit = |cpu: &Value| cpu["Limit"].as_f64().unwrap_or(0.0) / 1000.0;
                lines.push(format!(
                    "{:<24} {:<20} {:<16} {:>8.3} {:>8.2} {:>10.1}",
                    gid,
                    name,
                    "-",
                    cores(&r["CPU"]),
                    limit(&r["CPU"]),
                    mib(&r["Memory"]["WorkingSet"])
                ));
                for ct in r["Containers"].as_array().cloned().unwrap_or_default() {
                    lines.push(format!(
                        "{:<24} {:<20} {:<16} {:>8.3} {:>8.2} {:>10.1}",
                        "",
                        "",
                        ct["Name"].as_str().unwrap_or(""),
                        cores(&ct["CPU"]),
                        limit(&ct["CPU"]),
                        mib(&ct["Memory"]["WorkingSet"])
                    ));
                }
            }
        }
        if crate::ui::format::print_document(t.output, &Vec::<Value>::new())? {
            return Ok(());
        }
        if !t.once {
            print!("\x1b[H\x1b[2J");
        }
        println!("{}", lines.join("\n"));
        if t.once {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(t.interval.max(1))).await;
    }
}
