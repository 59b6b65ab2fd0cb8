//! Removing a group's interface from inside its namespace, without a plugin run.
//!
//! CNI DEL of berth's own list (`bridge` with `static` addresses, no masquerade, no MAC
//! checks: `config`) does two things: the `static` plugin's DEL, which does nothing, and the
//! removal of `eth0` in the group's namespace, which takes the veth pair's host side with
//! it. berth releases the address itself (`ipam`), so the DEL is this one netlink request:
//! two Go processes less per group removal (measured: a fifth of the CPU of deleting 1,000
//! groups). The request goes through berth's own small rtnetlink client (`rtnl`), as does the
//! ADD of the same list (`veth`).

use std::io;
use std::path::Path;

use crate::error::NetError;
use crate::netns;
use crate::rtnl::{Message, Socket, IFLA_IFNAME, RTM_DELLINK};

/// Deletes the interface `ifname` in the network namespace at `netns`; `false` when it was
/// not there.
pub(crate) fn delete_in(netns: &Path, ifname: &str) -> Result<bool, NetError> {
    let sys = |step: &'static str| {
        let path = netns.to_owned();
        move |source: io::Error| NetError::Io { step, path, source }
    };
    let request = del_link_request(ifname).ok_or_else(|| NetError::InvalidConfig {
        reason: format!("interface name `{ifname}` is not 1 to 15 bytes without NUL"),
    })?;
    let mut sock = netns::run_in(netns, Socket::open)
        .and_then(|opened| opened)
        .map_err(sys("opening a netlink socket in the namespace"))?;
    match sock.ack(request) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(sys("deleting the group's interface in")(e)),
    }
}

/// An `RTM_DELLINK` request for `ifname`, asking for an acknowledgement.
pub(crate) fn del_link_request(ifname: &str) -> Option<Message> {
    valid_ifname(ifname).then(|| {
        Message::new(RTM_DELLINK, libc::NLM_F_ACK)
            .ifinfo(libc::AF_UNSPEC as u8, 0, 0, 0) // index 0: by name
            .attr_name(IFLA_IFNAME, ifname)
    })
}

/// Whether the kernel takes `name` as an interface name: 1 to 15 bytes, no NUL, `/` or space.
pub(crate) fn valid_ifname(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && !b
            .iter()
            .any(|c| matches!(c, 0 | b'/' | b':') || c.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_interface() {
        let msg = del_link_request("eth0").expect("valid").bytes(1);
        assert_eq!(msg.len(), 16 + 16 + 12);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), 44);
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), RTM_DELLINK);
        assert_eq!(u16::from_ne_bytes([msg[32], msg[33]]), 9);
        assert_eq!(u16::from_ne_bytes([msg[34], msg[35]]), IFLA_IFNAME);
        assert_eq!(&msg[36..41], b"eth0\0");
        assert!(del_link_request("").is_none());
        assert!(del_link_request("sixteen-chars-xx").is_none());
        assert!(del_link_request("a\0b").is_none());
        assert!(del_link_request("a/b").is_none());
    }
}
