//! A listener for axum that serves at most a given number of connections at once: each
//! accepted connection holds a permit until it is closed (an upgraded WebSocket too), and
//! while none is free no connection is accepted, so further clients wait in the kernel's
//! listen backlog instead of taking the open files the node's containers need.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How often a listener at its bound says so in the log.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// See the module's documentation.
pub struct Bounded<L> {
    inner: L,
    permits: Arc<Semaphore>,
    max: usize,
    warned: Option<Instant>,
}

impl<L> Bounded<L> {
    pub fn new(inner: L, max: usize) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max.max(1))),
            max,
            warned: None,
        }
    }
}

impl<L: Listener> Listener for Bounded<L> {
    type Io = Counted<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    self.warned = Some(Instant::now());
                    tracing::warn!(
                        max = self.max,
                        "the API serves its most connections at once; new clients wait"
                    );
                }
                match Arc::clone(&self.permits).acquire_owned().await {
                    Ok(p) => p,
                    // The semaphore is never closed.
                    Err(_) => std::future::pending().await,
                }
            }
        };
        let (io, addr) = self.inner.accept().await;
        (
            Counted {
                io,
                _permit: permit,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection and the permit it holds.
pub struct Counted<Io> {
    io: Io,
    _permit: OwnedSemaphorePermit,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Counted<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Counted<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn a_connection_past_the_bound_waits_until_one_closes() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut l = Bounded::new(tcp, 2);
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let (mut a, _) = l.accept().await;
        let (_b, _) = l.accept().await;
        // The third is connected in the backlog but not accepted.
        let third = tokio::time::timeout(Duration::from_millis(200), l.accept()).await;
        assert!(third.is_err(), "a third connection was accepted");
        assert_eq!(l.permits.available_permits(), 0);
        // Closing one lets the third in, and the connections still carry bytes.
        clients[0].write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        a.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"x");
        drop(a);
        let third = tokio::time::timeout(Duration::from_secs(5), l.accept()).await;
        assert!(
            third.is_ok(),
            "the third connection was not accepted after one closed"
        );
    }
}
