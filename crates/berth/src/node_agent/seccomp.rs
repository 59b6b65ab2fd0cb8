//! The node's view of accounts' seccomp settings in a cluster: asked of the control plane
//! for each group before its containers start (`POST /node/v1/seccomp`), which answers only
//! for groups placed on this node.

use std::sync::OnceLock;

use berth_control::cluster::protocol::{SeccompQuery, SeccompSetting};
use berth_core::GroupId;
use berth_node::SeccompProfiles;
use berth_runtime::seccomp::Seccomp;
use berth_store::AccountSeccomp;

use super::link::ControlLink;
use crate::seccomp_node::ParsedProfiles;

/// Each group's account's setting, from the control plane; a stored profile parsed once.
#[derive(Default)]
pub(crate) struct ControlSeccomp {
    /// Set once the node has joined: no group starts before.
    link: OnceLock<ControlLink>,
    parsed: ParsedProfiles,
}

impl ControlSeccomp {
    pub(crate) fn connect(&self, link: ControlLink) {
        let _ = self.link.set(link);
    }
}

#[async_trait::async_trait]
impl SeccompProfiles for ControlSeccomp {
    async fn for_group(&self, group: &GroupId, _account: &str) -> Result<Seccomp, String> {
        let link = self
            .link
            .get()
            .ok_or("the node has not joined the control plane yet")?;
        let reply = link
            .seccomp(&SeccompQuery {
                group: group.clone(),
            })
            .await
            .map_err(|e| format!("{e:#}"))?;
        self.parsed.seccomp(match reply.setting {
            SeccompSetting::Default => AccountSeccomp::Default,
            SeccompSetting::Unconfined => AccountSeccomp::Unconfined,
            SeccompSetting::Profile(text) => AccountSeccomp::Profile(text),
        })
    }
}
