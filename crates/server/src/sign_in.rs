//! Signing in with an AccessKey pair instead of a signature (the console): the key is found by
//! the same lookup the signature check uses, its secret compared in constant time, and a
//! disabled key or account refused alike. Attempts are throttled per AccessKeyId. A signed-in
//! holder of a key id reads the key again on every use ([`session_account`]), so disabling or
//! deleting it counts at once, as for signed requests.

use berth_eci::ApiError;
use subtle::ConstantTimeEq;

use crate::{Account, AppState};

/// One answer for an unknown key id and a wrong secret: a sign-in tells nobody which key ids
/// exist.
fn invalid() -> ApiError {
    ApiError::new(
        400,
        "InvalidAccessKey",
        "The specified AccessKeyId and AccessKeySecret do not match an access key: check both and sign in again",
    )
}

fn inactive(key_id: &str) -> ApiError {
    ApiError::new(
        400,
        "InvalidAccessKeyId.Inactive",
        format!("Specified access key is disabled: {key_id}"),
    )
}

/// The account of the key `key_id` when `secret` is its secret and it may be used now.
pub async fn sign_in(state: &AppState, key_id: &str, secret: &str) -> Result<Account, ApiError> {
    if key_id.is_empty() || key_id.len() > 128 || secret.len() > 256 {
        return Err(invalid());
    }
    if let Err(ms) = state.throttle.take_sign_in(key_id) {
        return Err(crate::throttle::sign_in_throttled(ms));
    }
    let key = state
        .control
        .check_access_key(key_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(invalid)?;
    let same: bool = key.key.secret.as_bytes().ct_eq(secret.as_bytes()).into();
    if !same {
        return Err(invalid());
    }
    if !key.active {
        return Err(inactive(key_id));
    }
    Ok(Account(key.key.account))
}

/// The account of the key `key_id`, read again, for a holder that signed in with it earlier:
/// an error when the key was deleted or disabled since, or now belongs to another account
/// than `account`.
pub async fn session_account(
    state: &AppState,
    key_id: &str,
    account: &str,
) -> Result<Account, ApiError> {
    let key = state
        .control
        .check_access_key(key_id)
        .await
        .map_err(ApiError::internal)?
        .filter(|k| k.key.account == account)
        .ok_or_else(invalid)?;
    if !key.active {
        return Err(inactive(key_id));
    }
    Ok(Account(key.key.account))
}
