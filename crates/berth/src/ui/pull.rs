//! The progress of `berth image pull`: on a terminal, indicatif bars (one per layer being
//! downloaded, one for the whole image), a line per finished layer above them; otherwise a
//! plain line per finished layer.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use berth_image::PullProgress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of one pull.
pub(crate) struct PullBars {
    tty: Option<Tty>,
    started: Instant,
    done: Mutex<Vec<bool>>,
}

struct Tty {
    multi: MultiProgress,
    /// The whole image's bar, added once its size is known.
    total: ProgressBar,
    total_shown: std::sync::atomic::AtomicBool,
    layer_style: ProgressStyle,
    layers: Mutex<HashMap<usize, ProgressBar>>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl PullBars {
    pub(crate) fn new() -> Self {
        let tty = std::io::stderr().is_terminal().then(|| {
            let colour = super::colour::stderr();
            let (layer, total) = if colour {
                (
                    "{prefix:>12.cyan} [{bar:30.cyan/blue}] {bytes:>10} / {total_bytes:<10}",
                    "{prefix:>12.bold} [{bar:30.green/white}] {bytes:>10} / {total_bytes:<10} {binary_bytes_per_sec} {msg}",
                )
            } else {
                (
                    "{prefix:>12} [{bar:30}] {bytes:>10} / {total_bytes:<10}",
                    "{prefix:>12} [{bar:30}] {bytes:>10} / {total_bytes:<10} {binary_bytes_per_sec} {msg}",
                )
            };
            // Hidden until the multi-bar takes it.
            let total_bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden())
                .with_style(style(total));
            total_bar.set_prefix("total");
            Tty {
                multi: MultiProgress::new(),
                total: total_bar,
                total_shown: Default::default(),
                layer_style: style(layer),
                layers: Mutex::default(),
            }
        });
        Self {
            tty,
            started: Instant::now(),
            done: Mutex::default(),
        }
    }

    pub(crate) fn update(&self, p: &PullProgress) {
        let newly_done = {
            let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            if done.len() < p.layers {
                done.resize(p.layers, false);
            }
            let was = done.get(p.layer).copied().unwrap_or(true);
            if let Some(d) = done.get_mut(p.layer) {
                *d = p.layer_done;
            }
            p.layer_done && !was
        };
        let Some(t) = &self.tty else {
            if newly_done {
                let secs = self.started.elapsed().as_secs_f64().max(0.001);
                eprintln!(
                    "layer {}/{} {} {} done ({}/{} total, {}/s)",
                    p.layer + 1,
                    p.layers,
                    short(&p.digest),
                    human(p.layer_size),
                    human(p.bytes),
                    human(p.total_bytes),
                    human((p.bytes as f64 / secs) as u64)
                );
            }
            return;
        };
        t.total.set_length(p.total_bytes);
        t.total.set_position(p.bytes);
        if !t
            .total_shown
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            t.multi.add(t.total.clone());
        }
        let finished = self
            .done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|d| **d)
            .count();
        t.total
            .set_message(format!("layers {finished}/{}", p.layers));
        let mut layers = t.layers.lock().unwrap_or_else(|e| e.into_inner());
        if newly_done {
            if let Some(bar) = layers.remove(&p.layer) {
                bar.finish_and_clear();
                t.multi.remove(&bar);
            }
            let _ = t.multi.println(format!(
                "{:>12} done {}",
                short(&p.digest),
                human(p.layer_size)
            ));
            return;
        }
        if p.layer_done {
            return;
        }
        let bar = layers.entry(p.layer).or_insert_with(|| {
            let bar = t.multi.insert_before(
                &t.total,
                ProgressBar::new(p.layer_size).with_style(t.layer_style.clone()),
            );
            bar.set_prefix(short(&p.digest).to_string());
            bar
        });
        bar.set_length(p.layer_size);
        bar.set_position(p.layer_bytes);
    }

    /// Clears the bars before the outcome is printed.
    pub(crate) fn finish(&self) {
        if let Some(t) = &self.tty {
            for (_, bar) in t.layers.lock().unwrap_or_else(|e| e.into_inner()).drain() {
                bar.finish_and_clear();
            }
            t.total.finish_and_clear();
        }
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

/// Bytes in binary units (`12.5 MiB`).
pub(crate) fn human(n: u64) -> String {
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
