//! berth's ECI client, used by the `berth` CLI and the virtual kubelet: calls the ECI
//! 2018-08-08 API signed with ACS3-HMAC-SHA256 exactly as the official SDK signs them, and
//! turns error bodies into [`ClientError::Api`].

mod client;
mod credentials;
mod flatten;

pub use client::{Client, ClientError, PreparedRequest, USER_AGENT};
pub use credentials::{Credentials, CredentialsError, ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET};
pub use flatten::{CreateParams, DescribeParams, ExecParams, LogParams, UsageParams};

pub use berth_eci::response;
