//! Progress: the run's counters, what the user sees while it runs, and the
//! final summary.
//!
//! Owns [`Stats`] (lock-free counters every stage bumps), the reporter task
//! (progress bars on a terminal, a plain log line every few seconds
//! otherwise), and [`Summary`] (the one-line summary and `--summary-json`).
//!
//! Invariant: counters only grow; `events_read = indexed + dead_lettered +
//! in flight` at every moment, and `in flight` is 0 once the run has ended.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Counters of one run, shared by every stage.
#[derive(Debug, Default)]
pub struct Stats {
    pub files_listed: AtomicU64,
    pub bytes_listed: AtomicU64,
    /// Set once every source has been listed, so the totals are final.
    pub listing_done: AtomicBool,
    pub files_read: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Files not taken: unreadable, corrupt, not CloudTrail.
    pub files_skipped: AtomicU64,
    /// Files that broke off part-way; their events before the break were kept.
    pub files_truncated: AtomicU64,
    /// CloudTrail digest files, which hold no events (skipped on purpose).
    pub files_digest: AtomicU64,
    /// Files a sync found already done in an earlier run.
    pub files_already_done: AtomicU64,
    pub events_read: AtomicU64,
    /// Values inside files that were not CloudTrail events (dead-lettered).
    pub events_skipped: AtomicU64,
    /// Events indexed with an id made from their content (no usable eventID).
    pub events_without_id: AtomicU64,
    /// Events indexed in `<prefix>-undated` (no readable eventTime).
    pub events_undated: AtomicU64,
    pub created: AtomicU64,
    pub updated: AtomicU64,
    /// Documents whose bulk lines were built but not sent (--dry-run).
    pub encoded: AtomicU64,
    /// Export: lines written, and repeated events (same id) written once.
    pub written: AtomicU64,
    pub duplicates: AtomicU64,
    /// Events the cluster would not take (dead-lettered).
    pub failed: AtomicU64,
    pub batches: AtomicU64,
    pub bulk_bytes: AtomicU64,
    pub retries: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn indexed(&self) -> u64 {
        Self::get(&self.created) + Self::get(&self.updated)
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, log lines otherwise.
    Auto,
    /// Always bars (even when stderr is not a terminal).
    Bars,
    /// Plain log lines.
    Log,
    /// Nothing until the summary.
    Off,
}

/// The bars being shown, if any, so log lines can be printed above them.
static BARS: std::sync::Mutex<Option<MultiProgress>> = std::sync::Mutex::new(None);

fn shown_bars() -> Option<MultiProgress> {
    BARS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Where log lines go: stderr, above the progress bars when they are shown.
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match shown_bars() {
            Some(bars) => bars.suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Shows progress until dropped or finished.
pub struct Reporter {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Reporter {
    pub fn start(stats: Arc<Stats>, mode: ProgressMode, encode_only: bool, interval: Duration) -> Reporter {
        let stop = Arc::new(AtomicBool::new(false));
        let bars = match mode {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Bars => true,
            ProgressMode::Log | ProgressMode::Off => false,
        };
        let task = match mode {
            ProgressMode::Off => None,
            _ if bars => Some(tokio::spawn(show_bars(stats, stop.clone(), encode_only))),
            _ => Some(tokio::spawn(show_lines(stats, stop.clone(), interval, encode_only))),
        };
        Reporter { stop, task }
    }

    pub async fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn show_bars(stats: Arc<Stats>, stop: Arc<AtomicBool>, encode_only: bool) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
    *BARS.lock().unwrap_or_else(|p| p.into_inner()) = Some(multi.clone());
    let style = |template: &str| {
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    };
    let files = multi.add(ProgressBar::new(0));
    files.set_style(style("{prefix:>7} [{bar:30}] {pos}/{len} {msg}"));
    files.set_prefix("files");
    let bytes = multi.add(ProgressBar::new(0));
    // No ETA while listing goes on: the total is not known yet.
    bytes.set_style(style("{prefix:>7} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"));
    let mut eta_shown = false;
    bytes.set_prefix("bytes");
    let events = multi.add(ProgressBar::new_spinner());
    events.set_style(style("{prefix:>7} {spinner} {msg}"));
    events.set_prefix("events");
    let started = Instant::now();
    loop {
        let done = stop.load(Ordering::Relaxed);
        let listed = Stats::get(&stats.files_listed);
        let listing_done = stats.listing_done.load(Ordering::Relaxed);
        files.set_length(listed);
        files.set_position(
            Stats::get(&stats.files_read) + Stats::get(&stats.files_skipped) + Stats::get(&stats.files_digest),
        );
        if listing_done && !eta_shown {
            bytes.set_style(style(
                "{prefix:>7} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            ));
            eta_shown = true;
        }
        files.set_message(if listing_done {
            String::new()
        } else {
            "(listing…)".to_string()
        });
        bytes.set_length(Stats::get(&stats.bytes_listed));
        bytes.set_position(Stats::get(&stats.bytes_read));
        let read = Stats::get(&stats.events_read);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        events.set_message(format!(
            "{} read, {} {}, {} failed, {:.0}/s",
            read,
            progress_count(&stats, encode_only),
            if encode_only { "encoded" } else { "indexed" },
            Stats::get(&stats.failed),
            read as f64 / secs
        ));
        events.tick();
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(125)).await;
    }
    files.finish();
    bytes.finish();
    events.finish();
    let _ = multi.clear();
    *BARS.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// Events done so far: indexed, or only encoded (dry runs and exports, whose
/// lines are written at the end).
fn progress_count(stats: &Stats, encode_only: bool) -> u64 {
    if encode_only {
        Stats::get(&stats.encoded)
    } else {
        stats.indexed()
    }
}

async fn show_lines(stats: Arc<Stats>, stop: Arc<AtomicBool>, interval: Duration, encode_only: bool) {
    let started = Instant::now();
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last.elapsed() < interval {
            continue;
        }
        last = Instant::now();
        let read = Stats::get(&stats.events_read);
        let secs = started.elapsed().as_secs_f64();
        let total = Stats::get(&stats.bytes_listed);
        let done = Stats::get(&stats.bytes_read);
        let eta = if stats.listing_done.load(Ordering::Relaxed) && done > 0 && total >= done {
            format!(", ETA {:.0}s", secs * (total - done) as f64 / done as f64)
        } else {
            String::new()
        };
        tracing::info!(
            "progress: {}/{} files, {} MB of {} MB, {} events read, {} {}, {} failed, {:.0} events/s{}",
            Stats::get(&stats.files_read) + Stats::get(&stats.files_skipped) + Stats::get(&stats.files_digest),
            Stats::get(&stats.files_listed),
            done / 1_000_000,
            total / 1_000_000,
            read,
            progress_count(&stats, encode_only),
            if encode_only { "encoded" } else { "indexed" },
            Stats::get(&stats.failed),
            read as f64 / secs.max(0.001),
            eta,
        );
    }
}

/// The result of a run, as printed and as written by `--summary-json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub dry_run: bool,
    pub files: u64,
    pub files_skipped: u64,
    pub files_truncated: u64,
    pub files_digest: u64,
    /// Files a sync found already done in an earlier run (not read again).
    pub files_already_done: u64,
    pub bytes: u64,
    pub events_read: u64,
    pub indexed: u64,
    pub created: u64,
    pub updated: u64,
    /// Documents encoded into bulk bodies without being sent (--dry-run).
    pub encoded: u64,
    /// `export`: lines written, and events seen again in the run (written once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<u64>,
    /// Values found in files that were not CloudTrail events.
    pub skipped: u64,
    /// Events the cluster refused (in the dead-letter file).
    pub failed: u64,
    /// Events indexed with an id made from their content / in `<prefix>-undated`.
    pub without_id: u64,
    pub undated: u64,
    pub dead_letters: u64,
    pub dead_letter_file: Option<String>,
    pub batches: u64,
    pub bulk_bytes: u64,
    pub retries: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    /// Stopped early by Ctrl-C or SIGTERM.
    pub interrupted: bool,
    /// S3 LIST requests sent.
    pub s3_list_requests: u64,
    /// Bulk requests allowed in flight at once (--concurrency), the lowest
    /// the adaptive limit went when the cluster pushed back, and how often
    /// it was lowered.
    pub concurrency: u64,
    pub concurrency_low: u64,
    pub concurrency_decreases: u64,
    /// Peak resident memory of the process (Linux), in bytes.
    pub peak_rss_bytes: Option<u64>,
}

impl Summary {
    pub fn from_stats(stats: &Stats, elapsed: Duration, dry_run: bool, dead_letters: u64, dlq: Option<String>) -> Self {
        let g = Stats::get;
        let seconds = elapsed.as_secs_f64();
        let events_read = g(&stats.events_read);
        Summary {
            dry_run,
            files: g(&stats.files_read),
            files_skipped: g(&stats.files_skipped),
            files_truncated: g(&stats.files_truncated),
            files_digest: g(&stats.files_digest),
            files_already_done: g(&stats.files_already_done),
            bytes: g(&stats.bytes_read),
            events_read,
            indexed: stats.indexed(),
            created: g(&stats.created),
            updated: g(&stats.updated),
            encoded: g(&stats.encoded),
            written: None,
            duplicates: None,
            skipped: g(&stats.events_skipped),
            failed: g(&stats.failed),
            without_id: g(&stats.events_without_id),
            undated: g(&stats.events_undated),
            dead_letters,
            dead_letter_file: if dead_letters > 0 { dlq } else { None },
            batches: g(&stats.batches),
            bulk_bytes: g(&stats.bulk_bytes),
            retries: g(&stats.retries),
            seconds: (seconds * 1000.0).round() / 1000.0,
            events_per_second: if seconds > 0.0 {
                (events_read as f64 / seconds).round()
            } else {
                0.0
            },
            interrupted: false,
            s3_list_requests: 0,
            concurrency: 0,
            concurrency_low: 0,
            concurrency_decreases: 0,
            peak_rss_bytes: peak_rss_bytes(),
        }
    }

    /// Whether some input was skipped or some events dead-lettered (exit code 3).
    pub fn is_partial(&self) -> bool {
        self.files_skipped > 0 || self.files_truncated > 0 || self.skipped > 0 || self.failed > 0 || self.interrupted
    }

    /// The one-line summary.
    pub fn line(&self) -> String {
        let mut files = format!("{} files", self.files);
        let mut extra = Vec::new();
        if self.files_skipped > 0 {
            extra.push(format!("{} skipped", self.files_skipped));
        }
        if self.files_truncated > 0 {
            extra.push(format!("{} truncated", self.files_truncated));
        }
        if self.files_digest > 0 {
            extra.push(format!("{} digest", self.files_digest));
        }
        if self.files_already_done > 0 {
            extra.push(format!("{} already done", self.files_already_done));
        }
        if !extra.is_empty() {
            files.push_str(&format!(" ({})", extra.join(", ")));
        }
        let indexed = if let Some(written) = self.written {
            format!(
                "{written} written ({} repeated events dropped)",
                self.duplicates.unwrap_or(0)
            )
        } else if self.dry_run {
            format!("{} encoded (dry run, nothing sent)", self.encoded)
        } else {
            format!(
                "{} indexed ({} new, {} updated)",
                self.indexed, self.created, self.updated
            )
        };
        let mut line = format!(
            "{}{files}, {} events read, {indexed}, {} skipped, {} failed, {:.1} s, {:.0} events/s",
            if self.interrupted { "interrupted: " } else { "" },
            self.events_read,
            self.skipped,
            self.failed,
            self.seconds,
            self.events_per_second
        );
        if self.retries > 0 {
            line.push_str(&format!("; {} retries", self.retries));
            if self.concurrency_low < self.concurrency {
                line.push_str(&format!(
                    ", concurrency lowered to {} of {}",
                    self.concurrency_low, self.concurrency
                ));
            }
        }
        if let Some(path) = &self.dead_letter_file {
            line.push_str(&format!("; dead letters in {path}"));
        }
        line
    }
}

/// The process's peak resident set size (VmHWM), where /proc tells it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_and_partial() {
        let stats = Stats::default();
        Stats::add(&stats.files_read, 3);
        Stats::add(&stats.events_read, 10);
        Stats::add(&stats.created, 7);
        Stats::add(&stats.updated, 3);
        let s = Summary::from_stats(&stats, Duration::from_secs(2), false, 0, Some("d.ndjson".into()));
        assert!(!s.is_partial());
        assert_eq!(
            s.line(),
            "3 files, 10 events read, 10 indexed (7 new, 3 updated), 0 skipped, 0 failed, 2.0 s, 5 events/s"
        );
        Stats::add(&stats.files_skipped, 1);
        let s = Summary::from_stats(&stats, Duration::from_secs(2), false, 0, None);
        assert!(s.is_partial());
        assert!(s.line().starts_with("3 files (1 skipped), "), "{}", s.line());
    }
}
