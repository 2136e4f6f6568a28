//! A progress bar per layer on a terminal (indicatif), plain lines otherwise.

use std::fmt::Display;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where a pull reports.
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    pub fn new(terminal: bool) -> Progress {
        Progress {
            bars: terminal.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// A line of its own (above the bars, on a terminal).
    pub fn line(&self, text: impl Display) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(text.to_string());
            }
            None => eprintln!("{text}"),
        }
    }

    /// A bar for a download of `total` bytes.
    pub fn bar(&self, name: String, total: u64) -> Bar {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(name.clone());
            bar
        });
        Bar { name, bar, total }
    }
}

/// One download's progress.
pub struct Bar {
    name: String,
    bar: Option<ProgressBar>,
    total: u64,
}

impl Bar {
    /// `n` more bytes arrived.
    pub fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// The download is complete and checked.
    pub fn finish(self) {
        match self.bar {
            Some(bar) => bar.finish(),
            None => eprintln!("{}: downloaded {} bytes", self.name, self.total),
        }
    }

    /// The download failed: the bar stops where it was; no plain line, since
    /// the error says what happened.
    pub fn abandon(self) {
        if let Some(bar) = self.bar {
            bar.abandon();
        }
    }
}
