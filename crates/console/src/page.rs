//! The layout every page shares (navigation, sign-out form, the CSRF token for the script),
//! the rendering of an API error, and the headers of every console answer: a
//! Content-Security-Policy that allows scripts only from the console's own files, no framing,
//! no referrer, no caching of pages.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_eci::ApiError;
use maud::{html, Markup, DOCTYPE};

use crate::auth::Signed;

/// The policy: scripts and styles from the console itself (styles may also be set by the
/// vendored terminal and chart code), connections (log stream, exec WebSocket) to the same
/// origin, nothing else.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every answer of the console.
pub async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A full page titled `title`; with `who`, the navigation and the sign-out form.
pub fn layout(title: &str, who: Option<&Signed>, body: Markup) -> Markup {
    layout_with(title, who, &[], body)
}

/// [`layout`] that also loads the vendored `assets` (file names under `/console/assets/`:
/// `.js` as scripts before the console's own, `.css` as stylesheets).
pub fn layout_with(title: &str, who: Option<&Signed>, assets: &[&str], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(w) = who {
                    meta name="csrf-token" content=(w.session.csrf);
                }
                title { (title) " · berth console" }
                @for a in assets.iter().filter(|a| a.ends_with(".css")) {
                    link rel="stylesheet" href={ "/console/assets/" (a) };
                }
                link rel="stylesheet" href="/console/assets/console.css";
                @for a in assets.iter().filter(|a| a.ends_with(".js")) {
                    script src={ "/console/assets/" (a) } defer {}
                }
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/groups" { "berth" }
                    @if let Some(w) = who {
                        nav aria-label="Main" {
                            a href="/console/groups" { "Container groups" }
                            a href="/console/groups/new" { "Create" }
                            a href="/console/caches" { "Image caches" }
                            a href="/console/usage" { "Usage" }
                        }
                        form.signout method="post" action="/console/sign-out" {
                            (csrf_field(w))
                            span.account { "Account " strong { (w.account.name()) } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(who: &Signed) -> Markup {
    html! { input type="hidden" name=(crate::csrf::FIELD) value=(who.session.csrf); }
}

/// An API error as the page shows it: its code and message.
pub fn error_box(e: &ApiError) -> Markup {
    html! {
        div.error role="alert" {
            strong { (e.code) } " " (e.message)
        }
    }
}

/// An HTML answer.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A page that shows an API error, with the error's status.
pub fn error_page(who: Option<&Signed>, e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = if status == StatusCode::NOT_FOUND {
        "Not found"
    } else {
        "Refused"
    };
    html_response(
        status,
        layout(
            title,
            who,
            html! {
                (error_box(e))
                p { a href="/console/groups" { "Back to the container groups" } }
            },
        ),
    )
}

/// The answer to a POST without the session's CSRF token.
pub fn csrf_refused() -> Response {
    html_response(
        StatusCode::FORBIDDEN,
        layout(
            "Refused",
            None,
            html! {
                div.error role="alert" {
                    strong { "Forbidden.CsrfToken" }
                    " The form did not carry this session's CSRF token, so nothing was done. "
                    "Reload the page and submit it again."
                }
                p { a href="/console/groups" { "Back to the console" } }
            },
        ),
    )
}
