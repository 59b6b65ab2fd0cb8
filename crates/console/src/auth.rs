//! Who a console request is for: the session of its cookie, and the account of the session's
//! access key read again from the store ([`berth_server::session_account`]), so a key or
//! account disabled since sign-in ends the session at once. POSTs also need the session's
//! CSRF token.

use std::time::SystemTime;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use berth_server::Account;

use crate::session::SessionView;
use crate::Console;

/// Why a request was not let through: no live session (the sign-in page answers), or a POST
/// without the session's CSRF token (403).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    SignIn,
    Csrf,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignIn => Redirect::to("/console/sign-in").into_response(),
            Refusal::Csrf => crate::page::csrf_refused(),
        }
    }
}

/// A signed-in request.
pub struct Signed {
    pub account: Account,
    pub session_id: String,
    pub session: SessionView,
    /// The address the browser reached (exec and log-stream URLs name it).
    pub host: String,
}

/// The signed-in caller of a request, or the redirect to the sign-in page.
pub async fn signed(console: &Console, headers: &HeaderMap) -> Result<Signed, Refusal> {
    let to_sign_in = || Refusal::SignIn;
    let id = crate::cookie::read(headers).ok_or_else(to_sign_in)?;
    let session = console
        .sessions
        .get(&id, SystemTime::now())
        .await
        .ok_or_else(to_sign_in)?;
    let account = match berth_server::session_account(
        &console.state,
        &session.key_id,
        &session.account,
    )
    .await
    {
        Ok(a) => a,
        Err(_) => {
            console.sessions.remove(&id).await;
            return Err(to_sign_in());
        }
    };
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    Ok(Signed {
        account,
        session_id: id,
        session,
        host,
    })
}

/// [`signed`], for a POST whose form field or header must carry the session's CSRF token:
/// without it, the 403 page.
pub async fn signed_post(
    console: &Console,
    headers: &HeaderMap,
    form_token: Option<&str>,
) -> Result<Signed, Refusal> {
    let s = signed(console, headers).await?;
    let header = headers
        .get(crate::csrf::HEADER)
        .and_then(|h| h.to_str().ok());
    if !crate::csrf::matches(&s.session.csrf, form_token.or(header)) {
        return Err(Refusal::Csrf);
    }
    Ok(s)
}
