//! What the API's front door asks of accounts and keys: whether a key may be used and which
//! account it is of, whether an account is an operator's, and every group for the metrics.
//! The server asks these of the control plane; the store stays the control plane's.

use berth_core::GroupRecord;
use berth_store::KeyCheck;

use crate::{Control, ControlError};

impl Control {
    /// The access key `id` with whether it may be used now (neither it nor its account
    /// disabled), read afresh: a key disabled or deleted a moment ago counts at once.
    pub async fn check_access_key(&self, id: &str) -> Result<Option<KeyCheck>, ControlError> {
        Ok(self.store.check_access_key(id).await?)
    }

    /// Whether `account` is an operator's (its keys may read every account's bill).
    pub async fn is_operator(&self, account: &str) -> Result<bool, ControlError> {
        Ok(self.store.account_operator(account).await?)
    }

    /// Every group of every account, for the operator's metrics.
    pub async fn every_group(&self) -> Result<Vec<GroupRecord>, ControlError> {
        Ok(self.store.all_groups().await?)
    }
}
