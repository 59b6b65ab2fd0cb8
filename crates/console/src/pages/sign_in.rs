//! Sign-in with an AccessKeyId and AccessKeySecret ([`berth_server::sign_in`]: the signature
//! check's own key lookup, throttled per key id), and sign-out, which deletes the session.

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use berth_eci::ApiError;
use maud::{html, Markup};
use serde::Deserialize;

use crate::page::{error_box, html_response, layout};
use crate::Console;

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    access_key_secret: String,
}

fn form_page(error: Option<&ApiError>, key_id: &str) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(e) = error { (error_box(e)) }
            form.card method="post" action="/console/sign-in" {
                p { "Sign in with an access key of your account (" code { "berth admin key create" } ")." }
                label for="access_key_id" { "AccessKeyId" }
                input id="access_key_id" name="access_key_id" autocomplete="username" required value=(key_id);
                label for="access_key_secret" { "AccessKeySecret" }
                input id="access_key_secret" name="access_key_secret" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// `GET /console/sign-in`.
pub async fn form() -> Response {
    html_response(StatusCode::OK, form_page(None, ""))
}

/// `POST /console/sign-in`: no CSRF token yet (there is no session); SameSite=Strict and the
/// secret itself stand for it.
pub async fn submit(State(c): State<Console>, Form(f): Form<SignInForm>) -> Response {
    let key_id = f.access_key_id.trim();
    match berth_server::sign_in(&c.state, key_id, &f.access_key_secret) {
        Ok(account) => {
            let id = c.sessions.create(account.name(), key_id, Instant::now());
            let cookie = crate::cookie::set(&id, c.state.tls(), c.sessions.config().absolute);
            (
                [(header::SET_COOKIE, cookie)],
                Redirect::to("/console/groups"),
            )
                .into_response()
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            html_response(status, form_page(Some(&e), key_id))
        }
    }
}

#[derive(Deserialize)]
pub struct SignOutForm {
    csrf: Option<String>,
}

/// `POST /console/sign-out`: deletes the session and the cookie.
pub async fn sign_out(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<SignOutForm>,
) -> Response {
    let who = match crate::auth::signed_post(&c, &headers, f.csrf.as_deref()) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    c.sessions.remove(&who.session_id);
    (
        [(header::SET_COOKIE, crate::cookie::clear(c.state.tls()))],
        Redirect::to("/console/sign-in"),
    )
        .into_response()
}
