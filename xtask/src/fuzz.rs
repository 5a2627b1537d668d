//! `cargo xtask fuzz`: runs every cargo-fuzz target of `fuzz/` for a while, one after
//! the other, and keeps what they found: new inputs in `fuzz/corpus/<target>/`
//! (minimized with `cargo fuzz cmin` afterwards), crashes in `fuzz/artifacts/<target>/`.
//!
//! This is the library part of xtask so that its tests, above all the corpus test that
//! runs every corpus file through its target's body without cargo-fuzz or nightly,
//! run with `cargo test --workspace --lib`.
//!
//! cargo-fuzz builds with nightly-only flags; on a stable toolchain the command sets
//! `RUSTC_BOOTSTRAP=1` for its cargo-fuzz processes only. Needs `cargo install
//! cargo-fuzz`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How often progress is printed while a target runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Longest input libFuzzer generates (`-max_len`): enough for a SPDY session of a few
/// frames, a deflate bomb or a config file, and it keeps the corpus small.
const MAX_INPUT_LEN: usize = 1024;

/// Variables `cargo run` sets for the binary it runs (besides `CARGO_PKG_*`).
const CARGO_RUN_VARIABLES: [&str; 5] = [
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
];

/// Options of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long to fuzz each target: `60s`, `5m`, `1h` or a number of seconds.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub time: Duration,
    /// Fuzz only this target (repeatable); default: every target of `cargo fuzz list`.
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// Sanitizer to build with (`none`, `address`, ...). The code under test is safe
    /// Rust, so `none` (about twice the executions per second) is the default.
    #[arg(long, default_value = "none")]
    pub sanitizer: String,
    /// Leave the corpus as the run grew it instead of minimizing it with `cargo fuzz
    /// cmin` to the inputs that reach distinct coverage edges (minimized, it stays
    /// small enough to keep in the repository).
    #[arg(long)]
    pub no_cmin: bool,
}

/// Runs `cargo xtask fuzz`: builds the targets, fuzzes each for `args.time`, prints a
/// summary, and fails if any target crashed (its reproducer is named in the summary).
pub fn run(args: Args) -> anyhow::Result<()> {
    let root = workspace_root();
    let cargo_fuzz = CargoFuzz {
        root: root.clone(),
        sanitizer: args.sanitizer.clone(),
    };
    cargo_fuzz.check_installed()?;
    let all = cargo_fuzz.list()?;
    let targets = if args.targets.is_empty() {
        all
    } else {
        for name in &args.targets {
            if !all.contains(name) {
                bail!("no fuzz target {name:?} (targets: {})", all.join(", "));
            }
        }
        args.targets.clone()
    };

    eprintln!("==> building {} fuzz targets", targets.len());
    let started = Instant::now();
    cargo_fuzz.build()?;
    eprintln!("    built in {:.0}s", started.elapsed().as_secs_f64());

    let mut reports = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        eprintln!(
            "==> [{}/{}] {target}: fuzzing for {}s",
            i + 1,
            targets.len(),
            args.time.as_secs()
        );
        let mut report = cargo_fuzz.run(target, args.time)?;
        if !args.no_cmin {
            cargo_fuzz.cmin(target)?;
        }
        report.corpus = Corpus::measure(&root.join("fuzz/corpus").join(target))?;
        eprintln!("    {}", report.one_line());
        reports.push(report);
    }

    eprintln!("\n{}", summary_table(&reports));
    let failed: Vec<&TargetReport> = reports.iter().filter(|r| r.failure.is_some()).collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} fuzz targets failed: {}",
            failed.len(),
            reports.len(),
            failed
                .iter()
                .map(|r| r.target.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    eprintln!(
        "==> fuzzing passed: {} targets, {} executions, in {:.0}s",
        reports.len(),
        reports.iter().map(|r| r.executions).sum::<u64>(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Parses `60s`, `5m`, `1h` or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 60s, 5m or 1h"))?;
    let seconds = match unit {
        "s" => Some(number),
        "m" => number.checked_mul(60),
        "h" => number.checked_mul(3600),
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use s, m or h)")),
    };
    match seconds {
        Some(0) => Err("the time must be at least one second".to_owned()),
        Some(s) => Ok(Duration::from_secs(s)),
        None => Err(format!("{text:?} is too long")),
    }
}

/// The `cargo fuzz` commands, run from the workspace root with the same build options.
struct CargoFuzz {
    root: PathBuf,
    sanitizer: String,
}

impl CargoFuzz {
    fn command(&self, subcommand: &str) -> Command {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .current_dir(&self.root)
            .arg("fuzz")
            .arg(subcommand)
            // Nightly features on a stable toolchain (a no-op on nightly).
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_INCREMENTAL", "0");
        // What `cargo run` set for xtask itself: build scripts that track these (ring
        // tracks CARGO_MANIFEST_DIR) would otherwise rebuild everything each time the
        // fuzz targets are built alternately by hand and by xtask.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if CARGO_RUN_VARIABLES.contains(&name.as_ref()) || name.starts_with("CARGO_PKG_") {
                command.env_remove(name.as_ref());
            }
        }
        command
    }

    /// The build options every build, run and cmin must share (or cargo would rebuild).
    fn build_options(&self) -> [String; 3] {
        [
            "--sanitizer".into(),
            self.sanitizer.clone(),
            "--debug-assertions".into(),
        ]
    }

    fn check_installed(&self) -> anyhow::Result<()> {
        let output = self
            .command("--version")
            .output()
            .context("running cargo fuzz --version")?;
        if !output.status.success() {
            bail!("cargo-fuzz is not installed: run `cargo install cargo-fuzz`");
        }
        Ok(())
    }

    fn list(&self) -> anyhow::Result<Vec<String>> {
        let output = self
            .command("list")
            .output()
            .context("running cargo fuzz list")?;
        if !output.status.success() {
            bail!(
                "cargo fuzz list failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    fn build(&self) -> anyhow::Result<()> {
        let status = self
            .command("build")
            .args(self.build_options())
            .status()
            .context("running cargo fuzz build")?;
        if !status.success() {
            bail!("cargo fuzz build failed ({status})");
        }
        Ok(())
    }

    /// Fuzzes `target` for `time`, printing progress; its output goes to
    /// `fuzz/artifacts/<target>/last-run.log`.
    fn run(&self, target: &str, time: Duration) -> anyhow::Result<TargetReport> {
        let artifacts = self.root.join("fuzz/artifacts").join(target);
        std::fs::create_dir_all(&artifacts)
            .with_context(|| format!("creating {}", artifacts.display()))?;
        std::fs::create_dir_all(self.root.join("fuzz/corpus").join(target))?;
        // Tokens of the input's language (libFuzzer's `-dict`), where there is a file.
        let dictionary = Some(self.root.join("fuzz/dict").join(format!("{target}.dict")))
            .filter(|d| d.is_file());
        let mut child = self
            .command("run")
            .args(self.build_options())
            .arg(target)
            .arg("--")
            .arg(format!("-max_total_time={}", time.as_secs()))
            .arg("-print_final_stats=1")
            .arg(format!("-max_len={MAX_INPUT_LEN}"))
            // A hang, or memory growing without bound, is a failure too.
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .args(dictionary.map(|d| format!("-dict={}", d.display())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting cargo fuzz run {target}"))?;
        let (lines_tx, lines) = mpsc::channel();
        let readers = [
            child
                .stdout
                .take()
                .map(|o| forward_lines(o, lines_tx.clone())),
            child
                .stderr
                .take()
                .map(|e| forward_lines(e, lines_tx.clone())),
        ];
        drop(lines_tx);

        let started = Instant::now();
        let mut log = String::new();
        let mut report = TargetReport::new(target);
        let mut next_progress = started + PROGRESS_EVERY;
        loop {
            let line = match lines.recv_timeout(Duration::from_millis(500)) {
                Ok(line) => Some(line),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if let Some(line) = line {
                report.observe(&line);
                log.push_str(&line);
                log.push('\n');
            }
            if Instant::now() >= next_progress {
                next_progress += PROGRESS_EVERY;
                if let Some(status) = &report.status {
                    eprintln!(
                        "    {:>4}s  {}",
                        started.elapsed().as_secs(),
                        status.describe()
                    );
                }
            }
        }
        for reader in readers.into_iter().flatten() {
            let _ = reader.join();
        }
        let exit = child.wait().context("waiting for cargo fuzz run")?;
        report.seconds = started.elapsed().as_secs();
        let log_path = artifacts.join("last-run.log");
        std::fs::write(&log_path, &log)
            .with_context(|| format!("writing {}", log_path.display()))?;
        if !exit.success() {
            let reproducers = report.reproducers.join(", ");
            report.failure = Some(match (report.panic.as_deref(), reproducers.is_empty()) {
                (Some(panic), false) => format!("{panic}; reproducer {reproducers}"),
                (None, false) => format!("{exit}; reproducer {reproducers}"),
                (_, true) => format!("{exit} without a reproducer; see {}", log_path.display()),
            });
        }
        Ok(report)
    }

    fn cmin(&self, target: &str) -> anyhow::Result<()> {
        let output = self
            .command("cmin")
            .args(self.build_options())
            .arg(target)
            // Keep the inputs that reach new edges, not those that only change how
            // often an edge runs: a fifth of the files, the same coverage.
            .args(["--", "-use_counters=0"])
            .output()
            .with_context(|| format!("running cargo fuzz cmin {target}"))?;
        if !output.status.success() {
            bail!(
                "cargo fuzz cmin {target} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

/// Sends every line `source` produces to `lines`, on a thread of its own.
fn forward_lines(
    source: impl Read + Send + 'static,
    lines: mpsc::Sender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // Byte lines, decoded lossily: an invalid byte must not stop the reading (the
        // child would block on a full pipe).
        let mut reader = BufReader::new(source);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            line.clear();
            if lines.send(text).is_err() {
                break;
            }
        }
    })
}

/// A libFuzzer status line: `#262144 pulse cov: 812 ft: 2345 corp: 143/31Kb lim: 4096
/// exec/s: 50205 rss: 400Mb`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Status {
    executions: u64,
    fields: BTreeMap<String, String>,
}

impl Status {
    fn parse(line: &str) -> Option<Status> {
        let rest = line.strip_prefix('#')?;
        let mut words = rest.split_whitespace();
        let executions = words.next()?.parse().ok()?;
        let words: Vec<&str> = words.collect();
        let fields: BTreeMap<String, String> = words
            .windows(2)
            .filter_map(|pair| {
                let key = pair[0].strip_suffix(':')?;
                Some((key.to_owned(), pair[1].to_owned()))
            })
            .collect();
        fields
            .contains_key("cov")
            .then_some(Status { executions, fields })
    }

    fn field(&self, key: &str) -> &str {
        self.fields.get(key).map_or("-", String::as_str)
    }

    fn describe(&self) -> String {
        format!(
            "{} execs, cov {}, ft {}, corpus {}, {} exec/s, rss {}",
            self.executions,
            self.field("cov"),
            self.field("ft"),
            self.field("corp"),
            self.field("exec/s"),
            self.field("rss")
        )
    }
}

/// The files of a corpus directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Corpus {
    files: usize,
    bytes: u64,
}

impl Corpus {
    fn measure(dir: &Path) -> anyhow::Result<Corpus> {
        let mut corpus = Corpus::default();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let metadata = entry?.metadata()?;
            if metadata.is_file() {
                corpus.files += 1;
                corpus.bytes += metadata.len();
            }
        }
        Ok(corpus)
    }
}

/// What a target's run amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TargetReport {
    target: String,
    seconds: u64,
    executions: u64,
    /// The last status line seen.
    status: Option<Status>,
    corpus: Corpus,
    /// Inputs libFuzzer wrote as crash, timeout or out-of-memory reproducers.
    reproducers: Vec<String>,
    /// The first panic seen: where, and the message.
    panic: Option<String>,
    panic_wants_message: bool,
    /// Why the target failed, if it did.
    failure: Option<String>,
}

impl TargetReport {
    fn new(target: &str) -> Self {
        Self {
            target: target.to_owned(),
            seconds: 0,
            executions: 0,
            status: None,
            corpus: Corpus::default(),
            reproducers: Vec::new(),
            panic: None,
            panic_wants_message: false,
            failure: None,
        }
    }

    /// Takes in one line of cargo fuzz's output.
    fn observe(&mut self, line: &str) {
        if let Some(status) = Status::parse(line) {
            self.executions = self.executions.max(status.executions);
            self.status = Some(status);
        } else if let Some(count) = line.strip_prefix("stat::number_of_executed_units:") {
            if let Ok(count) = count.trim().parse() {
                self.executions = count;
            }
        } else if let Some(path) = line.split("Test unit written to ").nth(1) {
            // Slow units are reported, not failures.
            if !path.contains("slow-unit-") {
                self.reproducers.push(path.trim().to_owned());
            }
        } else if self.panic_wants_message {
            // The line after "panicked at <file:line:col>:" is the message.
            self.panic_wants_message = false;
            if let Some(panic) = &mut self.panic {
                panic.push(' ');
                panic.push_str(line.trim());
            }
        } else if self.panic.is_none()
            && let Some(at) = line.find("panicked at ")
        {
            self.panic = Some(line[at..].trim().to_owned());
            self.panic_wants_message = true;
        }
    }

    fn one_line(&self) -> String {
        let outcome = self.failure.as_deref().unwrap_or("ok");
        format!(
            "{}: {} executions in {}s, cov {}, corpus {} files ({} bytes): {outcome}",
            self.target,
            self.executions,
            self.seconds,
            self.status.as_ref().map_or("-", |s| s.field("cov")),
            self.corpus.files,
            self.corpus.bytes
        )
    }
}

/// The summary printed at the end of a run.
fn summary_table(reports: &[TargetReport]) -> String {
    let mut table = format!(
        "{:<18} {:>6} {:>12} {:>9} {:>6} {:>7} {:>16}  result\n",
        "target", "time", "executions", "exec/s", "cov", "ft", "corpus"
    );
    for r in reports {
        let field = |key| r.status.as_ref().map_or("-", |s| s.field(key)).to_owned();
        let rate = r.executions.checked_div(r.seconds).unwrap_or(0);
        table.push_str(&format!(
            "{:<18} {:>5}s {:>12} {:>9} {:>6} {:>7} {:>16}  {}\n",
            r.target,
            r.seconds,
            r.executions,
            rate,
            field("cov"),
            field("ft"),
            format!("{} / {} KB", r.corpus.files, r.corpus.bytes.div_ceil(1024)),
            r.failure.as_deref().unwrap_or("ok")
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fuzz_dir() -> PathBuf {
        workspace_root().join("fuzz")
    }

    /// The corpus test: every file of `fuzz/corpus/<target>/` and of
    /// `fuzz/regressions/<target>/` (reproducers of crashes fixed, kept out of the corpus
    /// because `cargo fuzz cmin` would drop them once their coverage is no longer new)
    /// goes through the body of its target, the function the libFuzzer binary calls, and
    /// must not panic.
    #[test]
    fn every_corpus_file_passes_its_target() {
        let started = Instant::now();
        let mut failures = Vec::new();
        let mut total = 0;
        for target in &vk_fuzz_harness::TARGETS {
            let dir = fuzz_dir().join("corpus").join(target.name);
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|entry| entry.expect("corpus entry").path())
                .collect();
            assert!(!paths.is_empty(), "the corpus of {} is empty", target.name);
            let regressions = fuzz_dir().join("regressions").join(target.name);
            if let Ok(entries) = std::fs::read_dir(&regressions) {
                paths.extend(entries.map(|entry| entry.expect("regression entry").path()));
            }
            for path in paths {
                let data = std::fs::read(&path).expect("corpus file");
                total += 1;
                if std::panic::catch_unwind(|| (target.run)(&data)).is_err() {
                    failures.push(path.display().to_string());
                }
            }
        }
        assert!(failures.is_empty(), "panicked on {failures:#?}");
        eprintln!(
            "{total} corpus files in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }

    /// The corpus stays small enough to keep in the repository: inputs no longer than
    /// the fuzzer generates, a few hundred KB in all.
    #[test]
    fn the_corpus_is_small() {
        let mut total = 0;
        for target in &vk_fuzz_harness::TARGETS {
            let dir = fuzz_dir().join("corpus").join(target.name);
            for entry in std::fs::read_dir(&dir).expect("corpus directory") {
                let path = entry.expect("corpus entry").path();
                let len = std::fs::metadata(&path).expect("corpus file").len();
                assert!(
                    len <= MAX_INPUT_LEN as u64,
                    "{} is {len} bytes, over -max_len={MAX_INPUT_LEN}",
                    path.display()
                );
                total += len;
            }
        }
        assert!(
            total <= 400 << 10,
            "the corpus is {total} bytes: minimize it (cargo xtask fuzz runs cargo fuzz cmin)"
        );
    }

    /// The fuzz targets are exactly the harness's, each a wrapper of its body.
    #[test]
    fn fuzz_binaries_are_the_harness_targets() {
        let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("manifest");
        let bins: Vec<&str> = manifest
            .split("[[bin]]")
            .skip(1)
            .filter_map(|bin| {
                let line = bin.lines().find(|l| l.trim_start().starts_with("name"))?;
                line.split('"').nth(1)
            })
            .collect();
        let names: Vec<&str> = vk_fuzz_harness::TARGETS.iter().map(|t| t.name).collect();
        assert_eq!(bins, names);
        for name in names {
            let path = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
            let source = std::fs::read_to_string(&path).expect("fuzz target source");
            assert!(
                source.contains("fuzz_target!(|data: &[u8]| vk_fuzz_harness::"),
                "{} is not a wrapper of the harness",
                path.display()
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        for bad in ["", "s", "0s", "1d", "-1s", "1.5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn libfuzzer_output_is_understood() {
        let mut report = TargetReport::new("t");
        for line in [
            "INFO: Seed: 1234",
            "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb",
            "#262144\tpulse  cov: 812 ft: 2345 corp: 143/31Kb lim: 4096 exec/s: 50205 rss: 400Mb",
            "thread '<unnamed>' panicked at crates/vk-core/src/quantity.rs:99:21:",
            "attempt to add with overflow",
            "artifact_prefix='/w/fuzz/artifacts/t/'; Test unit written to /w/fuzz/artifacts/t/crash-abc",
            "Test unit written to /w/fuzz/artifacts/t/slow-unit-def",
            "stat::number_of_executed_units: 300000",
        ] {
            report.observe(line);
        }
        assert_eq!(report.executions, 300_000);
        let status = report.status.as_ref().expect("status");
        assert_eq!(status.executions, 262_144);
        assert_eq!(status.field("cov"), "812");
        assert_eq!(status.field("corp"), "143/31Kb");
        assert_eq!(status.field("exec/s"), "50205");
        assert_eq!(report.reproducers, ["/w/fuzz/artifacts/t/crash-abc"]);
        assert_eq!(
            report.panic.as_deref(),
            Some("panicked at crates/vk-core/src/quantity.rs:99:21: attempt to add with overflow")
        );
        assert_eq!(Status::parse("#5 not a status"), None);
    }
}
