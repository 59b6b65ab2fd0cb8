//! The control plane: what each API action does to the desired state, independent of HTTP.
//! It records groups in the [`Store`], hands them to a node agent through [`NodeClient`] (an
//! in-process call in `berth serve`, a remote one in cluster mode) and folds what the node
//! reports back into the records.

mod accounts;
mod billing;
mod cache;
mod cache_claim;
#[cfg(test)]
mod cache_claim_tests;
mod classes;
pub mod cluster;
mod deadline;
#[cfg(test)]
mod delete_tests;
mod idempotency;
mod node;
mod observe;
mod ports;
mod prices;
mod reports;
mod schedule;
mod service;
mod spot;
mod tags;

/// The store's types that the control plane's calls take and answer.
pub use berth_store::{
    AccessKey, GroupFilter, KeyCheck, Page, QuotaResource, TagCursor, TagPage, TagQuery,
};
pub use billing::GroupCharge;
pub use cache::{CacheFilter, CachePage, ImageCacheUpdate, NewImageCache, Quota, CACHE_STORAGE};
pub use classes::NodeClasses;
pub use node::{CacheBuild, CacheMade, CacheNode};
pub use node::{
    ExecOutput, ExecProcess, ExecReader, ExecRequest, ExecStream, ExecWriter, LogRequest,
    MetricRange, NodeClient, NodeError, NodeObserve, PortIo, PortStream,
};
pub use prices::{
    load_prices, parse_prices, read_prices, PricesFileError, MAX_PRICES_FILE, PRICES_FILE,
};
pub use reports::{PendingReports, Reports};
pub use schedule::{
    CapacityUse, SchedulePolicy, DEFAULT_SCHEDULE_TIMEOUT, DEFAULT_SPOT_NOTICE, REASON_NO_STOCK,
    REASON_WAITING, SCHEDULE_FAILED_KEPT,
};
pub use service::{Control, ControlError, EventHook};
pub use spot::{REASON_EXPIRED, REASON_FALLBACK, REASON_RELEASED, REASON_TO_BE_RELEASED};
