//! One module per page of the console, and what several pages share: the landing redirect,
//! the 404 page, reading a posted form, and small formatting helpers.

pub mod caches;
pub mod create;
pub mod group;
pub mod groups;
pub mod sign_in;
pub mod update;
pub mod usage;
pub mod volumes;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::html;

use crate::page::{html_response, layout};
use crate::Console;

/// The session and the parsed form of a POST from a form that carries the CSRF token among
/// its `fields`; a field `parse` does not know is the API's InvalidParameter on the error page.
pub(crate) async fn posted_form<F>(
    c: &Console,
    headers: &HeaderMap,
    fields: Vec<(String, String)>,
    parse: impl FnOnce(Vec<(String, String)>) -> Result<F, String>,
) -> Result<(crate::auth::Signed, F), Box<Response>> {
    let token = fields
        .iter()
        .find(|(k, _)| k == crate::csrf::FIELD)
        .map(|(_, v)| v.as_str());
    let who = crate::auth::signed_post(c, headers, token)
        .await
        .map_err(|r| Box::new(r.into_response()))?;
    match parse(fields) {
        Ok(f) => Ok((who, f)),
        Err(field) => {
            let e = berth_eci::ApiError::invalid_parameter(&field, "is not a field of the form");
            Err(Box::new(crate::page::error_page(Some(&who), &e)))
        }
    }
}

/// `GET /console/`: the groups when signed in, else the sign-in form.
pub async fn home(State(c): State<Console>, headers: HeaderMap) -> Response {
    match crate::auth::signed(&c, &headers).await {
        Ok(_) => Redirect::to("/console/groups").into_response(),
        Err(r) => r.into_response(),
    }
}

/// Any other path under `/console`.
pub async fn not_found() -> Response {
    html_response(
        StatusCode::NOT_FOUND,
        layout(
            "Not found",
            None,
            html! { p { "There is no such page. " a href="/console/groups" { "Go to the console" } } },
        ),
    )
}

/// How long ago `t` (RFC 3339) was, shortly: `45s`, `12m`, `3h`, `2d`.
pub fn age(t: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(t) else {
        return String::new();
    };
    let s = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    match s {
        0..=89 => format!("{s}s"),
        90..=5399 => format!("{}m", s / 60),
        5400..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// What [`enc`] escapes: all but the unreserved characters of RFC 3986.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A percent-encoded path segment or query value.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ESCAPED).to_string()
}

/// A number of vCPU or GiB as ECI writes it (`0.25`, `2`).
pub fn num(x: f64) -> String {
    let s = format!("{x}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short() {
        let now: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
        assert_eq!(age("2026-12-04T11:59:30Z", now), "30s");
        assert_eq!(age("2026-12-04T11:30:00Z", now), "30m");
        assert_eq!(age("2026-12-04T06:00:00Z", now), "6h");
        assert_eq!(age("2026-12-01T12:00:00Z", now), "3d");
        assert_eq!(age("", now), "");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(2.0), "2");
        assert_eq!(enc("a b&c/d"), "a%20b%26c%2Fd");
        assert_eq!(enc("eci-x_1.2~"), "eci-x_1.2~");
    }
}
