//! A deliberately misbehaving registry on loopback, written on raw TCP so each answer can lie:
//! wrong content for a digest, bodies cut short, endless manifests, transient 503s,
//! connections dropped mid-body and bearer challenges naming any realm. It counts every
//! request it serves.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How one path is answered.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with this content type and body; ranges are honoured.
    Ok(String, Vec<u8>),
    /// Claims `claimed` bytes, sends `body`, closes.
    CutShort { body: Vec<u8>, claimed: usize },
    /// A body that never ends (chunked).
    Endless,
    /// An error status with a distribution error body.
    Error(u16, String, String),
    /// 401 with a bearer challenge naming this realm.
    Challenge(String),
}

/// A one-off fault served before the path's normal answer.
#[derive(Clone, Debug)]
pub enum Fault {
    Status(u16),
    /// Sends the full headers and this many body bytes, then drops the connection.
    DropAfter(usize),
}

#[derive(Default)]
struct State {
    answers: HashMap<String, Answer>,
    faults: HashMap<String, VecDeque<Fault>>,
    requests: Vec<String>,
}

/// The running server; stops with the test's runtime.
#[derive(Clone)]
pub struct Hostile {
    pub addr: String,
    state: Arc<Mutex<State>>,
}

pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

impl Hostile {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = Self {
            addr,
            state: Arc::default(),
        };
        let state = server.state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, state.clone()));
            }
        });
        server
    }

    /// Answers `GET /v2/<path>` (`repo/manifests/tag`, `repo/blobs/sha256:…`).
    pub fn set(&self, path: &str, answer: Answer) {
        self.state
            .lock()
            .unwrap()
            .answers
            .insert(path.to_owned(), answer);
    }

    pub fn fault(&self, path: &str, fault: Fault) {
        let mut state = self.state.lock().unwrap();
        state
            .faults
            .entry(path.to_owned())
            .or_default()
            .push_back(fault);
    }

    /// Serves an image (manifest under `repo:tag` and by digest, config, layers).
    pub fn image(&self, repo: &str, tag: &str, image: &berth_image::testutil::TestImage) {
        let m = &image.manifest;
        for name in [tag, m.digest.as_str()] {
            self.set(
                &format!("{repo}/manifests/{name}"),
                Answer::Ok(m.media_type.clone(), m.data.clone()),
            );
        }
        for blob in image.layers.iter().chain([&image.config]) {
            self.set(
                &format!("{repo}/blobs/{}", blob.digest),
                Answer::Ok("application/octet-stream".into(), blob.data.clone()),
            );
        }
    }

    /// `GET` requests served for `path` so far.
    pub fn count(&self, path: &str) -> usize {
        let wanted = format!("/v2/{path}");
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| **r == wanted)
            .count()
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 << 10 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let from: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("range: bytes=")
                .map(str::to_owned)
        })
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .unwrap_or(0);
    let without_query = target.split('?').next().unwrap_or("");
    let path = without_query.strip_prefix("/v2/").unwrap_or("").to_owned();
    let (answer, fault) = {
        let mut s = state.lock().unwrap();
        s.requests.push(target.clone());
        let fault = s.faults.get_mut(&path).and_then(VecDeque::pop_front);
        (s.answers.get(&path).cloned(), fault)
    };
    if target == "/v2/" {
        return respond(&mut stream, 200, "application/json", b"{}", None).await;
    }
    let Some(answer) = answer else {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown to the hostile registry"}]}"#;
        return respond(&mut stream, 404, "application/json", body, None).await;
    };
    match (fault, answer) {
        (Some(Fault::Status(code)), _) => {
            respond(&mut stream, code, "text/plain", b"try again later", None).await
        }
        (Some(Fault::DropAfter(n)), Answer::Ok(kind, body)) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body[..n.min(body.len())]).await;
        }
        (_, Answer::Ok(kind, body)) if from > 0 && from < body.len() => {
            let range = format!("bytes {from}-{}/{}", body.len() - 1, body.len());
            respond(&mut stream, 206, &kind, &body[from..], Some(range)).await
        }
        (_, Answer::Ok(kind, body)) => respond(&mut stream, 200, &kind, &body, None).await,
        (_, Answer::CutShort { body, claimed }) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {claimed}\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        }
        (_, Answer::Endless) => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let chunk = vec![b' '; 64 << 10];
            let framed = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            while stream.write_all(&framed).await.is_ok() {}
        }
        (_, Answer::Challenge(realm)) => {
            let head = format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",\
                 service=\"hostile\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
        }
        (_, Answer::Error(code, error, message)) => {
            let body = format!(r#"{{"errors":[{{"code":"{error}","message":"{message}"}}]}}"#);
            respond(&mut stream, code, "application/json", body.as_bytes(), None).await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    code: u16,
    kind: &str,
    body: &[u8],
    range: Option<String>,
) {
    let reason = match code {
        200 => "OK",
        206 => "Partial Content",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut head = format!("HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    if let Some(range) = range {
        head.push_str(&format!("Content-Range: {range}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}
