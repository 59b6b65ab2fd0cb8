//! A minimal rtnetlink client: building requests, one socket, acknowledgements and the few
//! answers berth reads (a link by name, the addresses of a link).
//!
//! Written by hand rather than with a netlink crate: berth sends a dozen kinds of message
//! over one socket and reads back three, and the crates would add a stack of dependencies
//! (an async runtime binding, a generic attribute model) for that. Every read is bounded:
//! a receive timeout on the socket, a fixed buffer and a fixed number of reads per answer.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_SETLINK: u16 = 19;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_GETADDR: u16 = 22;
pub(crate) const RTM_NEWROUTE: u16 = 24;

pub(crate) const IFLA_ADDRESS: u16 = 1;
pub(crate) const IFLA_IFNAME: u16 = 3;
pub(crate) const IFLA_MASTER: u16 = 10;
pub(crate) const IFLA_PROTINFO: u16 = 12;
pub(crate) const IFLA_TXQLEN: u16 = 13;
pub(crate) const IFLA_OPERSTATE: u16 = 16;
pub(crate) const IFLA_LINKINFO: u16 = 18;
pub(crate) const IFLA_NET_NS_FD: u16 = 28;
pub(crate) const IFLA_NUM_TX_QUEUES: u16 = 31;
pub(crate) const IFLA_NUM_RX_QUEUES: u16 = 32;
pub(crate) const IFLA_INFO_KIND: u16 = 1;
pub(crate) const IFLA_INFO_DATA: u16 = 2;
pub(crate) const VETH_INFO_PEER: u16 = 1;
pub(crate) const IFLA_BRPORT_MODE: u16 = 4;
pub(crate) const IFA_ADDRESS: u16 = 1;
pub(crate) const IFA_LOCAL: u16 = 2;
pub(crate) const IFA_BROADCAST: u16 = 4;
pub(crate) const RTA_DST: u16 = 1;
pub(crate) const RTA_OIF: u16 = 4;
pub(crate) const RTA_GATEWAY: u16 = 5;
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
/// `IF_OPER_UP` from `linux/if.h`.
pub(crate) const IF_OPER_UP: u8 = 6;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
/// The longest the kernel may take to answer one request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most reads one answer may take (a dump of addresses comes in several).
const MAX_READS: usize = 256;
/// Room for one read: a link's full description is a few KiB.
const READ_BUF: usize = 64 * 1024;

/// One request under construction: the netlink header, a fixed family header, attributes.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    buf: Vec<u8>,
}

impl Message {
    /// A request of `kind` with `flags` (`NLM_F_REQUEST` is always set).
    pub(crate) fn new(kind: u16, flags: i32) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `bytes`
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&((flags | libc::NLM_F_REQUEST) as u16).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence number, set by `bytes`
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        Self { buf }
    }

    /// Appends a `struct ifinfomsg`.
    pub(crate) fn ifinfo(mut self, family: u8, index: u32, flags: u32, change: u32) -> Self {
        push_ifinfo(&mut self.buf, family, index, flags, change);
        self
    }

    /// Appends a `struct ifaddrmsg`.
    pub(crate) fn ifaddr(mut self, family: u8, prefix: u8, index: u32) -> Self {
        self.buf.extend_from_slice(&[family, prefix, 0, 0]); // flags 0, scope universe
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self
    }

    /// Appends a `struct rtmsg` for a unicast route of the main table, as `ip route add`.
    pub(crate) fn rtmsg(mut self, family: u8, dst_len: u8) -> Self {
        const RT_TABLE_MAIN: u8 = 254;
        const RTPROT_BOOT: u8 = 3;
        const RT_SCOPE_UNIVERSE: u8 = 0;
        const RTN_UNICAST: u8 = 1;
        self.buf.extend_from_slice(&[
            family,
            dst_len,
            0, // src_len
            0, // tos
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ]);
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // flags
        self
    }

    /// Appends an attribute.
    pub(crate) fn attr(mut self, kind: u16, data: &[u8]) -> Self {
        push_attr(&mut self.buf, kind, data);
        self
    }

    pub(crate) fn attr_u32(self, kind: u16, value: u32) -> Self {
        self.attr(kind, &value.to_ne_bytes())
    }

    /// Appends an attribute holding `name` and its terminating NUL.
    pub(crate) fn attr_name(self, kind: u16, name: &str) -> Self {
        self.attr(kind, &nul_terminated(name))
    }

    /// Appends a nested attribute whose payload `inner` builds.
    pub(crate) fn nest(mut self, kind: u16, inner: impl FnOnce(Nest) -> Nest) -> Self {
        let nested = inner(Nest { buf: Vec::new() });
        push_attr(&mut self.buf, kind, &nested.buf);
        self
    }

    /// The finished request with sequence number `seq`.
    pub(crate) fn bytes(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// `name` and its terminating NUL, as the kernel reads a name attribute.
fn nul_terminated(name: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(name.len() + 1);
    data.extend_from_slice(name.as_bytes());
    data.push(0);
    data
}

/// The payload of a nested attribute under construction.
#[derive(Debug)]
pub(crate) struct Nest {
    buf: Vec<u8>,
}

impl Nest {
    pub(crate) fn attr(mut self, kind: u16, data: &[u8]) -> Self {
        push_attr(&mut self.buf, kind, data);
        self
    }

    pub(crate) fn attr_u32(self, kind: u16, value: u32) -> Self {
        self.attr(kind, &value.to_ne_bytes())
    }

    pub(crate) fn attr_name(self, kind: u16, name: &str) -> Self {
        self.attr(kind, &nul_terminated(name))
    }

    /// Appends a `struct ifinfomsg` (the header of a veth's peer).
    pub(crate) fn ifinfo(mut self, family: u8, index: u32) -> Self {
        push_ifinfo(&mut self.buf, family, index, 0, 0);
        self
    }

    pub(crate) fn nest(mut self, kind: u16, inner: impl FnOnce(Nest) -> Nest) -> Self {
        let nested = inner(Nest { buf: Vec::new() });
        push_attr(&mut self.buf, kind, &nested.buf);
        self
    }
}

fn push_ifinfo(buf: &mut Vec<u8>, family: u8, index: u32, flags: u32, change: u32) {
    buf.extend_from_slice(&[family, 0]);
    buf.extend_from_slice(&0u16.to_ne_bytes()); // device type
    buf.extend_from_slice(&index.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&change.to_ne_bytes());
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + (len.next_multiple_of(4) - len), 0);
}

/// What berth reads of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) index: u32,
    pub(crate) flags: u32,
    pub(crate) mac: Vec<u8>,
    pub(crate) operstate: u8,
    /// `IFLA_INFO_KIND`: `bridge`, `veth`, empty for none.
    pub(crate) kind: String,
}

impl Link {
    /// The hardware address as `aa:bb:cc:dd:ee:ff`.
    pub(crate) fn mac_text(&self) -> String {
        mac_text(&self.mac)
    }
}

pub(crate) fn mac_text(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A netlink route socket in the network namespace of the thread that opened it.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<Self> {
        // SAFETY: socket(2) with constant arguments; the result is checked below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: ANSWER_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: the option value is a valid timeval for its length.
        let set = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::addr_of!(timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, seq: 0 })
    }

    /// Sends `msg` (which must ask for an acknowledgement) and waits for it: `Ok` when the
    /// kernel did it, its errno otherwise.
    pub(crate) fn ack(&mut self, msg: Message) -> io::Result<()> {
        let seq = self.send(msg)?;
        self.answer(seq, |_, _| Ok(()))
    }

    /// The link named `name`; `None` when there is none.
    pub(crate) fn link(&mut self, name: &str) -> io::Result<Option<Link>> {
        let msg = Message::new(RTM_GETLINK, 0)
            .ifinfo(libc::AF_UNSPEC as u8, 0, 0, 0)
            .attr_name(IFLA_IFNAME, name);
        let seq = self.send(msg)?;
        let mut found = None;
        match self.answer(seq, |kind, body| {
            if kind == RTM_NEWLINK {
                found = parse_link(body);
            }
            Ok(())
        }) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(e),
        }
        found
            .map(Some)
            .ok_or_else(|| io::Error::other("the kernel's description of a link is unreadable"))
    }

    /// The IPv4 addresses (address, prefix length) on the link with `index`.
    pub(crate) fn addresses_v4(&mut self, index: u32) -> io::Result<Vec<(IpAddr, u8)>> {
        let msg = Message::new(RTM_GETADDR, libc::NLM_F_DUMP).ifaddr(libc::AF_INET as u8, 0, 0);
        let seq = self.send(msg)?;
        let mut out = Vec::new();
        self.answer(seq, |kind, body| {
            if kind == RTM_NEWADDR {
                if let Some((on, addr, prefix)) = parse_addr_v4(body) {
                    if on == index {
                        out.push((addr, prefix));
                    }
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn send(&mut self, msg: Message) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let request = msg.bytes(self.seq);
        // SAFETY: sockaddr_nl is a plain C struct for which all-zero bytes are valid.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: the buffer and the address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
                std::ptr::addr_of!(kernel).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(self.seq)
    }

    /// Reads the answer to request `seq`, handing each data message to `each`, until its
    /// acknowledgement, its error, the end of a dump or a single non-dump reply.
    fn answer(
        &mut self,
        seq: u32,
        mut each: impl FnMut(u16, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; READ_BUF];
        for _ in 0..MAX_READS {
            // SAFETY: the buffer is valid for its length.
            let got =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if got < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            match walk(&buf[..got as usize], seq, &mut each)? {
                Walk::Done => return Ok(()),
                Walk::More => {}
            }
        }
        Err(io::Error::other("the kernel's answer did not end"))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Walk {
    Done,
    More,
}

/// Goes through the messages of one read. A message of another sequence number (a late
/// answer to an earlier request) is skipped.
fn walk(
    mut data: &[u8],
    seq: u32,
    each: &mut impl FnMut(u16, &[u8]) -> io::Result<()>,
) -> io::Result<Walk> {
    let unreadable = || io::Error::other("an unreadable netlink message");
    let mut replied = false;
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0).ok_or_else(unreadable)? as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(unreadable());
        }
        let kind = u16_at(data, 4).ok_or_else(unreadable)?;
        let flags = u16_at(data, 6).ok_or_else(unreadable)?;
        let msg_seq = u32_at(data, 8).ok_or_else(unreadable)?;
        let body = &data[NLMSG_HDRLEN..len];
        data = &data[len.next_multiple_of(4).min(data.len())..];
        if msg_seq != seq {
            continue;
        }
        match kind {
            NLMSG_ERROR => {
                let code = i32_at(body, 0).ok_or_else(unreadable)?;
                return if code == 0 {
                    Ok(Walk::Done)
                } else {
                    Err(io::Error::from_raw_os_error(-code))
                };
            }
            NLMSG_DONE => return Ok(Walk::Done),
            _ => {
                each(kind, body)?;
                if flags & libc::NLM_F_MULTI as u16 == 0 {
                    replied = true;
                }
            }
        }
    }
    Ok(if replied { Walk::Done } else { Walk::More })
}

/// The attributes after a fixed header of `skip` bytes, as (type without flags, payload).
fn attrs(body: &[u8], skip: usize) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = body.get(skip..).unwrap_or(&[]);
    std::iter::from_fn(move || {
        let len = u16_at(rest, 0)? as usize;
        let kind = u16_at(rest, 2)?;
        if len < 4 || len > rest.len() {
            return None;
        }
        let payload = &rest[4..len];
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        Some((kind & !NLA_F_NESTED, payload))
    })
}

fn parse_link(body: &[u8]) -> Option<Link> {
    let index = u32_at(body, 4)?;
    let flags = u32_at(body, 8)?;
    let mut link = Link {
        index,
        flags,
        mac: Vec::new(),
        operstate: 0,
        kind: String::new(),
    };
    for (kind, payload) in attrs(body, IFINFOMSG_LEN) {
        match kind {
            IFLA_ADDRESS => link.mac = payload.to_vec(),
            IFLA_OPERSTATE => link.operstate = *payload.first()?,
            IFLA_LINKINFO => {
                for (inner, value) in attrs(payload, 0) {
                    if inner == IFLA_INFO_KIND {
                        let text = value.split(|b| *b == 0).next().unwrap_or(&[]);
                        link.kind = String::from_utf8_lossy(text).into_owned();
                    }
                }
            }
            _ => {}
        }
    }
    Some(link)
}

fn parse_addr_v4(body: &[u8]) -> Option<(u32, IpAddr, u8)> {
    let family = *body.first()?;
    let prefix = *body.get(1)?;
    let index = u32_at(body, 4)?;
    if family != libc::AF_INET as u8 {
        return None;
    }
    let mut local = None;
    let mut address = None;
    for (kind, payload) in attrs(body, IFADDRMSG_LEN) {
        let ip = <[u8; 4]>::try_from(payload).ok().map(IpAddr::from);
        match kind {
            IFA_LOCAL => local = ip,
            IFA_ADDRESS => address = ip,
            _ => {}
        }
    }
    Some((index, local.or(address)?, prefix))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nested() {
        let msg = Message::new(RTM_NEWLINK, libc::NLM_F_ACK)
            .ifinfo(0, 0, 0, 0)
            .attr_name(IFLA_IFNAME, "eth0")
            .nest(IFLA_LINKINFO, |n| {
                n.attr(IFLA_INFO_KIND, b"veth")
                    .nest(IFLA_INFO_DATA, |d| d.attr_u32(IFLA_TXQLEN, 0))
            })
            .bytes(7);
        assert_eq!(u32_at(&msg, 0), Some(msg.len() as u32));
        assert_eq!(u16_at(&msg, 4), Some(RTM_NEWLINK));
        assert_eq!(
            u16_at(&msg, 6),
            Some((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16)
        );
        assert_eq!(u32_at(&msg, 8), Some(7));
        // eth0\0 is 5 bytes: 9 with the header, padded to 12.
        assert_eq!(u16_at(&msg, 32), Some(9));
        assert_eq!(&msg[36..41], b"eth0\0");
        assert_eq!(&msg[41..44], &[0, 0, 0]);
        // The link info: kind (4 + 4) and data holding one u32 attribute (4 + 8).
        assert_eq!(u16_at(&msg, 44), Some(4 + 8 + 12));
        assert_eq!(u16_at(&msg, 46), Some(IFLA_LINKINFO));
        assert_eq!(u16_at(&msg, 48), Some(8));
        assert_eq!(&msg[52..56], b"veth");
        assert_eq!(u16_at(&msg, 56), Some(12));
        assert_eq!(u16_at(&msg, 60), Some(8));
        assert_eq!(msg.len(), 68);
        let parsed: Vec<_> = attrs(&msg[NLMSG_HDRLEN..], IFINFOMSG_LEN)
            .map(|(k, v)| (k, v.len()))
            .collect();
        assert_eq!(parsed, vec![(IFLA_IFNAME, 5), (IFLA_LINKINFO, 20)]);
    }

    fn reply(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        let len = NLMSG_HDRLEN + body.len();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(len.next_multiple_of(4), 0);
        m
    }

    #[test]
    fn answers_are_read() {
        let mut seen = Vec::new();
        let mut each = |k: u16, _: &[u8]| {
            seen.push(k);
            Ok(())
        };
        let ack = reply(NLMSG_ERROR, 0, 3, &[0u8; 20]);
        assert_eq!(walk(&ack, 3, &mut each).expect("ack"), Walk::Done);
        let mut refused = vec![0u8; 20];
        refused[0..4].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        let err = walk(&reply(NLMSG_ERROR, 0, 3, &refused), 3, &mut each).expect_err("refused");
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        // A late answer to another request is skipped.
        assert_eq!(walk(&ack, 4, &mut each).expect("other"), Walk::More);
        // A dump: two parts, then its end in a later read.
        let multi = libc::NLM_F_MULTI as u16;
        let mut parts = reply(RTM_NEWADDR, multi, 5, &[0u8; 8]);
        parts.extend(reply(RTM_NEWADDR, multi, 5, &[0u8; 8]));
        assert_eq!(walk(&parts, 5, &mut each).expect("parts"), Walk::More);
        let end = reply(NLMSG_DONE, multi, 5, &[0u8; 4]);
        assert_eq!(walk(&end, 5, &mut each).expect("end"), Walk::Done);
        // Truncated or lying lengths are errors, not panics.
        assert!(walk(&parts[..20], 5, &mut each).is_err());
        let mut lying = ack.clone();
        lying[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(walk(&lying, 3, &mut each).is_err());
        assert_eq!(seen, vec![RTM_NEWADDR, RTM_NEWADDR]);
    }

    #[test]
    fn links_and_addresses_are_parsed() {
        let mut body = Vec::new();
        push_ifinfo(&mut body, 0, 42, libc::IFF_UP as u32, 0);
        push_attr(&mut body, IFLA_ADDRESS, &[0x0a, 0x58, 0, 1, 2, 0xff]);
        push_attr(&mut body, IFLA_OPERSTATE, &[IF_OPER_UP]);
        let mut info = Vec::new();
        push_attr(&mut info, IFLA_INFO_KIND, b"bridge");
        push_attr(&mut body, IFLA_LINKINFO | NLA_F_NESTED, &info);
        let link = parse_link(&body).expect("link");
        assert_eq!(link.index, 42);
        assert_eq!(link.mac_text(), "0a:58:00:01:02:ff");
        assert_eq!(link.operstate, IF_OPER_UP);
        assert_eq!(link.kind, "bridge");
        assert!(parse_link(&[0u8; 3]).is_none());

        let mut addr = vec![libc::AF_INET as u8, 24, 0, 0];
        addr.extend_from_slice(&9u32.to_ne_bytes());
        push_attr(&mut addr, IFA_ADDRESS, &[10, 0, 0, 1]);
        push_attr(&mut addr, IFA_LOCAL, &[10, 0, 0, 1]);
        assert_eq!(
            parse_addr_v4(&addr),
            Some((9, "10.0.0.1".parse().expect("ip"), 24))
        );
    }
}
