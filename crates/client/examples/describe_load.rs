//! Load generator for DescribeContainerGroups: N keep-alive connections send signed requests
//! back to back for S seconds, each response is checked, and one JSON object with requests/s,
//! errors and latency percentiles (ms) is printed on stdout.
//!
//! ```text
//! cargo build --release -p berth-client --example describe_load
//! target/release/examples/describe_load --endpoint 127.0.0.1:8080 \
//!     --credentials STATE/credentials.json --mode by_id --ids ids.txt \
//!     --connections 8 --seconds 10
//! ```
//!
//! Modes: `by_id` asks for one random id of the `--ids` file (one id a line) as
//! `ContainerGroupIds=["id"]` and requires that group in the answer; `list_page` asks for the
//! first page of the unfiltered list (`Limit=20`) and requires a non-empty page.
//!
//! Requests are signed with a fresh nonce and timestamp each, with ACS3-HMAC-SHA256 as the
//! official SDK and berth's client sign them (`--sign acs3`, POST) or with RPC HMAC-SHA1 as the
//! legacy SDK does (`--sign rpc`, GET). The HTTP/1.1 exchange is written by hand over a tokio
//! `TcpStream`: a request is one `write_all`, a response is read into a reused buffer and
//! framed by `Content-Length`, so the client costs little CPU next to the server it measures
//! (it runs on one thread unless `--threads` says otherwise).
//!
//! An answer of ECI's throttling (`Throttling.User`, HTTP 400) is counted in `throttled`, not in
//! `errors`: a flood of one account past its rate (bench/run.py, `describe_flood`) is expected to
//! get them.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_client::{Client, Credentials};
use berth_eci::canon::encode_query;
use berth_eci::sign::sign_rpc;
use berth_eci::API_VERSION;
use chrono::Utc;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ACTION: &str = "DescribeContainerGroups";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    ById,
    ListPage,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sign {
    Acs3,
    Rpc,
}

struct Args {
    endpoint: String,
    creds: Credentials,
    region: String,
    mode: Mode,
    ids: Vec<String>,
    connections: usize,
    seconds: f64,
    threads: usize,
    sign: Sign,
}

const USAGE: &str =
    "usage: describe_load --endpoint HOST:PORT (--credentials FILE | --key-id ID --secret S)
       [--mode by_id|list_page] [--ids FILE] [--connections N] [--seconds S]
       [--threads T] [--sign acs3|rpc] [--region R]";

fn parse_args() -> Result<Args, String> {
    let mut endpoint = None;
    let mut cred_file: Option<PathBuf> = None;
    let (mut key_id, mut secret) = (None, None);
    let mut region = "local".to_string();
    let mut mode = Mode::ById;
    let mut ids_file: Option<PathBuf> = None;
    let mut connections = 8usize;
    let mut seconds = 10.0f64;
    let mut threads = 1usize;
    let mut sign = Sign::Acs3;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n > 0.0)
                .ok_or_else(|| format!("{flag} {v:?} is not a positive number"))
        };
        match flag.as_str() {
            "--endpoint" => endpoint = Some(value),
            "--credentials" => cred_file = Some(value.into()),
            "--key-id" => key_id = Some(value),
            "--secret" => secret = Some(value),
            "--region" => region = value,
            "--mode" => {
                mode = match value.as_str() {
                    "by_id" => Mode::ById,
                    "list_page" => Mode::ListPage,
                    _ => return Err(format!("--mode {value:?} is not by_id or list_page")),
                }
            }
            "--ids" => ids_file = Some(value.into()),
            "--connections" => connections = num(&value)? as usize,
            "--seconds" => seconds = num(&value)?,
            "--threads" => threads = num(&value)? as usize,
            "--sign" => {
                sign = match value.as_str() {
                    "acs3" => Sign::Acs3,
                    "rpc" => Sign::Rpc,
                    _ => return Err(format!("--sign {value:?} is not acs3 or rpc")),
                }
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    let endpoint = endpoint.ok_or_else(|| format!("--endpoint is required\n{USAGE}"))?;
    let endpoint = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let creds = match (cred_file, key_id, secret) {
        (Some(f), _, _) => Credentials::from_file(&f).map_err(|e| e.to_string())?,
        (None, Some(k), Some(s)) => Credentials::new(&k, &s),
        _ => {
            return Err(format!(
                "give --credentials or --key-id and --secret\n{USAGE}"
            ))
        }
    };
    let ids = match ids_file {
        Some(f) => std::fs::read_to_string(&f)
            .map_err(|e| format!("cannot read {}: {e}", f.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    if mode == Mode::ById && ids.is_empty() {
        return Err("--mode by_id needs --ids FILE with at least one id".into());
    }
    Ok(Args {
        endpoint,
        creds,
        region,
        mode,
        ids,
        connections: connections.max(1),
        seconds,
        threads: threads.max(1),
        sign,
    })
}

/// Builds the bytes of one signed request, fresh nonce and timestamp included.
struct Signer {
    client: Client,
    args: Arc<Args>,
}

impl Signer {
    fn request(&self, id: Option<&str>, out: &mut Vec<u8>) {
        let mut params: Vec<(String, String)> = Vec::with_capacity(12);
        match id {
            Some(id) => params.push(("ContainerGroupIds".into(), format!("[\"{id}\"]"))),
            None => params.push(("Limit".into(), "20".into())),
        }
        let nonce = format!("{:032x}", rand::thread_rng().gen::<u128>());
        out.clear();
        match self.args.sign {
            Sign::Acs3 => {
                params.push(("RegionId".into(), self.args.region.clone()));
                let req = self.client.prepare(ACTION, &params, Utc::now(), &nonce);
                out.extend_from_slice(b"POST /?");
                out.extend_from_slice(req.query.as_bytes());
                out.extend_from_slice(b" HTTP/1.1\r\n");
                for (k, v) in &req.headers {
                    out.extend_from_slice(k.as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(v.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"content-length: 0\r\n\r\n");
            }
            Sign::Rpc => {
                let fixed = [
                    ("Action", ACTION),
                    ("Version", API_VERSION),
                    ("Format", "JSON"),
                    ("RegionId", self.args.region.as_str()),
                    ("AccessKeyId", self.args.creds.access_key_id.as_str()),
                    ("SignatureMethod", "HMAC-SHA1"),
                    ("SignatureVersion", "1.0"),
                    ("SignatureNonce", nonce.as_str()),
                ];
                params.extend(fixed.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                params.push((
                    "Timestamp".into(),
                    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                ));
                let sig = sign_rpc("GET", &params, &self.args.creds.access_key_secret);
                params.push(("Signature".into(), sig));
                let query = encode_query(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                out.extend_from_slice(b"GET /?");
                out.extend_from_slice(query.as_bytes());
                out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
                out.extend_from_slice(self.args.endpoint.as_bytes());
                out.extend_from_slice(b"\r\naccept: application/json\r\n\r\n");
            }
        }
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Conn {
    async fn open(endpoint: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(endpoint).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// Sends `req` and returns the status and the body length; the body is `self.buf[..len]`.
    async fn exchange(&mut self, req: &[u8]) -> io::Result<(u16, usize)> {
        self.stream.write_all(req).await?;
        self.buf.clear();
        let mut chunk = [0u8; 16 << 10];
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| bad("response head is not UTF-8"))?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status in the response"))?;
        let mut length = None;
        for line in head.split("\r\n").skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(bad("chunked responses are not supported"));
                }
            }
        }
        let length = length.ok_or_else(|| bad("the response has no content-length"))?;
        while self.buf.len() < head_end + length {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        if self.buf.len() > head_end + length {
            return Err(bad("more bytes than the content-length"));
        }
        self.buf.drain(..head_end);
        Ok((status, length))
    }
}

#[derive(Default)]
struct Tally {
    /// Latencies of successful requests, microseconds.
    lat_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    /// Requests answered with `Throttling.User`.
    throttled: u64,
}

impl Tally {
    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

async fn worker(signer: Arc<Signer>, start: Instant, end: Instant) -> Tally {
    let args = Arc::clone(&signer.args);
    let mut tally = Tally {
        lat_us: Vec::with_capacity(65536),
        ..Tally::default()
    };
    let mut conn = match Conn::open(&args.endpoint).await {
        Ok(c) => Some(c),
        Err(e) => {
            tally.error(format!("connect: {e}"));
            None
        }
    };
    tokio::time::sleep_until(tokio::time::Instant::from_std(start)).await;
    let mut req = Vec::with_capacity(2048);
    while Instant::now() < end {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(&args.endpoint).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tally.error(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let id = match args.mode {
            Mode::ById => Some(args.ids[rand::thread_rng().gen_range(0..args.ids.len())].as_str()),
            Mode::ListPage => None,
        };
        signer.request(id, &mut req);
        let t0 = Instant::now();
        match c.exchange(&req).await {
            Ok((status, len)) => {
                let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                let body = &c.buf[..len];
                let ok = status == 200
                    && match id {
                        Some(id) => find(body, format!("\"ContainerGroupId\":\"{id}\"").as_bytes())
                            .is_some(),
                        None => find(body, b"\"ContainerGroups\":[{").is_some(),
                    };
                if ok {
                    tally.lat_us.push(us);
                } else if status == 400 && find(body, b"\"Code\":\"Throttling").is_some() {
                    tally.throttled += 1;
                } else {
                    let text = String::from_utf8_lossy(&body[..len.min(300)]).into_owned();
                    tally.error(format!("HTTP {status}: {text}"));
                }
            }
            Err(e) => {
                tally.error(format!("exchange: {e}"));
                conn = None;
            }
        }
    }
    tally
}

/// The value at percentile `p` as bench/run.py computes it (nearest rank on the sorted list).
fn pct(sorted: &[u32], p: f64) -> f64 {
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() {
    let args = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let client = match Client::from_credentials(&args.endpoint, &args.creds) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let rt = rt.unwrap_or_else(|e| {
        eprintln!("cannot start the runtime: {e}");
        std::process::exit(1);
    });
    let signer = Arc::new(Signer {
        client,
        args: Arc::clone(&args),
    });
    let tallies: Vec<Tally> = rt.block_on(async {
        // Connections open during this lead time, so the measured window holds only requests.
        let start = Instant::now() + Duration::from_millis(300);
        let end = start + Duration::from_secs_f64(args.seconds);
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| tokio::spawn(worker(Arc::clone(&signer), start, end)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            match t.await {
                Ok(tally) => out.push(tally),
                Err(e) => {
                    let mut t = Tally::default();
                    t.error(format!("worker: {e}"));
                    out.push(t);
                }
            }
        }
        out
    });
    let mut lat: Vec<u32> = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut throttled = 0;
    for t in tallies {
        throttled += t.throttled;
        lat.extend_from_slice(&t.lat_us);
        errors += t.errors;
        first_error = first_error.or(t.first_error);
    }
    lat.sort_unstable();
    let latency = if lat.is_empty() {
        serde_json::Value::Null
    } else {
        let sum: u64 = lat.iter().map(|&x| x as u64).sum();
        serde_json::json!({
            "n": lat.len(),
            "p50": pct(&lat, 50.0),
            "p90": pct(&lat, 90.0),
            "p99": pct(&lat, 99.0),
            "min": lat[0] as f64 / 1000.0,
            "max": lat[lat.len() - 1] as f64 / 1000.0,
            "mean": sum as f64 / lat.len() as f64 / 1000.0,
        })
    };
    let out = serde_json::json!({
        "mode": match args.mode { Mode::ById => "by_id", Mode::ListPage => "list_page" },
        "sign": match args.sign { Sign::Acs3 => "acs3", Sign::Rpc => "rpc" },
        "connections": args.connections,
        "threads": args.threads,
        "seconds": args.seconds,
        "requests": lat.len(),
        "errors": errors,
        "first_error": first_error,
        "throttled": throttled,
        "requests_per_s": lat.len() as f64 / args.seconds,
        "latency_ms": latency,
    });
    println!("{out}");
}
