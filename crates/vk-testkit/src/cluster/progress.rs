//! A progress line for slow steps: what is running, for how long, and the last thing its
//! log said. On a terminal the line is redrawn in place; otherwise (CI) a line is printed
//! every 30 seconds so logs stay short but show the step is alive.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::fsutil::tail;

/// Reports a running step until dropped (or [`Progress::finish`]ed).
#[derive(Debug)]
pub struct Progress {
    step: String,
    started: Instant,
    done: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Announces `step` and keeps reporting the elapsed time; with `log`, also its last line.
    pub fn start(step: impl Into<String>, log: Option<PathBuf>) -> Self {
        let step = step.into();
        let started = Instant::now();
        let done = Arc::new(AtomicBool::new(false));
        eprintln!("==> {step}");
        let ticker = {
            let step = step.clone();
            let done = Arc::clone(&done);
            std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || tick(&step, started, &done, log))
                .ok()
        };
        Self {
            step,
            started,
            done,
            ticker,
        }
    }

    /// Ends the step, printing how long it took.
    pub fn finish(mut self) {
        self.stop();
        eprintln!(
            "    {} done in {}",
            self.step,
            format_elapsed(self.started.elapsed())
        );
    }

    fn stop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(handle) = self.ticker.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tick(step: &str, started: Instant, done: &AtomicBool, log: Option<PathBuf>) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(30)
    };
    let mut last_report = Instant::now();
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        if last_report.elapsed() < every || done.load(Ordering::SeqCst) {
            continue;
        }
        last_report = Instant::now();
        let last_line = log
            .as_ref()
            .map(|p| tail(p, 1))
            .map(|l| l.trim().chars().take(70).collect::<String>())
            .unwrap_or_default();
        let elapsed = format_elapsed(started.elapsed());
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K    {step}: {elapsed}  {last_line}");
        } else {
            let _ = writeln!(err, "    {step}: {elapsed} elapsed  {last_line}");
        }
        let _ = err.flush();
    }
    if tty {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}

/// `1m05s`-style durations.
pub(crate) fn format_elapsed(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_elapsed_time() {
        assert_eq!(format_elapsed(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_elapsed(Duration::from_secs(65)), "1m05s");
    }
}
