//! `kubectl exec` and `kubectl port-forward` over SPDY/3.1, as the API server speaks it to kubelets (and `kubectl`
//! before 1.30 to the API server).
//!
//! No maintained SPDY crate exists for Rust, and Kubernetes needs little of the protocol:
//! this module is a small server side of it. `frame.rs` reads and writes the frames,
//! `headers.rs` the zlib-compressed name/value blocks, and `remotecommand.rs` runs
//! Kubernetes' remote command protocol (`v4.channel.k8s.io` down to `channel.k8s.io`) over
//! them, relaying the client's streams to berth's exec WebSocket; `portforward.rs` runs
//! `portforward.k8s.io`, each forwarded connection relayed to a berth PortForward WebSocket.

pub(in crate::api) mod frame;
pub(in crate::api) mod headers;
mod portforward;
mod remotecommand;

pub(crate) use portforward::{serve as serve_port_forward, PORTFORWARD_PROTOCOL};
pub(crate) use remotecommand::{negotiate, serve, SpdyVersion, Wanted, STREAM_WAIT};

/// Why a SPDY connection ended.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
