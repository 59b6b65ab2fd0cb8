//! `berth port-forward GROUP [LOCAL:]REMOTE…`: listens on local ports (127.0.0.1 unless
//! `--address` says otherwise) and carries each connection accepted there to the remote port
//! on the group's own loopback: a PortForward call for each connection, then its WebSocket
//! relayed both ways (docs/API-EXTENSIONS.md). Runs until interrupted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::{bail, Context};
use berth_client::Client;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use crate::cli::{client, ClientArgs};

/// Most ports one command forwards.
const MAX_PORTS: usize = 16;

#[derive(clap::Args)]
pub struct PortForwardArgs {
    /// Container group id.
    id: String,
    /// `PORT` (the same port here and in the group) or `LOCAL:REMOTE`; LOCAL 0 picks a free one.
    #[arg(required = true)]
    ports: Vec<String>,
    /// The local address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    address: IpAddr,
}

/// `PORT` or `LOCAL:REMOTE`.
fn parse_pair(s: &str) -> anyhow::Result<(u16, u16)> {
    let port = |p: &str, what: &str, zero: bool| -> anyhow::Result<u16> {
        match p.parse::<u16>() {
            Ok(0) if !zero => bail!("{what} port in {s:?} must be 1 to 65535"),
            Ok(n) => Ok(n),
            Err(_) => bail!("{what} port in {s:?} must be 1 to 65535"),
        }
    };
    match s.split_once(':') {
        Some((l, r)) => Ok((port(l, "the local", true)?, port(r, "the remote", false)?)),
        None => {
            let p = port(s, "the", false)?;
            Ok((p, p))
        }
    }
}

pub async fn port_forward(a: &ClientArgs, r: PortForwardArgs) -> anyhow::Result<()> {
    if r.ports.len() > MAX_PORTS {
        bail!("at most {MAX_PORTS} ports at once");
    }
    let pairs = r
        .ports
        .iter()
        .map(|p| parse_pair(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let c = Arc::new(client(a)?);
    let tls = match a.ca_pem()? {
        Some(pem) => Some(Connector::Rustls(crate::exec::ca_config(&pem)?)),
        None => None,
    };
    let mut tasks = Vec::new();
    for (local, remote) in pairs {
        let listener = TcpListener::bind(SocketAddr::new(r.address, local))
            .await
            .with_context(|| format!("cannot listen on {}:{local}", r.address))?;
        println!(
            "Forwarding from {} -> {remote}",
            listener.local_addr().context("the listening address")?
        );
        let (c, tls, id, region) = (c.clone(), tls.clone(), r.id.clone(), a.region.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    continue;
                };
                let (c, tls, id, region) = (c.clone(), tls.clone(), id.clone(), region.clone());
                tokio::spawn(async move {
                    if let Err(e) = forward(&c, &region, &id, remote, tls, tcp).await {
                        eprintln!("berth: port {remote} for {peer}: {e:#}");
                    }
                });
            }
        }));
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for SIGINT")?;
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// One connection: a PortForward call, then its WebSocket relayed with `tcp`.
async fn forward(
    c: &Client,
    region: &str,
    id: &str,
    port: u16,
    tls: Option<Connector>,
    tcp: TcpStream,
) -> anyhow::Result<()> {
    let v = c
        .call(
            "PortForward",
            &[
                ("RegionId".into(), region.to_string()),
                ("ContainerGroupId".into(), id.to_string()),
                ("Port".into(), port.to_string()),
            ],
        )
        .await?;
    let uri = v["WebSocketUri"]
        .as_str()
        .filter(|u| !u.is_empty())
        .context("the server returned no WebSocketUri")?;
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(uri, None, false, tls)
        .await
        .with_context(|| format!("cannot connect to {uri}"))?;
    let (mut sink, mut stream) = ws.split();
    let (mut rd, mut wr) = tcp.into_split();
    let outward = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(buf[..n].to_vec().into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        // The local client is done sending: end our half, the answer still comes back.
        let _ = sink.send(Message::Binary(Vec::new().into())).await;
        std::future::pending::<()>().await;
    };
    let inward = async {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    };
    // The group's side ending ends the forward.
    tokio::select! {
        _ = outward => {}
        _ = inward => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        assert_eq!(parse_pair("8080").unwrap(), (8080, 8080));
        assert_eq!(parse_pair("0:80").unwrap(), (0, 80));
        assert_eq!(parse_pair("9000:80").unwrap(), (9000, 80));
        for bad in ["0", "80:0", "x", "1:2:3", "70000", ""] {
            assert!(parse_pair(bad).is_err(), "{bad}");
        }
    }
}
