//! `berth logs -f`: follows a container's log through berth's log stream extension
//! (DescribeContainerLog with `Follow=true` returns a one-time `StreamUrl`; its body is the
//! log, line by line, until the container exits).

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cli::{client, ClientArgs};

/// `5m`, `30s`, `2h`, `1d` or plain seconds, in seconds.
pub(crate) fn parse_duration(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("not a duration: {s:?} (e.g. 30s, 5m, 2h)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("not a duration: {s:?} (e.g. 30s, 5m, 2h)"),
    };
    Ok(n.saturating_mul(mult))
}

/// How long a followed log may last: the client's 120 s limit on a call must not cut it, so
/// the stream gets its own, as long as a container may run in practice.
const STREAM_TIMEOUT: Duration = Duration::from_secs(366 * 86_400);

/// Streams the log of `container` to stdout.
pub async fn follow(
    a: &ClientArgs,
    id: &str,
    container: &str,
    extra: Vec<(String, String)>,
) -> anyhow::Result<()> {
    let c = client(a)?;
    let mut p = vec![
        ("RegionId".into(), a.region.clone()),
        ("ContainerGroupId".into(), id.to_string()),
        ("ContainerName".into(), container.to_string()),
        ("Follow".into(), "true".into()),
    ];
    p.extend(extra);
    let v = c.call("DescribeContainerLog", &p).await?;
    let url = v["StreamUrl"]
        .as_str()
        .filter(|u| !u.is_empty())
        .context("the server returned no StreamUrl (does it support following logs?)")?;
    stream(c.http(), url, &mut std::io::stdout()).await
}

/// Copies the body of `url` to `out` as it comes, for as long as it lasts.
async fn stream(http: &reqwest::Client, url: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let mut resp = http
        .get(url)
        .timeout(STREAM_TIMEOUT)
        .send()
        .await
        .with_context(|| format!("cannot open {url}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        bail!("log stream refused ({status}): {}", text.trim());
    }
    while let Some(chunk) = resp.chunk().await.context("log stream")? {
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that outlasts the client's limit on a call is read to its end.
    #[tokio::test]
    async fn a_stream_outlasts_the_clients_call_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await.unwrap();
            sock.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n",
            )
            .await
            .unwrap();
            for i in 0..4 {
                let line = format!("line {i}\n");
                sock.write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes())
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            sock.write_all(b"0\r\n\r\n").await.unwrap();
        });
        // As the client's, with a limit the stream outlasts.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(600))
            .build()
            .unwrap();
        let mut out = Vec::new();
        stream(&http, &format!("http://{addr}/log"), &mut out)
            .await
            .unwrap();
        assert_eq!(out, b"line 0\nline 1\nline 2\nline 3\n");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap(), 300);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("2h").unwrap(), 7200);
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
    }
}
