//! TCP connections and HTTP GETs made by berth from inside a group's network namespace, for
//! probes and hooks: no process per check.
//!
//! A socket belongs to the network namespace it was created in, whatever thread uses it
//! later. One thread of berth's ([`socket_in`]) enters a group's namespace (`setns`), makes
//! the socket and goes back to berth's own namespace; the connect and the exchange then run
//! on tokio like any other socket. berth connects only to the group's own address or a
//! loopback address, both inside the group's namespace, so a tenant cannot make berth reach
//! anything from the host's network namespace.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use berth_core::{HttpHeader, Scheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of an HTTP answer read to find its status line.
const MAX_STATUS_LINE: usize = 4096;

/// A group's network namespace, opened once.
pub type Netns = Arc<OwnedFd>;

/// Opens a network namespace file of berth's own (never a tenant's path).
pub fn open_netns(path: &std::path::Path) -> io::Result<Netns> {
    let f = std::fs::File::open(path)?;
    Ok(Arc::new(OwnedFd::from(f)))
}

type Reply = tokio::sync::oneshot::Sender<io::Result<OwnedFd>>;

struct Request {
    netns: Netns,
    v6: bool,
    reply: Reply,
}

/// The thread that makes sockets in other namespaces, started on first use and again when
/// it could not return to berth's namespace (it then ends rather than serve from a wrong one).
fn maker() -> &'static Mutex<Option<mpsc::Sender<Request>>> {
    static MAKER: OnceLock<Mutex<Option<mpsc::Sender<Request>>>> = OnceLock::new();
    MAKER.get_or_init(|| Mutex::new(None))
}

fn spawn_maker() -> io::Result<mpsc::Sender<Request>> {
    let own = std::fs::File::open("/proc/thread-self/ns/net")?;
    let (tx, rx) = mpsc::channel::<Request>();
    std::thread::Builder::new()
        .name("berth-netns-dial".into())
        .spawn(move || {
            for req in rx {
                let made = make_socket(&req.netns, req.v6);
                // Back home before anything else; a thread that cannot return ends.
                // SAFETY: setns on a namespace descriptor berth holds.
                let home = unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) };
                let _ = req.reply.send(made);
                if home != 0 {
                    tracing::error!(error = %io::Error::last_os_error(), "cannot return to berth's network namespace; starting another dialling thread");
                    return;
                }
            }
        })?;
    Ok(tx)
}

fn make_socket(netns: &OwnedFd, v6: bool) -> io::Result<OwnedFd> {
    // SAFETY: setns on a namespace descriptor berth holds, affecting this thread only.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A TCP socket created in `netns`.
pub async fn socket_in(netns: &Netns, v6: bool) -> io::Result<OwnedFd> {
    let (reply, rx) = tokio::sync::oneshot::channel();
    let mut req = Request {
        netns: netns.clone(),
        v6,
        reply,
    };
    for _ in 0..2 {
        let tx = {
            let mut slot = maker().lock().unwrap_or_else(|p| p.into_inner());
            match slot.as_ref() {
                Some(tx) => tx.clone(),
                None => {
                    let tx = spawn_maker()?;
                    *slot = Some(tx.clone());
                    tx
                }
            }
        };
        match tx.send(req) {
            Ok(()) => {
                return rx
                    .await
                    .map_err(|_| io::Error::other("the dialling thread ended"))?
            }
            Err(mpsc::SendError(back)) => {
                req = back;
                *maker().lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
        }
    }
    Err(io::Error::other("no dialling thread"))
}

/// Connects to `addr` from inside `netns` within `timeout`, for a check: the connection is
/// closed with a reset, so no FIN exchange and no TIME_WAIT is left in the group's namespace
/// per check (the kubelet's TCP probes do the same).
pub async fn connect(netns: &Netns, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    dial(netns, addr, timeout, true).await
}

/// Connects to `addr` from inside `netns` within `timeout`, for a stream that ends the
/// ordinary way (a port forward).
pub async fn open(netns: &Netns, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    dial(netns, addr, timeout, false).await
}

async fn dial(
    netns: &Netns,
    addr: SocketAddr,
    timeout: Duration,
    reset: bool,
) -> io::Result<TcpStream> {
    let fut = async {
        let fd = socket_in(netns, addr.is_ipv6()).await?;
        let std_stream = std::net::TcpStream::from(fd);
        let sock = tokio::net::TcpSocket::from_std_stream(std_stream);
        if reset {
            sock.set_zero_linger()?;
        }
        sock.connect(addr).await
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out after {}s", timeout.as_secs_f32()),
        )
    })?
}

/// What an HTTP GET check is given.
pub struct HttpGet<'a> {
    pub addr: SocketAddr,
    pub path: &'a str,
    pub scheme: Scheme,
    pub headers: &'a [HttpHeader],
}

/// GETs `req.path` from inside `netns` within `timeout` and returns the status code.
pub async fn http_get(netns: &Netns, req: &HttpGet<'_>, timeout: Duration) -> io::Result<u16> {
    let fut = async {
        let stream = connect(netns, req.addr, timeout).await?;
        match req.scheme {
            Scheme::Http => exchange(stream, req).await,
            Scheme::Https => {
                let tls = super::dial_tls::connect(stream, req.addr.ip()).await?;
                exchange(tls, req).await
            }
        }
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out after {}s", timeout.as_secs_f32()),
        )
    })?
}

/// The request as the kubelet sends it (its headers replaced by the handler's own).
pub fn request_text(req: &HttpGet<'_>) -> String {
    let host = match req.addr.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", req.addr.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", req.addr.port()),
    };
    let mut text = format!("GET {} HTTP/1.1\r\n", req.path);
    let has = |n: &str| req.headers.iter().any(|h| h.name.eq_ignore_ascii_case(n));
    if !has("host") {
        text.push_str(&format!("Host: {host}\r\n"));
    }
    if !has("user-agent") {
        text.push_str("User-Agent: berth-probe/1.0\r\n");
    }
    if !has("accept") {
        text.push_str("Accept: */*\r\n");
    }
    for h in req.headers {
        text.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    text.push_str("Connection: close\r\n\r\n");
    text
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: &HttpGet<'_>,
) -> io::Result<u16> {
    s.write_all(request_text(req).as_bytes()).await?;
    s.flush().await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        if let Some(code) = status_code(&buf)? {
            return Ok(code);
        }
        if buf.len() >= MAX_STATUS_LINE {
            return Err(io::Error::other("no HTTP status line in the answer"));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::other(if buf.is_empty() {
                "the connection was closed without an answer".to_string()
            } else {
                "the answer ended before its status line".to_string()
            }));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The status code of `HTTP/1.x NNN …\r\n` once the line is complete.
pub fn status_code(buf: &[u8]) -> io::Result<Option<u16>> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[..end]);
    let mut parts = line.split(' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if version.starts_with("HTTP/") && (100..1000).contains(&c) => Ok(Some(c)),
        _ => Err(io::Error::other(format!(
            "not an HTTP status line: {:?}",
            line.chars().take(80).collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n").unwrap(), Some(200));
        assert_eq!(
            status_code(b"HTTP/1.0 404 Not Found\r\nX: y").unwrap(),
            Some(404)
        );
        assert_eq!(status_code(b"HTTP/1.1 200 O").unwrap(), None);
        assert!(status_code(b"SSH-2.0-OpenSSH\r\n").is_err());
    }

    #[test]
    fn request_has_kubelet_headers_unless_given() {
        let headers = [HttpHeader {
            name: "Host".into(),
            value: "example".into(),
        }];
        let req = HttpGet {
            addr: "10.0.0.2:8080".parse().unwrap(),
            path: "/healthz",
            scheme: Scheme::Http,
            headers: &headers,
        };
        let t = request_text(&req);
        assert!(t.starts_with("GET /healthz HTTP/1.1\r\n"));
        assert!(t.contains("Host: example\r\n"));
        assert!(!t.contains("Host: 10.0.0.2"));
        assert!(t.ends_with("Connection: close\r\n\r\n"));
    }

    /// A socket made in another namespace lives there: from a fresh namespace (as root) the
    /// host's listener on loopback is not reachable, the namespace's own loopback is down.
    #[tokio::test]
    async fn sockets_are_made_in_the_namespace() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let own = open_netns(std::path::Path::new("/proc/self/ns/net")).unwrap();
        connect(&own, addr, Duration::from_secs(2)).await.unwrap();
        // A new namespace, held by a child thread's descriptor.
        let other = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            open_netns(std::path::Path::new("/proc/thread-self/ns/net")).unwrap()
        })
        .join()
        .unwrap();
        let err = connect(&other, addr, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        // berth's own namespace is still the thread's afterwards.
        connect(&own, addr, Duration::from_secs(2)).await.unwrap();
    }
}
