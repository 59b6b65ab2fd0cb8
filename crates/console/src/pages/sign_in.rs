//! Sign-in with an AccessKeyId and AccessKeySecret ([`berth_server::sign_in`]: the signature
//! check's own key lookup, throttled per key id), and sign-out, which deletes the session.

use std::time::SystemTime;

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

/// `POST /console/sign-in`: no CSRF token yet (there is no session). A form posted from
/// another site is refused ([`cross_site`]): it would sign the browser in to the poster's
/// account (login CSRF), whose groups the victim would then fill.
pub async fn submit(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    if cross_site(&headers) {
        return crate::page::csrf_refused();
    }
    let key_id = f.access_key_id.trim();
    match berth_server::sign_in(&c.state, key_id, &f.access_key_secret).await {
        Ok(account) => {
            let id = match c
                .sessions
                .create(account.name(), key_id, SystemTime::now())
                .await
            {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(error = %e, "storing a console session");
                    let e = ApiError::internal("the session could not be stored");
                    return html_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        form_page(Some(&e), key_id),
                    );
                }
            };
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

/// Whether the browser says the request comes from another origin. `Sec-Fetch-Site`, which
/// every current browser sends, decides when present: only `same-origin` and `none` (typed or
/// bookmarked) pass. Without it, an `Origin` whose host is not the request's `Host` is
/// refused; `Origin: null` is what a same-origin form sends under this console's
/// `Referrer-Policy: no-referrer`, so it says nothing. A request that says neither (an old
/// browser, a script) is taken as same-origin: the secret stands for it.
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (None | Some("null"), _) => false,
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
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
    let who = match crate::auth::signed_post(&c, &headers, f.csrf.as_deref()).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    c.sessions.remove(&who.session_id).await;
    (
        [(header::SET_COOKIE, crate::cookie::clear(c.state.tls()))],
        Redirect::to("/console/sign-in"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_sign_in_posted_from_another_site_is_told_apart() {
        let host = ("host", "127.0.0.1:8080");
        let same = "http://127.0.0.1:8080";
        assert!(!cross_site(&headers(&[host])));
        assert!(!cross_site(&headers(&[host, ("origin", same)])));
        assert!(!cross_site(&headers(&[
            host,
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!cross_site(&headers(&[host, ("sec-fetch-site", "none")])));
        assert!(cross_site(&headers(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(cross_site(&headers(&[
            host,
            ("origin", "http://127.0.0.1:9090")
        ])));
        assert!(cross_site(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(cross_site(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        // A same-origin form under `Referrer-Policy: no-referrer`, as Chromium sends it.
        let null = ("origin", "null");
        assert!(!cross_site(&headers(&[
            host,
            null,
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!cross_site(&headers(&[host, null])));
        // The browser's word decides.
        assert!(cross_site(&headers(&[
            host,
            ("origin", same),
            ("sec-fetch-site", "cross-site")
        ])));
    }
}
