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

/// Reads the client's frames in a task of their own, a few ahead (each may hold up to
/// 1 MiB), until the connection ends or the receiver goes; abort the task when done.
pub(in crate::api) fn read_frames<R>(
    read: R,
) -> (
    tokio::sync::mpsc::Receiver<Result<frame::Frame, SpdyError>>,
    tokio::task::JoinHandle<()>,
)
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    let (tx, frames) = tokio::sync::mpsc::channel(2);
    let reader = tokio::spawn(async move {
        let mut r = tokio::io::BufReader::new(read);
        let mut inflater = headers::Inflater::default();
        loop {
            let f = frame::read_frame(&mut r, &mut inflater).await;
            let end = !matches!(f, Ok(Some(_)));
            if let Some(f) = f.transpose() {
                if tx.send(f).await.is_err() {
                    break;
                }
            }
            if end {
                break;
            }
        }
    });
    (frames, reader)
}

/// Why a SPDY connection ended.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
