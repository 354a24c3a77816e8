//! Progress: the run's counters, what the user sees while it runs, and the
//! final summary.
//!
//! Owns [`Stats`] (lock-free counters every stage bumps), the reporter task
//! (progress bars on a terminal, a plain log line every few seconds
//! otherwise), and [`Summary`] (the one-line summary and `--summary-json`).
//!
//! Invariant: counters only grow; `events_read = indexed + dead_lettered +
//! in flight` at every moment, and `in flight` is 0 once the run has ended.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Events read per account and region (from the files' place in the
    /// CloudTrail layout; `other` outside it), added once per file.
    pub places: Mutex<BTreeMap<(String, String), u64>>,
    /// Events sent to each index, added once per file.
    pub indices: Mutex<BTreeMap<String, u64>>,
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

    /// Adds a file's events to its account and region, and to the indices
    /// they went to.
    pub fn add_file(&self, account: &str, region: &str, events: u64, indices: BTreeMap<String, u64>) {
        if events > 0 {
            let mut places = self.places.lock().unwrap_or_else(|p| p.into_inner());
            *places.entry((account.to_string(), region.to_string())).or_default() += events;
        }
        if !indices.is_empty() {
            let mut all = self.indices.lock().unwrap_or_else(|p| p.into_inner());
            for (index, n) in indices {
                *all.entry(index).or_default() += n;
            }
        }
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

/// Takes the bars off the screen for good (before a last message when the
/// process quits at once).
pub fn clear_bars() {
    if let Some(bars) = BARS.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = bars.clear();
    }
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
    let mut rate = Rate::default();
    loop {
        let done = stop.load(Ordering::Relaxed);
        let listed = Stats::get(&stats.files_listed);
        let listing_done = stats.listing_done.load(Ordering::Relaxed);
        files.set_length(listed);
        files.set_position(
            Stats::get(&stats.files_read)
                + Stats::get(&stats.files_skipped)
                + Stats::get(&stats.files_digest)
                + Stats::get(&stats.files_already_done),
        );
        let (total, read_bytes) = (Stats::get(&stats.bytes_listed), Stats::get(&stats.bytes_read));
        if !eta_shown && eta_means_something(listing_done, read_bytes, total, started.elapsed()) {
            bytes.set_style(style(
                "{prefix:>7} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            ));
            eta_shown = true;
        }
        let count = progress_count(&stats, encode_only);
        files.set_message(phase(&stats, listing_done, count, encode_only).to_string());
        bytes.set_length(total);
        bytes.set_position(read_bytes);
        let read = Stats::get(&stats.events_read);
        let now = rate.update(count, started.elapsed());
        events.set_message(format!(
            "{read} read, {count} {} ({now:.0}/s now), {} failed",
            if encode_only { "encoded" } else { "indexed" },
            Stats::get(&stats.failed),
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

/// What the run is busy with, for the files bar: listing, waiting for the
/// first answers (the cluster creates the monthly indices then), or nothing
/// to say.
fn phase(stats: &Stats, listing_done: bool, done: u64, encode_only: bool) -> &'static str {
    if !listing_done {
        "(listing…)"
    } else if !encode_only && done == 0 && Stats::get(&stats.batches) > 0 {
        "(the cluster is creating the indices…)"
    } else {
        ""
    }
}

/// An ETA once it means something: the total is known (listing is done),
/// and enough was read, for long enough, to extrapolate from.
fn eta_means_something(listing_done: bool, read: u64, total: u64, elapsed: Duration) -> bool {
    listing_done && total > 0 && read * 20 >= total && elapsed >= Duration::from_secs(3)
}

/// The current rate of a growing count: a moving average over about the
/// last five seconds, so that it follows changes the average of the whole
/// run hides.
#[derive(Debug, Default)]
struct Rate {
    last: Option<(u64, Duration)>,
    per_second: f64,
}

impl Rate {
    fn update(&mut self, count: u64, at: Duration) -> f64 {
        if let Some((before, then)) = self.last {
            let dt = (at.saturating_sub(then)).as_secs_f64();
            if dt >= 0.5 {
                let instant = count.saturating_sub(before) as f64 / dt;
                let weight = (dt / 5.0).min(1.0);
                self.per_second += weight * (instant - self.per_second);
                self.last = Some((count, at));
            }
        } else {
            self.last = Some((count, at));
        }
        self.per_second
    }
}

/// Per-file warnings of one kind shown in a run before they are only
/// counted (the summary has the totals; `-v` shows each).
const WARNINGS_PER_KIND: u32 = 5;

/// Kinds of per-file warnings whose repeats are collapsed. (Skipped files
/// are never collapsed: each is named, as input the run did not take.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputWarning {
    /// Events indexed with a stand-in id or in `<prefix>-undated`.
    StandIns,
}

static INPUT_WARNINGS: [std::sync::atomic::AtomicU32; 1] = [const { std::sync::atomic::AtomicU32::new(0) }; 1];

/// Whether a per-file warning of this kind is still shown (the first few of
/// each kind); the next one says that more are only counted.
pub fn input_warning(kind: InputWarning) -> Option<&'static str> {
    let n = INPUT_WARNINGS[kind as usize].fetch_add(1, Ordering::Relaxed) + 1;
    match n {
        n if n < WARNINGS_PER_KIND => Some(""),
        n if n == WARNINGS_PER_KIND => Some(" (more of this kind are counted in the summary, shown with -v)"),
        _ => None,
    }
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
    /// Files the listing found (all of them once listing finished).
    pub files_found: u64,
    /// Events read per account, then per region (`other` outside the layout).
    pub accounts: BTreeMap<String, BTreeMap<String, u64>>,
    /// The alias searched over the indices (import and sync).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Events sent to each index (to be sent, with --dry-run).
    pub indices: BTreeMap<String, u64>,
    /// `follow`: what became of the queue's messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<serde_json::Value>,
    /// `--verify`: events by `ctindex.integrity`, and the files that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<serde_json::Value>,
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
            files_found: g(&stats.files_listed),
            accounts: {
                let places = stats.places.lock().unwrap_or_else(|p| p.into_inner());
                let mut accounts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
                for ((account, region), n) in places.iter() {
                    *accounts
                        .entry(account.clone())
                        .or_default()
                        .entry(region.clone())
                        .or_default() += n;
                }
                accounts
            },
            alias: None,
            indices: stats.indices.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            follow: None,
            integrity: None,
        }
    }

    /// Whether some input was skipped or some events dead-lettered (exit code 3).
    pub fn is_partial(&self) -> bool {
        self.files_skipped > 0 || self.files_truncated > 0 || self.skipped > 0 || self.failed > 0 || self.interrupted
    }

    /// The one-line summary.
    pub fn line(&self) -> String {
        // Files found = read + skipped + digest (+ already done, for sync).
        let found = self.files + self.files_skipped + self.files_digest + self.files_already_done;
        let mut parts = Vec::new();
        if found != self.files {
            parts.push(format!("{} read", self.files));
        }
        if self.files_skipped > 0 {
            parts.push(format!("{} skipped (not CloudTrail or unreadable)", self.files_skipped));
        }
        if self.files_digest > 0 {
            parts.push(format!("{} digest", self.files_digest));
        }
        if self.files_already_done > 0 {
            parts.push(format!("{} already done", self.files_already_done));
        }
        if self.files_truncated > 0 {
            parts.push(format!("{} of them incomplete", self.files_truncated));
        }
        let files = if parts.is_empty() {
            format!("{found} files")
        } else {
            format!("{found} files: {}", parts.join(", "))
        };
        let indexed = if let Some(written) = self.written {
            format!(
                "{written} written ({} repeated events dropped)",
                self.duplicates.unwrap_or(0)
            )
        } else if self.dry_run {
            format!("{} encoded (dry run, nothing sent)", self.encoded)
        } else {
            format!(
                "{} indexed ({} new, {} updated: their eventID was indexed before or repeats in the input)",
                self.indexed, self.created, self.updated
            )
        };
        let mut line = format!(
            "{}{files}; {} events read, {indexed}, {} values not events, {} failed, {:.1} s, {:.0} events/s",
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

impl Summary {
    /// The lines after the summary line: where the events went, from which
    /// accounts and regions, and what to do next. Empty for exports.
    pub fn details(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.interrupted {
            let handled = self.files + self.files_skipped + self.files_digest + self.files_already_done;
            let left = self.files_found.saturating_sub(handled);
            lines.push(format!(
                "  stopped early: {left} file(s) found were not started; running the same command again \
                 finishes the job safely (event ids are stable: nothing is duplicated)"
            ));
        }
        let Some(alias) = &self.alias else { return lines };
        if !self.indices.is_empty() {
            let names: Vec<&String> = self.indices.keys().collect();
            let shown = if names.len() <= 6 {
                self.indices
                    .iter()
                    .map(|(index, n)| format!("{index} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                format!("{} indices, {} … {}", names.len(), names[0], names[names.len() - 1])
            };
            let verb = if self.dry_run { "would go" } else { "went" };
            lines.push(format!("  events {verb} into {shown}, under the alias {alias}"));
        }
        if !self.accounts.is_empty() {
            let mut places: Vec<String> = Vec::new();
            for (account, regions) in &self.accounts {
                let regions: Vec<String> = regions.iter().map(|(r, n)| format!("{r} {n}")).collect();
                places.push(format!("{account}: {}", regions.join(", ")));
            }
            let more = places.len().saturating_sub(5);
            places.truncate(5);
            let tail = if more > 0 {
                format!(" (and {more} more accounts: see --summary-json)")
            } else {
                String::new()
            };
            lines.push(format!("  by account and region: {}{tail}", places.join("; ")));
        }
        if let Some(integrity) = &self.integrity {
            lines.push(integrity_line(integrity));
        }
        if !self.dry_run && self.indexed > 0 {
            lines.push(format!(
                "  next: search the alias {alias} (time field eventTime) in Kibana or OpenSearch Dashboards, \
                 or add the dashboards: ctindex dashboards install --kibana-url URL --index-prefix {alias}"
            ));
        }
        lines
    }
}

/// `--verify`'s detail line: events by `ctindex.integrity`, and the files
/// of earlier syncs restamped (from [`Summary::integrity`]).
fn integrity_line(integrity: &serde_json::Value) -> String {
    let n = |path: &str| integrity.pointer(path).and_then(|v| v.as_u64()).unwrap_or(0);
    let mut line = format!(
        "  --verify: events {} verified, {} unverified, {} failed (ctindex.integrity)",
        n("/verified"),
        n("/unverified"),
        n("/failed")
    );
    let (up, down) = (n("/upgraded/verified/files"), n("/upgraded/failed/files"));
    if up + down > 0 {
        line.push_str(&format!(
            "; files stamped unverified by earlier syncs, judged by their digest now: {up} verified ({} events), \
             {down} failed ({} events)",
            n("/upgraded/verified/events"),
            n("/upgraded/failed/events")
        ));
    }
    line
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
    fn rates_follow_the_recent_pace() {
        let mut rate = Rate::default();
        let s = Duration::from_secs;
        assert_eq!(rate.update(0, s(0)), 0.0);
        // 1000/s for 10 s: the rate climbs to it.
        for t in 1..=10 {
            rate.update(1000 * t, s(t));
        }
        let fast = rate.update(10_000, s(10));
        assert!(fast > 800.0, "{fast}");
        // Then nothing for 10 s: the rate falls although the average stays at 500/s.
        for t in 11..=20 {
            rate.update(10_000, s(t));
        }
        assert!(rate.per_second < 150.0, "{}", rate.per_second);
        assert!(!eta_means_something(false, 90, 100, s(10)), "listing goes on");
        assert!(!eta_means_something(true, 1, 100, s(10)), "too little read");
        assert!(
            !eta_means_something(true, 50, 100, Duration::from_millis(500)),
            "too early"
        );
        assert!(eta_means_something(true, 5, 100, s(3)));
    }

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
            "3 files; 10 events read, 10 indexed (7 new, 3 updated: their eventID was indexed before or repeats \
             in the input), 0 values not events, 0 failed, 2.0 s, 5 events/s"
        );
        Stats::add(&stats.files_skipped, 1);
        Stats::add(&stats.files_digest, 2);
        let s = Summary::from_stats(&stats, Duration::from_secs(2), false, 0, None);
        assert!(s.is_partial());
        // The files found add up: 6 = 3 read + 1 skipped + 2 digest.
        assert!(
            s.line()
                .starts_with("6 files: 3 read, 1 skipped (not CloudTrail or unreadable), 2 digest; "),
            "{}",
            s.line()
        );
        assert!(s.details().is_empty(), "an export (no alias) has no details");

        stats.add_file(
            "111122223333",
            "us-east-1",
            6,
            BTreeMap::from([("ct-2024.01".to_string(), 6)]),
        );
        stats.add_file(
            "111122223333",
            "eu-west-1",
            4,
            BTreeMap::from([("ct-2024.02".to_string(), 4)]),
        );
        let mut s = Summary::from_stats(&stats, Duration::from_secs(2), false, 0, None);
        s.alias = Some("ct".into());
        let details = s.details().join("\n");
        assert!(
            details.contains("ct-2024.01 (6), ct-2024.02 (4), under the alias ct"),
            "{details}"
        );
        assert!(details.contains("111122223333: eu-west-1 4, us-east-1 6"), "{details}");
        assert!(details.contains("next: search the alias ct"), "{details}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["accounts"]["111122223333"]["us-east-1"], 6);
        assert_eq!(json["indices"]["ct-2024.02"], 4);
    }
}
