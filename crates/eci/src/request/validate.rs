//! Checks of names and strings shared by the request decoders.

use crate::error::ApiError;
use crate::params::Params;

use super::create::MAX_CLIENT_TOKEN_LEN;

/// `ContainerGroupName`: 2–128 of `[a-z0-9-]`, not starting or ending with `-`.
pub fn group_name(name: &str) -> Result<(), ApiError> {
    let ok = (2..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(
            "ContainerGroupName",
            format!("must be 2 to 128 lower-case letters, digits and '-', not starting or ending with '-', got {name:?}"),
        ))
    }
}

/// A container name: a DNS label (1–63 of `[a-z0-9-]`, starting and ending with a letter or digit).
pub fn container_name(param: &str, name: &str) -> Result<(), ApiError> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(
            param,
            format!("must be 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit, got {name:?}"),
        ))
    }
}

/// A host name: 1–253 of letters, digits, `-` and `.`, each label 1–63 and not starting or
/// ending with `-`.
pub fn host_name(param: &str, name: &str) -> Result<(), ApiError> {
    let ok = (1..=253).contains(&name.len())
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(
            param,
            format!("is not a valid host name: {name:?}"),
        ))
    }
}

/// A string handed to a process (argv, environment, path): no NUL byte.
pub fn no_nul(param: &str, s: &str) -> Result<(), ApiError> {
    if s.contains('\0') {
        return Err(ApiError::invalid_parameter(
            param,
            "must not contain a NUL character",
        ));
    }
    Ok(())
}

/// `ClientToken`: at most 64 printable ASCII characters; empty counts as absent.
pub fn client_token(p: &Params) -> Result<Option<String>, ApiError> {
    let Some(t) = p.string("ClientToken") else {
        return Ok(None);
    };
    if t.len() > MAX_CLIENT_TOKEN_LEN {
        return Err(ApiError::length_exceeded(
            "ClientToken",
            MAX_CLIENT_TOKEN_LEN,
        ));
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid_parameter(
            "ClientToken",
            "must be printable ASCII characters",
        ));
    }
    Ok(Some(t))
}

/// A comma-separated list of registry hosts (`PlainHttpRegistry`, `InsecureRegistry`).
pub fn host_list(p: &Params, name: &str) -> Result<Vec<String>, ApiError> {
    let Some(v) = p.string(name) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for h in v.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        if h.bytes().any(|b| !b.is_ascii_graphic()) || h.contains('/') {
            return Err(ApiError::invalid_parameter(
                name,
                format!("must be comma-separated registry hosts (host or host:port), got {h:?}"),
            ));
        }
        out.push(h.to_string());
    }
    Ok(out)
}
