//! `berth cache create NAME IMAGE...`, `berth cache ls`, `berth cache rm ID`: image caches
//! through the ECI API (CreateImageCache, DescribeImageCaches, DeleteImageCache).

use anyhow::bail;
use berth_client::response::{DescribeImageCachesResponse, ImageCache};
use berth_client::Client;

use crate::cli::{client, registry_host, ClientArgs};
use crate::ui::progress::Waiting;
use crate::ui::table::Cell;
use crate::ui::{Format, Table};

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
        /// Wait until the cache is Ready (or failed), with its progress on a terminal.
        #[arg(long)]
        wait: bool,
    },
    /// List image caches.
    Ls {
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
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
                until_ready(&c, a, &id).await?;
            }
        }
        CacheCommand::Ls { output } => {
            let mut caches: Vec<ImageCache> = Vec::new();
            let mut token: Option<String> = None;
            // 100 a page: 1,000 pages are far above any quota of image caches.
            let mut pages = 0;
            loop {
                pages += 1;
                if pages > 1000 {
                    bail!("the listing did not end after 1,000 pages");
                }
                let mut p = vec![
                    ("RegionId".to_string(), a.region.clone()),
                    ("Limit".to_string(), "100".to_string()),
                ];
                if let Some(t) = &token {
                    p.push(("NextToken".into(), t.clone()));
                }
                let v: DescribeImageCachesResponse = c.call_as("DescribeImageCaches", &p).await?;
                caches.extend(v.image_caches);
                if v.next_token.is_empty() {
                    break;
                }
                token = Some(v.next_token);
            }
            if !crate::ui::format::print_document(output, &caches)? {
                table(&caches).print();
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
                bail!("some image caches were not deleted");
            }
        }
    }
    Ok(())
}

fn table(caches: &[ImageCache]) -> Table {
    let mut t = Table::new(&["ID", "NAME", "STATUS", "SIZE", "CREATED", "IMAGES"]);
    for cache in caches {
        t.row(vec![
            cache.image_cache_id.clone().into(),
            cache.image_cache_name.clone().into(),
            Cell::status(&cache.status),
            format!("{} GiB", cache.image_cache_size).into(),
            cache.creation_time.clone().into(),
            cache.images.join(",").into(),
        ]);
    }
    t
}

/// Polls image cache `id` until it is Ready (Ok) or Failed (the reason), showing its status
/// and progress.
async fn until_ready(c: &Client, a: &ClientArgs, id: &str) -> anyhow::Result<()> {
    let mut shown = Waiting::new(id, true);
    loop {
        let v: DescribeImageCachesResponse = c
            .call_as(
                "DescribeImageCaches",
                &[
                    ("RegionId".into(), a.region.clone()),
                    ("ImageCacheId".into(), id.to_string()),
                ],
            )
            .await?;
        let Some(cache) = v.image_caches.into_iter().find(|x| x.image_cache_id == id) else {
            shown.finish();
            bail!("image cache {id} disappeared");
        };
        let percent = cache.progress.trim_end_matches('%').parse::<u64>().ok();
        match cache.status.as_str() {
            "Ready" => {
                shown.finish();
                eprintln!("{id}: Ready ({} GiB)", cache.image_cache_size);
                return Ok(());
            }
            "Failed" => {
                shown.finish();
                let why = cache
                    .events
                    .last()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                bail!("image cache {id} failed: {why}");
            }
            status => shown.set(status, percent),
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let cache = ImageCache {
            image_cache_id: "imc-0123456789abcdefghij".into(),
            image_cache_name: "base".into(),
            creation_time: "2026-12-04T12:00:00Z".into(),
            image_cache_size: 1,
            images: vec!["127.0.0.1:5000/busybox:latest".into()],
            progress: "100%".into(),
            region_id: "local".into(),
            status: "Ready".into(),
            ..Default::default()
        };
        let doc = crate::ui::format::document(Format::Json, &[cache]).unwrap();
        insta::assert_snapshot!(doc.unwrap());
    }
}
