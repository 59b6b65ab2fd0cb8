//! `berth image ls | rm | pull | import`: the node's image store, read and changed on the
//! state directory directly (`--state-dir`), so they work with or without `berth serve`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use berth_core::ImagePullPolicy;
use berth_image::{ImageStore, PullEvent, PullOptions, PullProgress};

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
    Ls,
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
        ImageCommand::Ls => {
            println!(
                "{:<60}  {:<19}  {:>10}  {:<12}  PINNED BY",
                "REFERENCE", "DIGEST", "SIZE", "LAST USED"
            );
            for i in store.list()? {
                let digest = i.digest.strip_prefix("sha256:").unwrap_or(&i.digest);
                let mut pinned = i.pinned_by.join(",");
                if i.imported {
                    pinned = format!("(imported) {pinned}");
                }
                println!(
                    "{:<60}  {:<19}  {:>10}  {:<12}  {}",
                    i.reference,
                    &digest[..digest.len().min(19)],
                    human(i.size_bytes),
                    ago(i.last_used),
                    pinned
                );
            }
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
            let bar = Bar::new();
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

/// A progress display on stderr: one line redrawn in place on a terminal, a line per
/// finished layer otherwise.
struct Bar {
    tty: bool,
    started: Instant,
    state: Mutex<BarState>,
}

#[derive(Default)]
struct BarState {
    layers: Vec<(u64, u64, bool)>,
    bytes: u64,
    total: u64,
    drawn: bool,
}

impl Bar {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            state: Mutex::default(),
        }
    }

    fn update(&self, p: &PullProgress) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.layers.len() < p.layers {
            st.layers.resize(p.layers, (0, 0, false));
        }
        let was_done = st.layers.get(p.layer).is_some_and(|l| l.2);
        if let Some(l) = st.layers.get_mut(p.layer) {
            *l = (p.layer_bytes, p.layer_size, p.layer_done);
        }
        st.bytes = p.bytes;
        st.total = p.total_bytes;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = st.bytes as f64 / secs;
        let done = st.layers.iter().filter(|l| l.2).count();
        let mut err = std::io::stderr().lock();
        if self.tty {
            let pct = (st.bytes * 100).checked_div(st.total).unwrap_or(0);
            let width = 30usize;
            let filled = (pct as usize * width / 100).min(width);
            let _ = write!(
                err,
                "\r[{}{}] {:>3}% {} / {}  {}/s  layers {}/{}  (layer {} {} / {})\x1b[K",
                "#".repeat(filled),
                " ".repeat(width - filled),
                pct,
                human(st.bytes),
                human(st.total),
                human(rate as u64),
                done,
                st.layers.len(),
                p.layer + 1,
                human(p.layer_bytes),
                human(p.layer_size),
            );
            st.drawn = true;
        } else if p.layer_done && !was_done {
            let _ = writeln!(
                err,
                "layer {}/{} {} {} done ({}/{} total, {}/s)",
                p.layer + 1,
                p.layers,
                short(&p.digest),
                human(p.layer_size),
                human(st.bytes),
                human(st.total),
                human(rate as u64)
            );
        }
        let _ = err.flush();
    }

    fn finish(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.drawn {
            eprintln!();
            st.drawn = false;
        }
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
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
