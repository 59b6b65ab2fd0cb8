//! `berth image ls | rm | pull | import`: the node's image store, read and changed on the
//! state directory directly (`--state-dir`), so they work with or without `berth serve`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use berth_core::ImagePullPolicy;
use berth_image::{ImageInfo, ImageStore, PullEvent, PullOptions};

use crate::ui::pull::human;
use crate::ui::{Format, Table};

use crate::cli::registry_host;

#[derive(clap::Args)]
pub struct ImageArgs {
    /// berth's state directory (as given to `berth serve`).
    #[arg(long, global = true, default_value = "/var/lib/berth")]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand)]
enum ImageCommand {
    /// List stored images, most recently used first.
    Ls {
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Remove images (refused while a group or an image cache uses one).
    Rm {
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Pull an image, showing the progress of every layer.
    Pull {
        reference: String,
        /// Reach the registry over plain HTTP (automatic for 127.0.0.1 and localhost).
        #[arg(long)]
        plain_http: bool,
        /// Do not check the registry's TLS certificate.
        #[arg(long)]
        insecure: bool,
        /// Ask the registry even when the image is stored.
        #[arg(long)]
        always: bool,
    },
    /// Import an OCI archive or a `docker save` tar (images resolve before any pull).
    Import {
        file: PathBuf,
        /// Store the archive's single image under this reference.
        #[arg(long)]
        name: Option<String>,
    },
}

fn open(state_dir: &Path) -> anyhow::Result<ImageStore> {
    let root = state_dir.join("node").join("images");
    ImageStore::open(&root)
        .with_context(|| format!("cannot open the image store {}", root.display()))
}

pub async fn run(a: ImageArgs) -> anyhow::Result<()> {
    let store = open(&a.state_dir)?;
    match a.command {
        ImageCommand::Ls { output } => {
            let images = store.list()?;
            let docs: Vec<serde_json::Value> = images.iter().map(image_json).collect();
            if crate::ui::format::print_document(output, &docs)? {
                return Ok(());
            }
            let mut t = Table::new(&["REFERENCE", "DIGEST", "SIZE", "LAST USED", "PINNED BY"]);
            for i in &images {
                let digest = i.digest.strip_prefix("sha256:").unwrap_or(&i.digest);
                let mut pinned = i.pinned_by.join(",");
                if i.imported {
                    pinned = format!("(imported) {pinned}");
                }
                t.row(vec![
                    i.reference.clone().into(),
                    digest.get(..19).unwrap_or(digest).into(),
                    human(i.size_bytes).into(),
                    ago(i.last_used).into(),
                    pinned.into(),
                ]);
            }
            t.print();
        }
        ImageCommand::Rm { references } => {
            let mut failed = false;
            for r in references {
                match store.remove(&r).await {
                    Ok(freed) => println!("{r} (freed {})", human(freed)),
                    Err(e) => {
                        eprintln!("berth: {r}: {}", chain(&e));
                        failed = true;
                    }
                }
            }
            if failed {
                anyhow::bail!("some images were not removed");
            }
        }
        ImageCommand::Pull {
            reference,
            plain_http,
            insecure,
            always,
        } => {
            let mut opts = PullOptions {
                policy: if always {
                    ImagePullPolicy::Always
                } else {
                    ImagePullPolicy::IfNotPresent
                },
                ..PullOptions::default()
            };
            if let Some(host) = registry_host(&reference) {
                let local = host.starts_with("127.")
                    || host.starts_with("localhost")
                    || host.starts_with("[::1]");
                if plain_http || local {
                    opts.plain_http.push(host.to_string());
                }
                if insecure {
                    opts.insecure.push(host.to_string());
                }
            }
            let bar = crate::ui::pull::PullBars::new();
            let on_event = |ev: PullEvent| {
                if let PullEvent::Pulled {
                    digest,
                    bytes,
                    elapsed,
                    cached,
                    ..
                } = ev
                {
                    bar.finish();
                    if cached {
                        eprintln!("already present: {digest}");
                    } else {
                        eprintln!(
                            "pulled {digest}: {} in {:.2}s",
                            human(bytes),
                            elapsed.as_secs_f64()
                        );
                    }
                }
            };
            let image = store
                .ensure_with_progress(&reference, &opts, &on_event, &|p| bar.update(p))
                .await
                .map_err(|e| anyhow::anyhow!("{}", chain(&e)))?;
            println!("{}", image.reference);
        }
        ImageCommand::Import { file, name } => {
            let images = match name {
                Some(n) => vec![store.import_as(&file, &n).await],
                None => store
                    .import(&file)
                    .await
                    .map(|v| v.into_iter().map(Ok).collect())
                    .unwrap_or_else(|e| vec![Err(e)]),
            };
            for i in images {
                let i = i.map_err(|e| anyhow::anyhow!("{}", chain(&e)))?;
                println!("{} {}", i.reference, i.digest);
            }
        }
    }
    Ok(())
}

/// An image of `image ls -o json|yaml` (docs/CLI.md).
fn image_json(i: &ImageInfo) -> serde_json::Value {
    let used: chrono::DateTime<chrono::Utc> = i.last_used.into();
    serde_json::json!({
        "Reference": i.reference,
        "Digest": i.digest,
        "SizeBytes": i.size_bytes,
        "LastUsedTime": used.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "PinnedBy": i.pinned_by,
        "Imported": i.imported,
    })
}

fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::ui::time::ago_secs(secs)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_json_shape() {
        let i = ImageInfo {
            reference: "127.0.0.1:5000/busybox:latest".into(),
            digest: "sha256:0123".into(),
            size_bytes: 2_000_000,
            last_used: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_780_000_000),
            pinned_by: vec!["cache:imc-1".into()],
            imported: false,
        };
        let doc = crate::ui::format::document(Format::Json, &[image_json(&i)]).unwrap();
        insta::assert_snapshot!(doc.unwrap());
    }
}
