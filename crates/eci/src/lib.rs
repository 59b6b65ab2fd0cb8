//! The ECI 2018-08-08 wire protocol as berth speaks it (ECI_API.md): request signatures
//! (ACS3-HMAC-SHA256 and RPC HMAC-SHA1), decoding of flattened parameters into `berth-core`
//! specs, response bodies and error codes. Pure functions: no I/O, no async.

pub mod canon;
pub mod error;
pub mod params;
pub mod request;
pub mod response;
pub mod sign;

pub use error::ApiError;
pub use params::Params;
pub use request::{Action, Request};
pub use sign::{verify, AuthError, RawRequest, Scheme, Verified};

/// The API version berth implements.
pub const API_VERSION: &str = "2018-08-08";
