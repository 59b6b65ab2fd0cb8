//! Progress of something the client waits for (a group becoming Running, an image cache
//! becoming Ready): a spinner or a bar redrawn in place on a terminal (stderr), a plain line
//! per change otherwise, so that logs of scripts stay readable.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The display of one wait.
pub(crate) struct Waiting {
    what: String,
    bar: Option<ProgressBar>,
    last: String,
}

impl Waiting {
    /// A wait for `what` (`eci-…`); with `percent`, a bar of 0–100 on a terminal, else a
    /// spinner.
    pub(crate) fn new(what: &str, percent: bool) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let colour = super::colour::stderr();
            let template = match (percent, colour) {
                (true, true) => {
                    "{spinner:.cyan} {prefix} [{bar:30.cyan/blue}] {percent:>3}% {msg} ({elapsed})"
                }
                (true, false) => "{spinner} {prefix} [{bar:30}] {percent:>3}% {msg} ({elapsed})",
                (false, true) => "{spinner:.cyan} {prefix} {msg} ({elapsed})",
                (false, false) => "{spinner} {prefix} {msg} ({elapsed})",
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .progress_chars("=> ");
            // Drawn only once its prefix and message are set.
            let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::hidden())
                .with_style(style);
            bar.set_prefix(what.to_string());
            bar.set_message("waiting");
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            what: what.to_string(),
            bar,
            last: String::new(),
        }
    }

    /// The state now, and how far along it is (percent) when known.
    pub(crate) fn set(&mut self, msg: &str, percent: Option<u64>) {
        match &self.bar {
            Some(bar) => {
                if let Some(p) = percent {
                    bar.set_position(p.min(100));
                }
                bar.set_message(msg.to_string());
            }
            None if msg != self.last => eprintln!("{}: {msg}", self.what),
            None => {}
        }
        self.last = msg.to_string();
    }

    /// Removes the bar (the caller prints the outcome).
    pub(crate) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
