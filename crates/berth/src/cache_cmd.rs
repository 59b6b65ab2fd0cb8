//! `berth cache create NAME IMAGE...`, `berth cache ls`, `berth cache rm ID`: image caches
//! through the ECI API (CreateImageCache, DescribeImageCaches, DeleteImageCache).

use anyhow::Context;
use serde_json::Value;

use crate::cli::{client, registry_host, ClientArgs};

#[derive(clap::Subcommand)]
pub enum CacheCommand {
    /// Create an image cache holding these images.
    Create {
        /// Name of the cache (lower-case letters, digits and '-').
        name: String,
        /// Image references.
        #[arg(required = true)]
        images: Vec<String>,
        /// Delete the cache this many days after its creation.
        #[arg(long)]
        retention_days: Option<u32>,
        /// Let the cache be evicted (least recently matched first) when the quota is full.
        #[arg(long)]
        lru: bool,
        /// Reach the images' registries over plain HTTP (automatic for 127.0.0.1 and
        /// localhost).
        #[arg(long)]
        plain_http: bool,
        /// Wait until the cache is Ready (or failed).
        #[arg(long)]
        wait: bool,
    },
    /// List image caches.
    Ls,
    /// Delete image caches.
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

pub async fn run(a: &ClientArgs, cmd: CacheCommand) -> anyhow::Result<()> {
    let c = client(a)?;
    match cmd {
        CacheCommand::Create {
            name,
            images,
            retention_days,
            lru,
            plain_http,
            wait,
        } => {
            let mut p: Vec<(String, String)> = vec![
                ("RegionId".into(), a.region.clone()),
                ("ImageCacheName".into(), name),
            ];
            let mut hosts: Vec<String> = Vec::new();
            for (i, image) in images.iter().enumerate() {
                p.push((format!("Image.{}", i + 1), image.clone()));
                if let Some(host) = registry_host(image) {
                    let local = host.starts_with("127.")
                        || host.starts_with("localhost")
                        || host.starts_with("[::1]");
                    if (plain_http || local) && !hosts.iter().any(|h| h == host) {
                        hosts.push(host.to_string());
                    }
                }
            }
            if !hosts.is_empty() {
                p.push(("PlainHttpRegistry".into(), hosts.join(",")));
            }
            if let Some(d) = retention_days {
                p.push(("RetentionDays".into(), d.to_string()));
            }
            if lru {
                p.push(("EliminationStrategy".into(), "LRU".into()));
            }
            let v = c.call("CreateImageCache", &p).await?;
            let id = v["ImageCacheId"].as_str().unwrap_or_default().to_string();
            println!("{id}");
            if wait {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    let v = c
                        .call(
                            "DescribeImageCaches",
                            &[
                                ("RegionId".into(), a.region.clone()),
                                ("ImageCacheId".into(), id.clone()),
                            ],
                        )
                        .await?;
                    let cache = v["ImageCaches"]
                        .get(0)
                        .context("the image cache disappeared")?;
                    match cache["Status"].as_str().unwrap_or_default() {
                        "Ready" => break,
                        "Failed" => {
                            let why = cache["Events"]
                                .as_array()
                                .and_then(|e| e.last())
                                .map(|e| e["Message"].as_str().unwrap_or_default().to_string())
                                .unwrap_or_default();
                            anyhow::bail!("image cache {id} failed: {why}");
                        }
                        _ => {}
                    }
                }
            }
        }
        CacheCommand::Ls => {
            let mut token: Option<String> = None;
            println!(
                "{:<24}  {:<20}  {:<12}  {:>6}  {:<20}  IMAGES",
                "ID", "NAME", "STATUS", "SIZE", "CREATED"
            );
            loop {
                let mut p = vec![
                    ("RegionId".to_string(), a.region.clone()),
                    ("Limit".to_string(), "100".to_string()),
                ];
                if let Some(t) = &token {
                    p.push(("NextToken".into(), t.clone()));
                }
                let v = c.call("DescribeImageCaches", &p).await?;
                for cache in v["ImageCaches"].as_array().into_iter().flatten() {
                    let images: Vec<&str> = cache["Images"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    println!(
                        "{:<24}  {:<20}  {:<12}  {:>4}Gi  {:<20}  {}",
                        s(cache, "ImageCacheId"),
                        s(cache, "ImageCacheName"),
                        s(cache, "Status"),
                        cache["ImageCacheSize"].as_u64().unwrap_or(0),
                        s(cache, "CreationTime"),
                        images.join(",")
                    );
                }
                match v["NextToken"].as_str().filter(|t| !t.is_empty()) {
                    Some(t) => token = Some(t.to_string()),
                    None => break,
                }
            }
        }
        CacheCommand::Rm { ids } => {
            let mut failed = false;
            for id in ids {
                let p = vec![
                    ("RegionId".to_string(), a.region.clone()),
                    ("ImageCacheId".to_string(), id.clone()),
                ];
                match c.call("DeleteImageCache", &p).await {
                    Ok(_) => println!("{id}"),
                    Err(e) => {
                        eprintln!("berth: {id}: {e:#}");
                        failed = true;
                    }
                }
            }
            if failed {
                anyhow::bail!("some image caches were not deleted");
            }
        }
    }
    Ok(())
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}
