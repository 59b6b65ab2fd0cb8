//! Calls of the API for a signed-in account, through [`berth_server::call`]: the same
//! decoding, ownership checks, quotas and throttling as a signed request.

use berth_eci::{Action, ApiError, Params};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::Signed;
use crate::Console;

/// Runs `action` with `params` (name, value pairs as a signed request would carry them).
pub async fn call(
    console: &Console,
    who: &Signed,
    action: Action,
    params: Vec<(String, String)>,
) -> Result<Value, ApiError> {
    let params = Params::from_pairs(params);
    berth_server::call(&console.state, &who.account, action, &params, &who.host).await
}

/// [`call`], its answer read as `T`.
pub async fn call_as<T: DeserializeOwned>(
    console: &Console,
    who: &Signed,
    action: Action,
    params: Vec<(String, String)>,
) -> Result<T, ApiError> {
    let v = call(console, who, action, params).await?;
    serde_json::from_value(v).map_err(ApiError::internal)
}

/// A name, value pair.
pub fn kv(k: impl Into<String>, v: impl Into<String>) -> (String, String) {
    (k.into(), v.into())
}
