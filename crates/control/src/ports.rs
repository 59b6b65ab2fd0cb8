//! Whether the host itself leaves a port free on the public address, for the choice of a
//! group's published ports (`berth_core::publish`).

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

/// Whether nothing on the host listens on `address:port` for `protocol` (`TCP` or `UDP`):
/// a bind there succeeds. The probe's socket is closed at once.
pub(crate) fn host_free(address: IpAddr, protocol: &str, port: u16) -> bool {
    let at = SocketAddr::new(address, port);
    match protocol {
        "UDP" => UdpSocket::bind(at).is_ok(),
        _ => TcpListener::bind(at).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_port_is_not_free() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let l = TcpListener::bind((lo, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!host_free(lo, "TCP", port));
        drop(l);
        assert!(host_free(lo, "TCP", port));
    }
}
