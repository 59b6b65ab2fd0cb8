//! The kubelet API: the HTTPS endpoint on the node's daemon port that the API server calls for
//! `kubectl logs`, `kubectl exec` and `kubectl top`, and metrics-server scrapes.
//!
//! [`KubeletApi::bind`] (or [`serve`]) takes the listen address, the serving certificate
//! ([`TlsSource`]: PEM files, or a generated self-signed one), the authentication mode
//! ([`AuthConfig`]: the API server's TokenReview and SubjectAccessReview with optional client
//! certificates, or everything allowed), berth behind [`Backend`] (implemented by
//! [`BerthBackend`] over berth's client) and the node's pods behind [`NodePods`]. Every
//! request is authenticated and authorized first (`auth.rs`), then served:
//!
//! | path | module |
//! |---|---|
//! | `/containerLogs/{ns}/{pod}/{container}` | `logs.rs` |
//! | `/exec/{ns}/{pod}/{container}` | `exec.rs` (SPDY: `spdy/`) |
//! | `/attach/{ns}/{pod}/{container}` | `attach.rs` (the container's output; over `exec.rs`'s sessions) |
//! | `/portForward/{ns}/{pod}` | `forward.rs` (SPDY: `spdy/portforward.rs`) |
//! | `/stats/summary`, `/metrics/resource` | `stats.rs` |
//! | `/pods`, `/runningpods`, `/healthz` | `pods.rs` |
//!
//! Errors are `metav1.Status` bodies, as the kubelet's clients decode them.

mod attach;
mod auth;
mod backend;
mod exec;
mod forward;
mod logs;
mod params;
mod pods;
mod reply;
mod spdy;
mod stats;
mod tls;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{any, get};
use axum::Router;
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

pub use auth::{AuthConfig, DECISION_CACHE_TTL, MAX_CACHED, TOKEN_CACHE_TTL};
pub use backend::{
    Backend, BackendError, BerthBackend, ExecQuery, ExecSocket, LogQuery, LogStream,
};
pub use pods::NodePods;
pub use tls::{TlsError, TlsSource};

/// Most log follows and exec sessions open at once; more are refused with 429.
pub const MAX_STREAMS: usize = 64;

/// Where and how the kubelet API is served.
pub struct ApiConfig {
    /// The daemon port's address (the node's `daemonEndpoints.kubeletEndpoint.port`).
    pub listen: SocketAddr,
    /// The node's name: the `name` of the SubjectAccessReviews.
    pub node_name: String,
    pub tls: TlsSource,
    pub auth: AuthConfig,
}

/// Why the kubelet API cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving the kubelet API")]
    Serve(#[source] std::io::Error),
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    node: Arc<str>,
    backend: Arc<dyn Backend>,
    pods: Arc<dyn NodePods>,
    auth: Arc<auth::Auth>,
    streams: Arc<Semaphore>,
    started: DateTime<Utc>,
}

/// The kubelet API, bound and ready to serve.
pub struct KubeletApi {
    listener: tls::TlsListener,
    router: Router,
    certificate: Vec<u8>,
}

impl KubeletApi {
    /// Loads or generates the serving certificate, reads the client CA and binds the address.
    pub async fn bind(
        config: ApiConfig,
        backend: Arc<dyn Backend>,
        pods: Arc<dyn NodePods>,
    ) -> Result<Self, ApiError> {
        let client_ca = match &config.auth {
            AuthConfig::Delegated { client_ca, .. } => client_ca.as_deref(),
            AuthConfig::Anonymous => None,
        };
        let (server_config, certificate) = tls::server_config(&config.tls, client_ca)?;
        let tcp = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ApiError::Bind {
                addr: config.listen,
                source,
            })?;
        let listener =
            tls::TlsListener::new(tcp, server_config).map_err(|source| ApiError::Bind {
                addr: config.listen,
                source,
            })?;
        let state = AppState {
            node: config.node_name.into(),
            backend,
            pods,
            auth: Arc::new(auth::Auth::new(config.auth)),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            started: Utc::now(),
        };
        Ok(Self {
            listener,
            router: router(state),
            certificate,
        })
    }

    /// The bound address (the port chosen when the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local()
    }

    /// The serving certificate (DER), for a client to trust a generated one.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ApiError> {
        let service = self
            .router
            .into_make_service_with_connect_info::<tls::Peer>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ApiError::Serve)
    }
}

/// Binds and serves the kubelet API until `shutdown` resolves.
pub async fn serve(
    config: ApiConfig,
    backend: Arc<dyn Backend>,
    pods: Arc<dyn NodePods>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    KubeletApi::bind(config, backend, pods)
        .await?
        .run(shutdown)
        .await
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(pods::healthz))
        .route("/pods", get(pods::pods))
        .route("/runningpods", get(pods::running_pods))
        .route("/runningpods/", get(pods::running_pods))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route("/exec/{namespace}/{pod}/{container}", any(exec::exec))
        .route("/attach/{namespace}/{pod}/{container}", any(attach::attach))
        .route("/portForward/{namespace}/{pod}", any(forward::port_forward))
        .route("/stats/summary", get(stats::summary))
        .route("/metrics/resource", get(stats::resource_metrics))
        .fallback(reply::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::middleware,
        ))
        .with_state(state)
}
