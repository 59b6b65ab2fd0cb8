//! A group's sandbox: its sized temporary storage, volumes, network attachment, `/etc`
//! files and (with `--userns`) user namespace, set up before any container starts and
//! retried with back-off until it is. The gvisor class's runtime sandbox is `shared`'s.

use std::sync::Arc;

use berth_core::{EventType, GroupSpec};
use tokio_util::sync::CancellationToken;

use super::etc::write_etc;
use super::state::GroupState;
use crate::files::{error_chain, GroupDirs};
use crate::host::Host;

/// What a group's containers share: its network and, with `--userns`, its user namespace.
pub struct Sandbox {
    pub attachment: berth_net::Attachment,
    pub userns: Option<crate::userns::GroupUserns>,
    /// The runtime sandbox the containers share (gvisor class).
    pub shared: Option<std::sync::Arc<super::shared::SharedSandbox>>,
}

/// The group's network and its /etc files, retried with back-off until they are set up or the
/// group goes (`None`). A failure here is berth's, not the group's: it never fails the group,
/// whatever its restart policy, as kubelet retries a sandbox it could not create.
#[allow(clippy::too_many_arguments)]
pub async fn sandbox(
    host: &Arc<Host>,
    gid: &str,
    dirs: &GroupDirs,
    hostname: &str,
    storage_gib: u32,
    spec: &GroupSpec,
    state: &Arc<GroupState>,
    cancel: &CancellationToken,
) -> Option<(berth_net::Attachment, Option<crate::userns::GroupUserns>)> {
    let mut attempt = 0u32;
    loop {
        let res = size_storage(host, gid, dirs, storage_gib).and_then(|()| {
            // With user namespaces, the volumes belong to the group's mapped root.
            let map = match &host.userns {
                Some(u) => Some(
                    u.map(gid)
                        .map_err(|e| format!("cannot set up the group's user namespace: {e}"))?,
                ),
                None => None,
            };
            // An update may have changed or dropped volumes made before.
            super::volumes::drop_changed(dirs, spec)
                .and_then(|()| {
                    super::volumes::prepare(
                        dirs,
                        spec,
                        super::volumes::owner(map, spec.fs_group),
                        &host.host_paths,
                    )
                })
                .map_err(|e| format!("cannot set up the group's volumes: {e}"))
        });
        let res = match res {
            Err(msg) => Err(msg),
            // Not cut short when the group goes: its removal must not race a half-done ADD.
            Ok(()) => host.net.attach(gid).await.map_err(|e| {
                format!(
                    "cannot set up the network of the group: {}",
                    error_chain(&e)
                )
            }),
        };
        let res = res.and_then(|att| {
            let ip = att.ip.to_string();
            write_etc(
                dirs,
                hostname,
                Some(&ip),
                spec.dns_config.as_ref(),
                spec.dns_policy,
                &spec.host_aliases,
            )
            .map(|()| att)
            .map_err(|e| format!("cannot write the group's /etc files: {e}"))
        });
        let res = res.and_then(|att| match &host.userns {
            None => Ok((att, None)),
            Some(u) => crate::userns::prepare(u, gid, dirs, &att.netns, &spec.sysctls)
                .map(|g| (att, Some(g)))
                .map_err(|e| {
                    format!(
                        "cannot set up the group's user namespace: {}",
                        error_chain(&*e)
                    )
                }),
        });
        let msg = match res {
            Ok((att, userns)) => {
                let ip = att.ip.to_string();
                state.update(|o| o.intranet_ip = Some(ip));
                return Some((att, userns));
            }
            Err(msg) => msg,
        };
        let delay = berth_core::setup_backoff(attempt);
        tracing::error!(group = %gid, error = %msg, retry_in_s = delay.as_secs(), "group sandbox setup failed");
        state.event(
            EventType::Warning,
            "FailedCreatePodSandBox",
            format!("{msg}; retrying in {}s", delay.as_secs()),
            None,
        );
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return None,
        }
    }
}

/// Gives the group its sized temporary storage (a spare one taken by `claim`, or a new
/// one) and sets its limit; groups whose writable tree predates the storage keep it.
fn size_storage(host: &Host, gid: &str, dirs: &GroupDirs, gib: u32) -> Result<(), String> {
    let Some(storage) = &host.storage else {
        return Ok(());
    };
    if !dirs.rw.starts_with(storage.root()) {
        return Ok(());
    }
    storage
        .create(gid, u64::from(gib) << 30)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "cannot set up the group's temporary storage: {}",
                error_chain(&e)
            )
        })
}
