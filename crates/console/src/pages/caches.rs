//! Image caches: the account's list (DescribeImageCaches), a form to create one
//! (CreateImageCache) and delete with a confirmation (DeleteImageCache).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use berth_eci::response::DescribeImageCachesResponse;
use berth_eci::{Action, ApiError};
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use super::age;
use crate::api::{call, call_as, kv};
use crate::auth::{signed, signed_post, Signed};
use crate::page::{csrf_field, error_box, error_page, html_response, layout};
use crate::Console;

#[derive(Default, Deserialize)]
pub struct CacheForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    /// Images, one a line.
    #[serde(default)]
    images: String,
    #[serde(default)]
    size: String,
}

async fn page(c: &Console, who: &Signed, f: &CacheForm, error: Option<&ApiError>) -> Response {
    let list: Result<DescribeImageCachesResponse, _> =
        call_as(c, who, Action::DescribeImageCaches, vec![]).await;
    let now = Utc::now();
    let body = html! {
        @if let Some(e) = error { (error_box(e)) }
        @match &list {
            Err(e) => (error_box(e)),
            Ok(l) => div.scroll { table {
                caption { "Image caches (" (l.total_count) ")" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Status" }
                    th scope="col" { "Images" } th scope="col" { "Size (GiB)" } th scope="col" { "Age" }
                    th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for ic in &l.image_caches {
                        tr {
                            td { (ic.image_cache_name) }
                            td { code { (ic.image_cache_id) } }
                            td { (ic.status) " " (ic.progress) }
                            td { @for i in &ic.images { code { (i) } br; } }
                            td { (ic.image_cache_size) }
                            td { (age(&ic.creation_time, now)) }
                            td {
                                form method="post" action={ "/console/caches/" (ic.image_cache_id) "/delete" }
                                    data-confirm={ "Delete the image cache " (ic.image_cache_name) "?" } {
                                    (csrf_field(who))
                                    button.danger type="submit" aria-label={ "Delete " (ic.image_cache_name) } { "Delete" }
                                }
                            }
                        }
                    }
                    @if l.image_caches.is_empty() { tr { td colspan="7" { "No image caches yet." } } }
                }
            } }
        }
        h2 { "Create an image cache" }
        form.card method="post" action="/console/caches" {
            (csrf_field(who))
            label for="cache-name" { "Name" }
            input id="cache-name" name="name" required value=(f.name) maxlength="128";
            label for="cache-images" { "Images (one per line)" }
            textarea id="cache-images" name="images" rows="3" required { (f.images) }
            label for="cache-size" { "Size in GiB (default 20)" }
            input id="cache-size" name="size" inputmode="numeric" value=(f.size);
            button type="submit" { "Create" }
        }
    };
    let status = error.map_or(StatusCode::OK, |e| {
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST)
    });
    html_response(status, layout("Image caches", Some(who), body))
}

/// `GET /console/caches`.
pub async fn list(State(c): State<Console>, headers: HeaderMap) -> Response {
    match signed(&c, &headers).await {
        Ok(who) => page(&c, &who, &CacheForm::default(), None).await,
        Err(r) => r.into_response(),
    }
}

/// The registry hosts of `images` that are on loopback (plain HTTP, as `berth run` assumes).
fn loopback_registries(images: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = images
        .iter()
        .filter_map(|i| i.split_once('/').map(|(h, _)| h))
        .filter(|h| h.starts_with("127.") || h.starts_with("localhost"))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `POST /console/caches`.
pub async fn create(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(f): Form<CacheForm>,
) -> Response {
    let who = match signed_post(&c, &headers, f.csrf.as_deref()).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let images: Vec<&str> = f
        .images
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut p = vec![kv("ImageCacheName", f.name.trim())];
    for (i, img) in images.iter().enumerate() {
        p.push(kv(format!("Image.{}", i + 1), *img));
    }
    if !f.size.trim().is_empty() {
        p.push(kv("ImageCacheSize", f.size.trim()));
    }
    let plain = loopback_registries(&images);
    if !plain.is_empty() {
        p.push(kv("PlainHttpRegistry", plain.join(",")));
    }
    match call(&c, &who, Action::CreateImageCache, p).await {
        Ok(_) => Redirect::to("/console/caches").into_response(),
        Err(e) => page(&c, &who, &f, Some(&e)).await,
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /console/caches/{id}/delete`.
pub async fn delete(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let who = match signed_post(&c, &headers, f.csrf.as_deref()).await {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    match call(
        &c,
        &who,
        Action::DeleteImageCache,
        vec![kv("ImageCacheId", id)],
    )
    .await
    {
        Ok(_) => Redirect::to("/console/caches").into_response(),
        Err(e) => error_page(Some(&who), &e),
    }
}
