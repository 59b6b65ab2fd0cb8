//! TLS serving shared by berth's two HTTPS endpoints, the ECI API (`berth-server`) and the
//! virtual kubelet's API (`berth-kubelet`): reading a PEM certificate chain and a private key
//! whose file others cannot read (`pem`), and a listener for axum whose handshakes run in
//! their own tasks, bounded in time and number (`listener`). Each endpoint keeps what is its
//! own: the server's answer to plain HTTP, the kubelet's self-signed certificate and client
//! certificate verification.

mod listener;
mod pem;

pub use listener::TlsListener;
pub use pem::{read_chain, read_key, PemError};
