//! TagResources, UntagResources and ListTagResources: the store does the work in one
//! transaction per call; this says which of its refusals is which error of the API's.

use berth_core::{TagChange, TagResourceType};
use berth_store::{StoreError, TagCursor, TagPage, TagQuery};

use crate::{Control, ControlError};

impl Control {
    /// Applies `change` to every one of `ids`, the account's resources of type `kind`, or to
    /// none: [`ControlError::NotFound`] / [`ControlError::CacheNotFound`] for an id that is
    /// not the account's, [`ControlError::TooManyTags`] when a resource would carry more
    /// than 20 tags.
    pub async fn change_tags(
        &self,
        account: &str,
        kind: TagResourceType,
        ids: &[String],
        change: &TagChange,
    ) -> Result<(), ControlError> {
        self.store
            .change_tags(account, kind, ids, change)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(id) => ControlError::NotFound(id),
                StoreError::CacheNotFound(id) => ControlError::CacheNotFound(id),
                StoreError::TooManyTags { id, count } => ControlError::TooManyTags { id, count },
                e => ControlError::Store(e),
            })
    }

    /// A page of the tags of the account's resources of type `kind` matching `query`.
    pub async fn list_tags(
        &self,
        account: &str,
        kind: TagResourceType,
        query: &TagQuery,
        limit: usize,
        after: Option<&TagCursor>,
    ) -> Result<TagPage, ControlError> {
        Ok(self
            .store
            .list_tags(account, kind, query, limit, after)
            .await?)
    }
}
