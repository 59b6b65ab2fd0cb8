//! `berth exec`: runs a command in a container of a group. Without `-i`/`-t` the command runs
//! to its end through a sync ExecContainerCommand and its output and exit code are the
//! command's. With them, the returned WebSocket is opened with the Kubernetes
//! `v4.channel.k8s.io` framing: stdin goes to channel 0, channels 1 and 2 are printed, channel
//! 3 carries the exit status; with `-t` the local terminal is put in raw mode and its size is
//! sent on channel 4 at start and on every SIGWINCH. A `wss://` socket (the server runs with
//! TLS) is checked against `--ca-file` when given, else against the system's roots.

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context};
use berth_client::Client;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use crate::cli::{client, ClientArgs};

#[derive(clap::Args)]
pub struct ExecArgs {
    /// Container group id.
    id: String,
    /// Container (default: the first app container).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Keep stdin open and send it to the command.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Run the command under a terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// Command and arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// The first app container of a group.
pub(crate) async fn first_container(c: &Client, region: &str, id: &str) -> anyhow::Result<String> {
    let ids = serde_json::to_string(&[id])?;
    let v = c
        .call(
            "DescribeContainerGroups",
            &[
                ("RegionId".into(), region.to_string()),
                ("ContainerGroupIds".into(), ids),
            ],
        )
        .await?;
    let g = v["ContainerGroups"]
        .get(0)
        .with_context(|| format!("no container group {id}"))?;
    g["Containers"][0]["Name"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("the container group {id} has no container"))
}

/// Runs the command; returns its exit code.
pub async fn exec(a: &ClientArgs, r: ExecArgs) -> anyhow::Result<i32> {
    let c = client(a)?;
    let container = match r.container {
        Some(n) => n,
        None => first_container(&c, &a.region, &r.id).await?,
    };
    let interactive = r.interactive || r.tty;
    let p = vec![
        ("RegionId".into(), a.region.clone()),
        ("ContainerGroupId".into(), r.id.clone()),
        ("ContainerName".into(), container),
        ("Command".into(), serde_json::to_string(&r.command)?),
        ("TTY".into(), r.tty.to_string()),
        ("Stdin".into(), r.interactive.to_string()),
        ("Sync".into(), (!interactive).to_string()),
    ];
    let v = c.call("ExecContainerCommand", &p).await?;
    if !interactive {
        let out = v["Stdout"]
            .as_str()
            .unwrap_or_else(|| v["SyncResponse"].as_str().unwrap_or(""));
        let err = v["Stderr"].as_str().unwrap_or("");
        std::io::stdout().write_all(out.as_bytes())?;
        std::io::stderr().write_all(err.as_bytes())?;
        std::io::stdout().flush()?;
        return Ok(v["ExitCode"].as_i64().unwrap_or(0) as i32);
    }
    let uri = v["WebSocketUri"]
        .as_str()
        .filter(|u| !u.is_empty())
        .context("the server returned no WebSocketUri")?;
    let tls = match a.ca_pem()? {
        Some(pem) => Some(Connector::Rustls(ca_config(&pem)?)),
        None => None,
    };
    session(uri, tls, r.tty, r.interactive).await
}

/// A TLS client configuration trusting only the CA certificates in `pem` (`--ca-file`), for
/// a `wss://` exec socket; without a CA file the system's roots are used.
pub(crate) fn ca_config(pem: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots
            .add(cert.context("the CA file is not valid PEM")?)
            .context("the CA file holds a certificate that cannot be a root")?;
    }
    anyhow::ensure!(!roots.is_empty(), "the CA file holds no certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// The exit code in a channel-3 status.
pub(crate) fn status_code(status: &Value) -> i32 {
    if status["status"] == "Success" {
        return 0;
    }
    status["details"]["causes"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["reason"] == "ExitCode"))
        .and_then(|c| c["message"].as_str()?.parse().ok())
        .unwrap_or(1)
}

async fn session(
    uri: &str,
    tls: Option<Connector>,
    tty: bool,
    interactive: bool,
) -> anyhow::Result<i32> {
    let mut req = uri.into_client_request().context("bad WebSocketUri")?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().context("header")?,
    );
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, false, tls)
        .await
        .with_context(|| format!("cannot connect to {uri}"))?;
    let (mut sink, mut stream) = ws.split();
    let raw = if tty { RawTerminal::enter() } else { None };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    if tty {
        if let Some((cols, rows)) = terminal_size() {
            let _ = tx.send(resize_frame(cols, rows)).await;
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut winch) = signal(SignalKind::window_change()) else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some((cols, rows)) = terminal_size() {
                    if tx.send(resize_frame(cols, rows)).await.is_err() {
                        break;
                    }
                }
            }
        });
    }
    if interactive {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 8192];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut f = Vec::with_capacity(n + 1);
                        f.push(0);
                        f.extend_from_slice(&buf[..n]);
                        if tx.send(f).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(tx);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if sink.send(Message::Binary(f.into())).await.is_err() {
                break;
            }
        }
    });
    let mut code = None;
    while let Some(msg) = stream.next().await {
        let data = match msg {
            Ok(Message::Binary(b)) => b.to_vec(),
            Ok(Message::Text(t)) => t.as_bytes().to_vec(),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let Some((&ch, rest)) = data.split_first() else {
            continue;
        };
        match ch {
            1 => {
                let mut o = std::io::stdout();
                o.write_all(rest)?;
                o.flush()?;
            }
            2 => {
                let mut e = std::io::stderr();
                e.write_all(rest)?;
                e.flush()?;
            }
            3 => {
                let v: Value = serde_json::from_slice(rest).unwrap_or(Value::Null);
                if v["status"] != "Success" && v["reason"] != "NonZeroExitCode" {
                    drop(raw);
                    bail!(
                        "exec failed: {}",
                        v["message"].as_str().unwrap_or("unknown error")
                    );
                }
                code = Some(status_code(&v));
            }
            _ => {}
        }
    }
    writer.abort();
    drop(raw);
    code.context("the exec session ended without an exit status")
}

fn resize_frame(cols: u16, rows: u16) -> Vec<u8> {
    let mut f = vec![4u8];
    f.extend_from_slice(format!(r#"{{"Width":{cols},"Height":{rows}}}"#).as_bytes());
    f
}

/// The size of the terminal on stdout (columns, rows).
fn terminal_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Stdin in raw mode until dropped; `None` when stdin is no terminal.
struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    fn enter() -> Option<Self> {
        // SAFETY: isatty, tcgetattr and tcsetattr only read or write the termios we pass.
        unsafe {
            if libc::isatty(libc::STDIN_FILENO) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(Self { saved })
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `enter`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_from_statuses() {
        let ok: Value = serde_json::from_str(r#"{"metadata":{},"status":"Success"}"#).unwrap();
        assert_eq!(status_code(&ok), 0);
        let v: Value = serde_json::from_str(
            r#"{"status":"Failure","details":{"causes":[{"reason":"ExitCode","message":"42"}]}}"#,
        )
        .unwrap();
        assert_eq!(status_code(&v), 42);
        assert_eq!(
            resize_frame(80, 24),
            b"\x04{\"Width\":80,\"Height\":24}".to_vec()
        );
    }
}
