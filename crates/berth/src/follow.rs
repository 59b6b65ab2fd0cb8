//! `berth logs -f`: follows a container's log through berth's log stream extension
//! (DescribeContainerLog with `Follow=true` returns a one-time `StreamUrl`; its body is the
//! log, line by line, until the container exits).

use std::io::Write;

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
    let mut resp = c
        .http()
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot open {url}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        bail!("log stream refused ({status}): {}", text.trim());
    }
    let mut out = std::io::stdout();
    while let Some(chunk) = resp.chunk().await.context("log stream")? {
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap(), 300);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("2h").unwrap(), 7200);
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
    }
}
