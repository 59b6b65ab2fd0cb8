//! berth's web console, served at `/console` next to the API (`berth serve --no-console`
//! leaves it out). Server-rendered pages (maud) with one small script; every action goes
//! through [`berth_server::call`], the signed API's own dispatch, for the account the session
//! signed in as — ownership, quotas, validation and throttling are the API's. The error shown
//! for a refused action is the API's `Code` and `Message`.
//!
//! Modules: [`session`] and [`cookie`] (who is signed in), [`csrf`], `auth` (a request's
//! session, checked again against its access key), `api` (calls of the API), `assets` (the
//! vendored files, compiled in), `page` (the layout and the security headers), `pages/` (one
//! module per page).

mod api;
mod assets;
mod auth;
pub mod cookie;
pub mod csrf;
mod page;
mod pages;
pub mod session;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use berth_server::AppState;

pub use session::SessionConfig;

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    state: AppState,
    sessions: Arc<session::Sessions>,
}

impl Console {
    /// The console of `state`, its sessions kept in the state's store.
    pub fn new(state: AppState, config: SessionConfig) -> Self {
        Self {
            state: state.clone(),
            sessions: Arc::new(session::Sessions::new(
                config,
                state.control().store().clone(),
            )),
        }
    }
}

/// The console's router, to be nested at `/console` (its links and cookie name that path).
pub fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route(
            "/sign-in",
            get(pages::sign_in::form).post(pages::sign_in::submit),
        )
        .route("/sign-out", post(pages::sign_in::sign_out))
        .route(
            "/groups",
            get(pages::groups::list).post(pages::create::submit).layer(
                // Config files of up to the API's 1 MiB, URL-encoded.
                axum::extract::DefaultBodyLimit::max(4 << 20),
            ),
        )
        .route("/groups/rows", get(pages::groups::rows_handler))
        .route("/groups/new", get(pages::create::form))
        .route("/groups/{id}", get(pages::group::show))
        .route("/groups/{id}/restart", post(pages::group::restart))
        .route("/groups/{id}/delete", post(pages::group::delete))
        .route("/groups/{id}/update", post(pages::update::submit))
        .route("/groups/{id}/state", get(pages::group::live_state))
        .route("/groups/{id}/logs", get(pages::group::previous_logs))
        .route("/groups/{id}/log-stream", post(pages::group::log_stream))
        .route("/groups/{id}/exec", post(pages::group::exec))
        .route("/groups/{id}/metrics", get(pages::group::metrics))
        .route(
            "/caches",
            get(pages::caches::list).post(pages::caches::create),
        )
        .route("/caches/{id}/delete", post(pages::caches::delete))
        .route("/usage", get(pages::usage::show))
        .route("/usage.csv", get(pages::usage::csv))
        .route("/assets/{name}", get(assets::serve))
        .fallback(pages::not_found)
        .with_state(console)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::map_response(page::security_headers))
}
