//! Progress of a long CLI job (a projection rebuild, an import): on a terminal an `indicatif` bar
//! with rate and ETA; otherwise (a log file, CI) a plain line at the start, every few seconds and at
//! the end, so a redirected output is readable and not a stream of carriage returns.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often plain output writes a line.
const LINE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct JobProgress {
    inner: Inner,
}

enum Inner {
    Bar(ProgressBar),
    Lines(Lines),
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bar(_) => "Bar",
            Self::Lines(_) => "Lines",
        })
    }
}

struct Lines {
    out: Box<dyn Write + Send>,
    label: String,
    unit: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    last: Option<Instant>,
}

impl JobProgress {
    /// On standard error: a bar when it is a terminal, plain lines otherwise.
    pub fn stderr(label: &str, unit: &'static str, total: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = format!("{label} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}}");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            Self { inner: Inner::Bar(bar) }
        } else {
            Self::lines(Box::new(std::io::stderr()), label, unit, total)
        }
    }

    /// Plain lines into `out`.
    pub fn lines(out: Box<dyn Write + Send>, label: &str, unit: &'static str, total: u64) -> Self {
        let lines = Lines { out, label: label.into(), unit, total, done: 0, started: Instant::now(), last: None };
        Self { inner: Inner::Lines(lines) }
    }

    /// The job's size became known or changed.
    pub fn set_total(&mut self, total: u64) {
        match &mut self.inner {
            Inner::Bar(bar) => bar.set_length(total),
            Inner::Lines(l) => l.total = total,
        }
    }

    /// `done` units of the total are done.
    pub fn set(&mut self, done: u64) {
        match &mut self.inner {
            Inner::Bar(bar) => bar.set_position(done),
            Inner::Lines(l) => {
                l.done = done;
                if l.last.is_none_or(|t| t.elapsed() >= LINE_EVERY) {
                    l.write();
                }
            }
        }
    }

    /// The job ended: the bar stays as it is, plain output writes its last line.
    pub fn finish(&mut self) {
        match &mut self.inner {
            Inner::Bar(bar) => bar.finish(),
            Inner::Lines(l) => l.write(),
        }
    }
}

impl Lines {
    fn write(&mut self) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { self.done as f64 / elapsed } else { 0.0 };
        let percent = if self.total > 0 { self.done as f64 * 100.0 / self.total as f64 } else { 100.0 };
        let eta = if rate > 0.0 { self.total.saturating_sub(self.done) as f64 / rate } else { 0.0 };
        let (label, unit, done, total) = (&self.label, self.unit, self.done, self.total);
        let _ =
            writeln!(self.out, "{label}: {done}/{total} {unit} ({percent:.0}%), {rate:.0} {unit}/s, ETA {eta:.0} s");
        let _ = self.out.flush();
        self.last = Some(Instant::now());
    }
}
