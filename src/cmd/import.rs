//! `ctindex import`: read sources, index every event, print the summary.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::Outcome;
use super::sync::{self, SyncSettings};
use crate::cli::{ImportArgs, ReportArgs, S3Args};
use crate::config;
use crate::dlq::DeadLetters;
use crate::normalize::Limits;
use crate::pipeline::{Cancel, Options, Output, Pipeline, Tracker};
use crate::progress::{Reporter, Stats, Summary};
use crate::sink::client::Cluster;
use crate::sink::template::{self, Installed};
use crate::sink::{FileNames, Sink};
use crate::source::Source;
use crate::source::s3::S3;
use crate::state::{Busy, StateStore};
use crate::transform::Transformer;

pub async fn run(args: ImportArgs) -> Result<Outcome> {
    execute(args, None).await
}

/// The import, and with `sync` set, the sync: both read sources through
/// the same pipeline; sync adds state, a lease and a look-back window.
pub(crate) async fn execute(args: ImportArgs, sync: Option<SyncSettings>) -> Result<Outcome> {
    execute_with(args, sync, None).await
}

/// The import, the sync, or with `follow` set, the follow: objects come
/// from a queue's notifications instead of the sources.
pub(crate) async fn execute_with(
    args: ImportArgs,
    sync: Option<SyncSettings>,
    follow: Option<super::follow::Queued>,
) -> Result<Outcome> {
    let follow_counts = follow.as_ref().map(|f| f.counts.clone());
    let prefix = config::index_prefix(&args.index.index_prefix)?;
    if args.list {
        let (sources, _s3) = open_sources(&args.sources, &args.s3).await?;
        return list_plan(sources).await;
    }
    let filter = config::field_filter(&args.filter)?;
    config::batch_bytes(args.batch_bytes)?;
    let shard = match (args.shard, args.shards) {
        (None, Some(count)) => {
            let index = std::env::var("JOB_COMPLETION_INDEX").ok();
            Some(crate::cli::shard_from_job(count, index.as_deref()).map_err(config::UsageError)?)
        }
        (shard, _) => shard,
    };
    let limits = Limits {
        max_string_bytes: args.max_value_bytes.max(64),
        ..Limits::default()
    };
    let transformer = Arc::new(Transformer::new(filter, prefix.clone(), limits));

    let stats = Arc::new(Stats::default());
    let dlq = Arc::new(DeadLetters::new(config::dead_letter_path(
        args.report.dead_letter.as_deref(),
        &prefix,
        sync.as_ref().and_then(|s| s.state_file.as_deref()),
    )));
    let names = Arc::new(FileNames::default());
    // Signals are heard from the start, so a stop while connecting is a stop too.
    let cancel = Arc::new(Cancel::default());
    let signals = tokio::spawn(watch_signals(
        Signals::install(),
        cancel.clone(),
        dlq.clone(),
        stats.clone(),
    ));

    let started = Instant::now();
    let Connected {
        s3,
        sources,
        cluster,
        template,
    } = tokio::select! {
        // Stopped while connecting: nothing was read, nothing is in flight.
        _ = cancel.cancelled() => {
            signals.abort();
            let mut summary = Summary::from_stats(&stats, started.elapsed(), args.dry_run, 0, None);
            summary.interrupted = true;
            return report(&summary, Ok(()), &args.report, false);
        }
        // S3 and the cluster reached, the template installed.
        ready = connect(&args, &prefix) => ready?,
    };
    let sink = cluster.clone().map(|cluster| {
        Arc::new(Sink::new(
            cluster,
            dlq.clone(),
            stats.clone(),
            names.clone(),
            Duration::from_secs(args.retry_budget.max(1)),
            usize::from(args.concurrency),
            cancel.clone(),
        ))
    });

    let workers = args.workers.map(usize::from).unwrap_or_else(default_workers);
    let decoders = Arc::new(tokio::sync::Semaphore::new(workers));
    let pipeline = |tracker: Option<Arc<dyn Tracker>>| Pipeline {
        transformer: transformer.clone(),
        output: match &sink {
            Some(sink) => Output::Bulk(sink.clone()),
            None => Output::DryRun {
                print: args.print_documents,
            },
        },
        stats: stats.clone(),
        dlq: dlq.clone(),
        names: names.clone(),
        options: Options {
            batch_bytes: args.batch_bytes,
            concurrency: usize::from(args.concurrency),
            workers,
            downloads: usize::from(args.s3.downloads),
            unindexed: template.unindexed(),
            flush_idle: args.flush_idle,
            shard,
        },
        cancel: cancel.clone(),
        decoders: decoders.clone(),
        tracker,
        in_flight: Default::default(),
    };

    let reporter = Reporter::start(
        stats.clone(),
        args.report.progress,
        args.dry_run,
        Duration::from_secs(args.report.progress_interval.max(1)),
    );
    let result = match (&sync, follow) {
        (_, Some(follow)) => follow.run(&args, pipeline, cancel.clone(), stats.clone()).await,
        (None, None) => pipeline(None).run(sources).await,
        (Some(settings), None) => {
            let state = match &settings.state_file {
                Some(path) => StateStore::in_file(path),
                None => match &cluster {
                    Some(cluster) => StateStore::in_cluster(cluster.clone(), &settings.state_index).await,
                    None => Err(anyhow::anyhow!("internal: sync without a cluster")),
                },
            };
            match state {
                Ok(state) => sync::run_sources(&state, sources, &prefix, settings, &cancel, pipeline)
                    .await
                    .map(drop),
                Err(e) if e.downcast_ref::<Busy>().is_some() => {
                    tracing::info!("nothing to do: {e}");
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
    };
    reporter.finish().await;
    signals.abort();
    // Whatever fails from here on, the summary is still printed.
    let result = result.and(dlq.flush());
    if let (Some(cluster), Ok(())) = (&cluster, &result)
        && let Err(e) = cluster.refresh(&format!("{prefix}-*")).await
    {
        if e.downcast_ref::<crate::http::SendError>().and_then(|e| e.status()) == Some(403) {
            // A least-privilege role needs no refresh: the cluster refreshes by itself.
            tracing::info!(
                "not refreshed (the credentials may not: {e:#}); searches see the events after the next \
                 automatic refresh (1 s by default)"
            );
        } else {
            // Every event is acknowledged: only their visibility waits for the next automatic refresh.
            tracing::warn!("{e:#} (the events are indexed; searches see them after the next automatic refresh)");
        }
    }
    let result = result.map_err(|e| {
        let read = stats.events_read.load(Ordering::Relaxed);
        let settled = stats.indexed() + stats.failed.load(Ordering::Relaxed);
        if read == 0 {
            // Stopped before reading anything (cluster, template, state): the cause says it all.
            return e;
        }
        anyhow::anyhow!(
            "{e:#}; the run stopped early with {} of {read} events read neither indexed nor dead-lettered; \
             running the same command again is safe (event ids are stable: nothing is duplicated)",
            read.saturating_sub(settled)
        )
    });

    let mut summary = Summary::from_stats(
        &stats,
        started.elapsed(),
        args.dry_run,
        dlq.count(),
        Some(dlq.path().display().to_string()),
    );
    // A follow stops on SIGTERM as its normal end: what it did not finish went back to the queue.
    summary.interrupted = cancel.is_cancelled() && follow_counts.is_none();
    summary.follow = follow_counts.map(|counts| counts.to_json());
    summary.alias = Some(prefix.clone());
    summary.s3_list_requests = s3
        .as_ref()
        .map(|s3| s3.list_requests.load(Ordering::Relaxed))
        .unwrap_or(0);
    if let Some(sink) = &sink {
        let limiter = sink.limiter();
        summary.concurrency = limiter.max() as u64;
        summary.concurrency_low = limiter.low() as u64;
        summary.concurrency_decreases = limiter.decreases.load(Ordering::Relaxed);
    }
    report(&summary, result, &args.report, false)
}

/// What a run reads from and writes to.
struct Connected {
    s3: Option<Arc<S3>>,
    sources: Vec<Source>,
    cluster: Option<Cluster>,
    /// The template that went in (or is there, with --no-setup).
    template: Installed,
}

/// Reaches S3 (for s3:// sources) and the cluster (unless --dry-run), and
/// installs the template (unless --no-setup).
async fn connect(args: &ImportArgs, prefix: &str) -> Result<Connected> {
    let (sources, s3) = open_sources(&args.sources, &args.s3).await?;
    if args.dry_run {
        return Ok(Connected {
            s3,
            sources,
            cluster: None,
            template: Installed::Full,
        });
    }
    let cluster = Cluster::connect(&config::cluster(&args.cluster, &args.s3.aws)?).await?;
    tracing::info!(
        "connected to {} {} at {}",
        cluster.flavor.name(),
        cluster.version,
        cluster.url()
    );
    let template = if args.no_setup {
        template::installed_kind(&cluster, prefix).await
    } else {
        template::install(&cluster, prefix, args.index.replicas, None).await?
    };
    Ok(Connected {
        s3,
        sources,
        cluster: Some(cluster),
        template,
    })
}

/// The SOURCE arguments, and the S3 client when one of them is an `s3://` URL.
pub(crate) async fn open_sources(args: &[String], s3_args: &S3Args) -> Result<(Vec<Source>, Option<Arc<S3>>)> {
    let selection = Arc::new(config::selection(s3_args)?);
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

/// `--list`: what an import would read, per account, region and delivery
/// day (files and bytes), from the listing alone: nothing is downloaded or
/// decoded.
async fn list_plan(sources: Vec<Source>) -> Result<Outcome> {
    use std::collections::BTreeMap;

    use crate::source::Listed;
    use crate::source::layout::{Place, day_text};

    type Key = (String, String, String);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Listed>(1024);
    let lister = tokio::spawn(async move {
        for source in &sources {
            source.list(&tx).await?;
        }
        anyhow::Ok(())
    });
    let mut rows: BTreeMap<Key, (u64, u64)> = BTreeMap::new();
    let (mut digests, mut unreadable) = (0u64, 0u64);
    while let Some(listed) = rx.recv().await {
        match listed {
            Listed::Object(object) => {
                let place = Place::of_file(&object.name);
                let key = (
                    place.account.unwrap_or("other").to_string(),
                    place.region.unwrap_or("other").to_string(),
                    place.delivery_day().map(day_text).unwrap_or_else(|| "-".into()),
                );
                let row = rows.entry(key).or_default();
                row.0 += 1;
                row.1 += object.size;
            }
            Listed::Digest(_) => digests += 1,
            Listed::Unreadable { name, reason } => {
                tracing::warn!("{name}: cannot be listed: {reason}");
                unreadable += 1;
            }
        }
    }
    lister.await.context("the listing stopped")??;
    println!(
        "{:<14} {:<16} {:<10} {:>8} {:>12}",
        "account", "region", "day", "files", "bytes"
    );
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut accounts = std::collections::BTreeSet::new();
    let mut regions = std::collections::BTreeSet::new();
    for ((account, region, day), (n, size)) in &rows {
        println!("{account:<14} {region:<16} {day:<10} {n:>8} {size:>12}");
        files += n;
        bytes += size;
        accounts.insert(account.clone());
        regions.insert(region.clone());
    }
    println!(
        "total: {files} files, {bytes} bytes, in {} account(s) and {} region(s); {digests} digest file(s) \
         and {unreadable} unreadable entries not counted; nothing was read",
        accounts.len(),
        regions.len()
    );
    Ok(Outcome::Clean)
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

/// First Ctrl-C or SIGTERM: stop reading and finish what is in flight.
/// Second: quit at once, with the dead letters written so far on disk.
pub(crate) async fn watch_signals(mut signals: Signals, cancel: Arc<Cancel>, dlq: Arc<DeadLetters>, stats: Arc<Stats>) {
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
pub(crate) struct Signals {
    #[cfg(unix)]
    streams: Vec<tokio::signal::unix::Signal>,
}

impl Signals {
    pub(crate) fn install() -> Signals {
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
