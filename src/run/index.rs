//! The import run, and with sync settings the sync run: S3 and the cluster
//! reached, the template installed, the pipeline assembled and run (through
//! the sync engine for a sync), the summary reported.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::follow::Queued;
use super::{Outcome, default_workers, open_sources, report, stop_on_signals};
use crate::cli::ImportArgs;
use crate::config;
use crate::dlq::DeadLetters;
use crate::normalize::Limits;
use crate::pipeline::{Options, Output, Pipeline, Tracker};
use crate::progress::{Reporter, Stats, Summary};
use crate::sink::client::Cluster;
use crate::sink::template::{self, Installed};
use crate::sink::{FileNames, Sink};
use crate::source::Source;
use crate::source::s3::S3;
use crate::state::{Busy, StateStore};
use crate::sync::{self, SyncSettings};
use crate::transform::Transformer;

/// The import, and with `sync` set, the sync: both read sources through
/// the same pipeline; sync adds state, a lease and a look-back window. With
/// `follow` set, the follow: objects come from a queue's notifications
/// instead of the sources.
pub(crate) async fn index(args: ImportArgs, sync: Option<SyncSettings>, follow: Option<Queued>) -> Result<Outcome> {
    let follow_counts = follow.as_ref().map(|f| f.counts.clone());
    let prefix = config::index_prefix(&args.index.index_prefix)?;
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
    let transformer = Arc::new(Transformer::new(filter, prefix.clone(), limits).with_ecs(!args.filter.no_ecs));

    let stats = Arc::new(Stats::default());
    let dlq = Arc::new(DeadLetters::new(config::dead_letter_path(
        args.report.dead_letter.as_deref(),
        &prefix,
        sync.as_ref().and_then(|s| s.state_file.as_deref()),
    )));
    let names = Arc::new(FileNames::default());
    // Signals are heard from the start, so a stop while connecting is a stop too.
    let (cancel, signals) = stop_on_signals(&dlq, &stats);

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

    // A sync's state, opened before the digests are read: its windows say which digests are needed.
    let state = match &sync {
        Some(settings) if follow.is_none() => Some(match &settings.state_file {
            Some(path) => StateStore::in_file(path).await,
            None => match &cluster {
                Some(cluster) => StateStore::in_cluster(cluster.clone(), &settings.state_index).await,
                None => Err(anyhow::anyhow!("internal: sync without a cluster")),
            },
        }),
        _ => None,
    };
    let integrity = match (args.verify.enabled, &state, &sync) {
        (false, _, _) | (true, Some(Err(_)), _) => None,
        (true, Some(Ok(state)), Some(settings)) => {
            let windows = sync::digest_windows(state, &sources, &prefix, settings).await?;
            let days = super::verify::SyncDays {
                since: settings.since,
                windows,
            };
            Some(Arc::new(super::verify::integrity(&args, Some(days)).await?.keeping()))
        }
        (true, _, _) => Some(Arc::new(super::verify::integrity(&args, None).await?)),
    };
    let verifying = match (&integrity, &cluster, &sync) {
        (Some(integrity), Some(cluster), Some(_)) => Some(sync::Verifying {
            integrity: integrity.clone(),
            cluster: cluster.clone(),
            alias: prefix.clone(),
        }),
        _ => None,
    };
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
            integrity: integrity.clone(),
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
        (Some(settings), None) => match state {
            Some(Ok(state)) => sync::run_sources(
                &state,
                sources,
                &prefix,
                settings,
                &cancel,
                verifying.as_ref(),
                pipeline,
            )
            .await
            .map(drop),
            Some(Err(e)) if e.downcast_ref::<Busy>().is_some() => {
                tracing::info!("nothing to do: {e}");
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Err(anyhow::anyhow!("internal: sync without its state")),
        },
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
    if let Some(integrity) = &integrity {
        summary.integrity = Some(integrity_summary(integrity));
    }
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

/// `--verify`: what the summary says of it (and the log), with the files
/// that failed named in a warning.
fn integrity_summary(integrity: &crate::verify::Integrity) -> serde_json::Value {
    let (verified, unverified, failed) = integrity.counts();
    let ((up_files, up_events), (down_files, down_events)) = integrity.upgrades();
    let failed_files = integrity.failed_files();
    tracing::info!("--verify: events {verified} verified, {unverified} unverified, {failed} failed");
    if !failed_files.is_empty() {
        tracing::warn!(
            "--verify: {} files do not match their digest (their events are stamped ctindex.integrity \"failed\"): {}",
            failed_files.len(),
            failed_files.join(", ")
        );
    }
    serde_json::json!({
        "verified": verified,
        "unverified": unverified,
        "failed": failed,
        "failed_files": failed_files,
        "upgraded": {
            "verified": {"files": up_files, "events": up_events},
            "failed": {"files": down_files, "events": down_events},
        },
    })
}
