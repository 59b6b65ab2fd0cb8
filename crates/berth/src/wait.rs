//! `berth run --wait`: polls the new group until it is Running, or until it cannot get
//! there (it failed, or its image cannot be pulled), and says why.

use std::time::{Duration, Instant};

use anyhow::bail;
use berth_client::response::{ContainerGroup, ContainerStateInfo};
use berth_client::Client;

use crate::ui::progress::Waiting;

/// Where a group is, as far as a wait for Running is concerned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Running (or already finished with success: it did run).
    Up(String),
    /// It will not get to Running by itself; the reason, for people.
    Down(String),
    /// On its way; its status.
    Pending(String),
}

/// Waiting reasons of a container that the group does not get over by waiting (the node
/// keeps retrying them with back-off).
const STUCK: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerError",
];

/// `container NAME: REASON (exit code N): MESSAGE`, from what the state says.
fn describe_state(name: &str, s: &ContainerStateInfo) -> Option<String> {
    let reason = s.reason.as_deref().filter(|r| !r.is_empty());
    let message = s.message.as_deref().filter(|m| !m.is_empty());
    let code = s.exit_code.filter(|c| *c != 0);
    if reason.is_none() && message.is_none() && code.is_none() {
        return None;
    }
    let mut out = format!("container {name}: {}", reason.unwrap_or("failed"));
    if let Some(c) = code {
        out.push_str(&format!(" (exit code {c})"));
    }
    if let Some(m) = message {
        out.push_str(&format!(": {}", m.trim_end()));
    }
    Some(out)
}

/// The states of every container of `g`, init containers first.
fn states(g: &ContainerGroup) -> impl Iterator<Item = (&str, &ContainerStateInfo)> {
    g.init_containers
        .iter()
        .map(|c| (c.name.as_str(), &c.current_state))
        .chain(
            g.containers
                .iter()
                .map(|c| (c.name.as_str(), &c.current_state)),
        )
}

/// Why `g` failed: its containers' reasons, else its last warning event.
fn failure(g: &ContainerGroup) -> String {
    let mut why: Vec<String> = states(g)
        .filter(|(_, s)| s.state.as_deref() != Some("Running"))
        .filter_map(|(n, s)| describe_state(n, s))
        .collect();
    if why.is_empty() {
        if let Some(e) = g.events.iter().rev().find(|e| e.event_type == "Warning") {
            why.push(format!("{}: {}", e.reason, e.message.trim_end()));
        }
    }
    if why.is_empty() {
        format!("the group is {}", g.status)
    } else {
        why.join("; ")
    }
}

pub(crate) fn verdict(g: &ContainerGroup) -> Verdict {
    match g.status.as_str() {
        "Running" => Verdict::Up("Running".into()),
        "Succeeded" => Verdict::Up("Succeeded (it ran to completion)".into()),
        "Failed" | "ScheduleFailed" | "Expired" => {
            Verdict::Down(format!("{}: {}", g.status, failure(g)))
        }
        status => {
            let stuck: Vec<String> = states(g)
                .filter(|(_, s)| {
                    s.state.as_deref() == Some("Waiting")
                        && s.reason.as_deref().is_some_and(|r| STUCK.contains(&r))
                })
                .filter_map(|(n, s)| describe_state(n, s))
                .collect();
            if stuck.is_empty() {
                Verdict::Pending(status.to_string())
            } else {
                Verdict::Down(format!("{status}: {}", stuck.join("; ")))
            }
        }
    }
}

/// Polls group `id` until `verdict` settles, for at most `timeout`.
pub(crate) async fn until_running(c: &Client, id: &str, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut shown = Waiting::new(id, false);
    let ids = serde_json::to_string(&[id])?;
    loop {
        let page: berth_client::response::DescribeContainerGroupsResponse = c
            .call_as(
                "DescribeContainerGroups",
                &[
                    ("ContainerGroupIds".into(), ids.clone()),
                    ("WithEvent".into(), "true".into()),
                ],
            )
            .await?;
        let Some(g) = page
            .container_groups
            .iter()
            .find(|g| g.container_group_id == id)
        else {
            shown.finish();
            bail!("container group {id} is gone");
        };
        match verdict(g) {
            Verdict::Up(how) => {
                shown.finish();
                eprintln!("{id}: {how}");
                return Ok(());
            }
            Verdict::Down(why) => {
                shown.finish();
                bail!(
                    "container group {id} did not start: {why}\n(it stays until `berth rm {id}`; \
                     `berth events {id}` tells its story)"
                );
            }
            Verdict::Pending(status) => shown.set(&status, None),
        }
        if started.elapsed() >= timeout {
            shown.finish();
            bail!(
                "container group {id} is still {} after {:?}; `berth events {id}` tells why",
                g.status,
                timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_client::response::{ContainerInfo, GroupEvent};

    fn group(status: &str, state: ContainerStateInfo) -> ContainerGroup {
        ContainerGroup {
            status: status.into(),
            containers: vec![ContainerInfo {
                name: "app".into(),
                current_state: state,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn state(state: &str, reason: &str, message: &str, code: Option<i32>) -> ContainerStateInfo {
        ContainerStateInfo {
            state: Some(state.into()),
            reason: Some(reason.into()),
            message: Some(message.into()),
            exit_code: code,
            ..Default::default()
        }
    }

    #[test]
    fn a_pull_error_ends_the_wait_with_its_message() {
        let g = group(
            "Pending",
            state(
                "Waiting",
                "ErrImagePull",
                "Failed to pull image \"x\": not found",
                None,
            ),
        );
        assert_eq!(
            verdict(&g),
            Verdict::Down(
                "Pending: container app: ErrImagePull: Failed to pull image \"x\": not found"
                    .into()
            )
        );
        let g = group("Pending", state("Waiting", "ContainerCreating", "", None));
        assert_eq!(verdict(&g), Verdict::Pending("Pending".into()));
    }

    #[test]
    fn a_failed_group_says_which_container_and_why() {
        let g = group("Failed", state("Terminated", "Error", "", Some(3)));
        assert_eq!(
            verdict(&g),
            Verdict::Down("Failed: container app: Error (exit code 3)".into())
        );
        let mut g = group("ScheduleFailed", ContainerStateInfo::default());
        g.events.push(GroupEvent {
            event_type: "Warning".into(),
            reason: "FailedScheduling".into(),
            message: "no room: 64 vCPU asked".into(),
            ..Default::default()
        });
        assert_eq!(
            verdict(&g),
            Verdict::Down("ScheduleFailed: FailedScheduling: no room: 64 vCPU asked".into())
        );
        assert!(matches!(
            verdict(&group("Running", ContainerStateInfo::default())),
            Verdict::Up(_)
        ));
        assert!(matches!(
            verdict(&group("Succeeded", ContainerStateInfo::default())),
            Verdict::Up(_)
        ));
    }
}
