//! The run shared by `import`, `sync` and `export`: signals, the sources
//! opened, the summary reported; [`index`] (import and sync: the cluster
//! connected, the pipeline assembled) and [`export`] are the runs themselves.
//!
//! Commands call into this module with what the user typed; it never calls
//! a command. The sync engine itself is [`crate::sync`].

mod export;
mod follow;
mod index;
mod verify;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::cli::{ReportArgs, S3Args};
use crate::config;
use crate::date::day_text;
use crate::dlq::DeadLetters;
use crate::progress::{Stats, Summary};
use crate::sink::retention::{Age, Pruned};
use crate::source::s3::S3;
use crate::source::{Selection, Source};

pub(crate) use export::export;
pub(crate) use follow::follow;
pub(crate) use index::index;
pub(crate) use verify::verify;

/// How a command ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was done (exit 0).
    Clean,
    /// Done, but some input was skipped or some events dead-lettered (exit 3).
    Partial,
}

/// The SOURCE arguments, and the S3 client when one of them is an `s3://` URL.
pub(crate) async fn open_sources(args: &[String], s3_args: &S3Args) -> Result<(Vec<Source>, Option<Arc<S3>>)> {
    open_selected(args, s3_args, Arc::new(config::selection(s3_args)?)).await
}

/// [`open_sources`] with a selection of the caller's (the digests' days of
/// `verify`, a sync's windows).
pub(crate) async fn open_selected(
    args: &[String],
    s3_args: &S3Args,
    selection: Arc<Selection>,
) -> Result<(Vec<Source>, Option<Arc<S3>>)> {
    let s3 = if args.iter().any(|s| s.starts_with("s3://")) {
        Some(Arc::new(S3::connect(config::s3(s3_args)?).await?))
    } else {
        None
    };
    let sources = args
        .iter()
        .map(|s| {
            Source::parse(s, s3.as_ref(), selection.clone()).map_err(|e| config::UsageError(format!("{e:#}")).into())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((sources, s3))
}

/// Ends a run: prints the summary line (on stderr when the run failed or
/// stdout carries data), writes `--summary-json`, and gives the outcome.
pub(crate) fn report(
    summary: &Summary,
    result: Result<()>,
    args: &ReportArgs,
    data_on_stdout: bool,
) -> Result<Outcome> {
    if let Some(path) = &args.summary_json {
        write_summary_json(path, summary)?;
    }
    let line = summary.line();
    if result.is_err() || data_on_stdout || args.summary_json.as_deref() == Some(Path::new("-")) {
        eprintln!("ctindex: {line}");
        for detail in summary.details() {
            eprintln!("{detail}");
        }
    } else {
        println!("{line}");
        for detail in summary.details() {
            println!("{detail}");
        }
    }
    result?;
    Ok(if summary.is_partial() {
        Outcome::Partial
    } else {
        Outcome::Clean
    })
}

/// Prints what was (or would be) deleted, one index a line, then a total.
pub(crate) fn report_pruned(prefix: &str, age: Age, pruned: &Pruned, dry_run: bool) {
    let verb = if dry_run { "would delete" } else { "deleted" };
    for index in &pruned.expired {
        println!("{verb} {} ({} documents)", index.name, index.docs);
    }
    let docs: u64 = pruned.expired.iter().map(|i| i.docs).sum();
    println!(
        "{}{verb} {} index(es) of {prefix} wholly older than {age} (before {}), {docs} documents; kept {}",
        if dry_run { "dry run: " } else { "" },
        pruned.expired.len(),
        day_text(pruned.cutoff),
        pruned.kept
    );
}

/// Files decoded at once: twice the CPUs. Decoders also wait (for input,
/// for room downstream) and the async side needs the CPUs too; measured on
/// 2 cores, twice the CPUs decodes 25% faster than one per CPU.
pub(crate) fn default_workers() -> usize {
    2 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

fn write_summary_json(path: &Path, summary: &Summary) -> Result<()> {
    let text = serde_json::to_string_pretty(summary)?;
    if path == Path::new("-") {
        println!("{text}");
        return Ok(());
    }
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write --summary-json {}", path.display()))
}

/// The run's stop and the task that cancels it on Ctrl-C or SIGTERM (see
/// [`watch_signals`]); signals are heard from this moment on.
fn stop_on_signals(dlq: &Arc<DeadLetters>, stats: &Arc<Stats>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn(watch_signals(
        Signals::install(),
        cancel.clone(),
        dlq.clone(),
        stats.clone(),
    ));
    (cancel, watcher)
}

/// First Ctrl-C or SIGTERM: stop reading and finish what is in flight.
/// Second: quit at once, with the dead letters written so far on disk.
async fn watch_signals(mut signals: Signals, cancel: CancellationToken, dlq: Arc<DeadLetters>, stats: Arc<Stats>) {
    let mut count = 0;
    loop {
        signals.next().await;
        count += 1;
        if count == 1 {
            tracing::warn!(
                "stopping: no new files are read, what is in flight is finished (Ctrl-C again to quit at once)"
            );
            cancel.cancel();
        } else {
            crate::progress::clear_bars();
            if let Err(e) = dlq.flush() {
                eprintln!("ctindex: {e:#}");
            }
            let read = Stats::get(&stats.events_read);
            let settled = stats.indexed() + Stats::get(&stats.failed) + Stats::get(&stats.written);
            let letters = match dlq.count() {
                0 => String::new(),
                n => format!("; {n} dead letters in {}", dlq.path().display()),
            };
            eprintln!(
                "ctindex: interrupted at once: {} of {read} events read were not yet indexed, written or \
                 dead-lettered{letters}; running the same command again finishes the job safely (event ids \
                 are stable: nothing is duplicated)",
                read.saturating_sub(settled)
            );
            std::process::exit(130);
        }
    }
}

/// Ctrl-C and SIGTERM, listened for from the moment this is made (before
/// anything else of the run happens), so that a stop is never missed.
struct Signals {
    #[cfg(unix)]
    streams: Vec<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            // Ctrl-C in a terminal; kill, systemd stop, Kubernetes pod termination.
            let streams = [SignalKind::interrupt(), SignalKind::terminate()]
                .into_iter()
                .filter_map(|kind| signal(kind).ok())
                .collect();
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            if self.streams.is_empty() {
                return std::future::pending().await;
            }
            let waits = self.streams.iter_mut().map(|s| Box::pin(s.recv()));
            futures::future::select_all(waits).await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
