//! The berth side of the pod controller: the few calls it makes, behind [`Groups`], which
//! berth's own [`berth_client::Client`] implements and tests fake.

use std::time::Duration;

use async_trait::async_trait;
use berth_client::response::ContainerGroup;
use berth_client::{Client, ClientError, CreateParams, DescribeParams};
use berth_core::Volume;

use crate::pod::TAG_POD_UID;

/// Groups per DescribeContainerGroups page (ECI's most).
const LIST_PAGE: u32 = 20;

/// Why a call to berth failed, as the controller acts on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupsError {
    /// A 5xx, a transport error or an undecodable answer: tried again with back-off.
    #[error("berth is unavailable: {0}")]
    Transient(String),
    /// berth refused the request (a 4xx): the pod fails with this message.
    #[error("berth refused the group: {0}")]
    Refused(String),
}

impl From<ClientError> for GroupsError {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Api { status, .. } | ClientError::Unexpected { status, .. }
                if (400..500).contains(status) && *status != 429 =>
            {
                Self::Refused(e.to_string())
            }
            _ => Self::Transient(e.to_string()),
        }
    }
}

/// berth's container groups, as the pod controller uses them. Every read carries the groups'
/// events (`WithEvent`): they are posted on the pods, and a group read with them compares
/// equal only to itself read with them.
#[async_trait]
pub trait Groups: Send + Sync {
    /// Creates the group; `p.client_token` (the pod's uid) makes a second create a no-op.
    /// Returns the group's id.
    async fn create(&self, p: &CreateParams) -> Result<String, GroupsError>;
    /// Every group carrying the [`TAG_POD_UID`] tag: the groups of pods.
    async fn list(&self) -> Result<Vec<ContainerGroup>, GroupsError>;
    /// The groups of pods whose record changed within `within` (at least those; more is
    /// harmless).
    async fn changed(&self, within: Duration) -> Result<Vec<ContainerGroup>, GroupsError>;
    /// The groups among `ids` (at most 20) that exist.
    async fn get(&self, ids: &[String]) -> Result<Vec<ContainerGroup>, GroupsError>;
    /// Deletes the group (berth stops its containers within their grace period first: the
    /// group's own, or `grace` seconds, the pod's deletion grace period). A group that is gone
    /// already is no error.
    async fn delete(&self, id: &str, grace: Option<u64>) -> Result<(), GroupsError>;
    /// Replaces the group's volumes of the same names by `volumes` (an IncrementalUpdate;
    /// ConfigFile volumes whose files alone changed are written in place).
    async fn update_volumes(&self, id: &str, volumes: &[Volume]) -> Result<(), GroupsError>;
}

/// The pod uid a group is tagged with.
pub fn pod_uid(g: &ContainerGroup) -> Option<&str> {
    g.tags
        .iter()
        .find(|t| t.key == TAG_POD_UID)
        .map(|t| t.value.as_str())
}

#[async_trait]
impl Groups for Client {
    async fn create(&self, p: &CreateParams) -> Result<String, GroupsError> {
        Ok(self.create_container_group(p).await?.container_group_id)
    }

    async fn list(&self) -> Result<Vec<ContainerGroup>, GroupsError> {
        // ECI's largest page: 1,000 groups are 50 calls.
        let p = DescribeParams {
            limit: Some(LIST_PAGE),
            with_event: true,
            ..Default::default()
        };
        let all = self.list_container_groups(&p).await?;
        Ok(all.into_iter().filter(|g| pod_uid(g).is_some()).collect())
    }

    async fn changed(&self, within: Duration) -> Result<Vec<ContainerGroup>, GroupsError> {
        // berth's SinceSecond extension: only the rows changed lately are read and sent.
        let p = DescribeParams {
            limit: Some(LIST_PAGE),
            since_second: Some(within.as_secs_f64().ceil() as u64),
            with_event: true,
            ..Default::default()
        };
        let all = self.list_container_groups(&p).await?;
        Ok(all.into_iter().filter(|g| pod_uid(g).is_some()).collect())
    }

    async fn get(&self, ids: &[String]) -> Result<Vec<ContainerGroup>, GroupsError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let p = DescribeParams {
            ids: ids.to_vec(),
            limit: Some(LIST_PAGE),
            with_event: true,
            ..Default::default()
        };
        Ok(self.list_container_groups(&p).await?)
    }

    async fn delete(&self, id: &str, grace: Option<u64>) -> Result<(), GroupsError> {
        let res = match grace {
            Some(g) => self.delete_container_group_within(id, g).await,
            None => self.delete_container_group(id).await,
        };
        match res {
            Ok(_) => Ok(()),
            Err(ClientError::Api { status: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn update_volumes(&self, id: &str, volumes: &[Volume]) -> Result<(), GroupsError> {
        self.update_container_group_volumes(id, volumes).await?;
        Ok(())
    }
}
