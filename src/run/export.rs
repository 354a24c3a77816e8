//! The export run: events as lines in files or on stdout, for log monitors
//! and archives, with the same sources, filter and derived fields as import.
//!
//! The run reads its sources through the pipeline, whose output is an
//! [`Exporter`]: every event becomes a record, sorted by output file, time
//! and id, each id once. At the end the records are merged into staging
//! files and committed to the output folder (see [`crate::export::commit`]),
//! or written to stdout.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{Outcome, default_workers, open_sources, report, stop_on_signals};
use crate::cli::ExportArgs;
use crate::config;
use crate::dlq::DeadLetters;
use crate::export::commit::Folder;
use crate::export::{Encoder, Exporter, LineWriter, Stdout};
use crate::pipeline::{Options, Output, Pipeline, Tracker};
use crate::progress::{Reporter, Stats, Summary};
use crate::sink::FileNames;
use crate::state::{Finish, StateStore};
use crate::sync::{self, SyncSettings};
use crate::transform::Transformer;

/// Records move from the decoders to the sorter in batches of about this size.
const BATCH_BYTES: usize = 4 << 20;

/// Exports the sources (the options are checked by `cmd::export`).
pub(crate) async fn export(args: ExportArgs) -> Result<Outcome> {
    let to_stdout = args.out == Path::new("-");
    let (sources, _s3) = open_sources(&args.sources, &args.s3).await?;
    let transformer =
        Arc::new(Transformer::for_export(config::field_filter(&args.filter)?).with_ecs(!args.filter.no_ecs));
    let folder = match to_stdout {
        true => None,
        false => Some(Folder::open(&args.out)?),
    };
    let state = match (&folder, args.incremental) {
        (Some(folder), true) => {
            let path = args
                .state_file
                .clone()
                .unwrap_or_else(|| folder.work().join("state.json"));
            Some(StateStore::in_file(&path).await?)
        }
        _ => None,
    };
    if let Some(folder) = &folder
        && let Some(journal) = folder.recover()?
    {
        // The lines of the interrupted run are in; now its records.
        if let Some(state) = &state {
            for finish in &journal.records {
                finish.save(state).await?;
            }
        }
        folder.clear(&journal)?;
    }
    let spill_dir = match &folder {
        Some(folder) => folder.work().join("sort"),
        None => std::env::temp_dir().join(format!("ctindex-sort-{}", std::process::id())),
    };

    let stats = Arc::new(Stats::default());
    let dlq = Arc::new(DeadLetters::new(config::dead_letter_path(
        args.report.dead_letter.as_deref(),
        "export",
        args.state_file.as_deref(),
    )));
    let exporter = Arc::new(Exporter::new(args.sort_memory, spill_dir.clone(), stats.clone()));
    let encoder = Arc::new(Encoder {
        format: args.format,
        route: !to_stdout,
    });
    let workers = args.workers.map(usize::from).unwrap_or_else(default_workers);
    let (cancel, signals) = stop_on_signals(&dlq, &stats);
    let names = Arc::new(FileNames::default());
    let decoders = Arc::new(tokio::sync::Semaphore::new(workers));
    let pipeline = |tracker: Option<Arc<dyn Tracker>>| Pipeline {
        transformer: transformer.clone(),
        output: Output::Export {
            encoder: encoder.clone(),
            exporter: exporter.clone(),
        },
        stats: stats.clone(),
        dlq: dlq.clone(),
        names: names.clone(),
        options: Options {
            batch_bytes: BATCH_BYTES,
            concurrency: 1,
            workers,
            downloads: usize::from(args.s3.downloads),
            unindexed: None,
            flush_idle: None,
            shard: None,
            integrity: None,
        },
        cancel: cancel.clone(),
        decoders: decoders.clone(),
        tracker,
        in_flight: Default::default(),
    };

    let started = Instant::now();
    let reporter = Reporter::start(
        stats.clone(),
        args.report.progress,
        true,
        Duration::from_secs(args.report.progress_interval.max(1)),
    );
    let read = match &state {
        None => pipeline(None).run(sources).await.map(|()| Vec::new()),
        Some(state) => {
            let settings = SyncSettings {
                since: args.since,
                lookback_days: args.lookback_days,
                state_file: None,
                state_index: String::new(),
                lease_ttl: crate::state::LEASE_TTL,
                deferred: true,
            };
            sync::run_sources(state, sources, "export", &settings, &cancel, None, pipeline).await
        }
    };
    reporter.finish().await;
    signals.abort();
    // What was read is written, also after a Ctrl-C.
    let mut result = match read {
        Ok(finishes) => write(exporter, folder, finishes, state).await,
        Err(e) => Err(e),
    };
    // Sort runs are never needed again, whatever happened (recovery works
    // from the journal; the folder's lock keeps other exports out of them).
    let _ = std::fs::remove_dir_all(&spill_dir);
    result = result.and(dlq.flush());

    let mut summary = Summary::from_stats(
        &stats,
        started.elapsed(),
        false,
        dlq.count(),
        Some(dlq.path().display().to_string()),
    );
    summary.written = Some(Stats::get(&stats.written));
    summary.duplicates = Some(Stats::get(&stats.duplicates));
    summary.interrupted = cancel.is_cancelled();
    report(&summary, result, &args.report, to_stdout)
}

/// Merges the sorted records onto stdout, or into the folder: committed
/// through its journal, then the incremental state saved.
async fn write(
    exporter: Arc<Exporter>,
    folder: Option<Folder>,
    finishes: Vec<Finish>,
    state: Option<StateStore>,
) -> Result<()> {
    let exporter = Arc::try_unwrap(exporter)
        .map_err(|_| anyhow::anyhow!("internal: the exporter is still in use after the run"))?;
    let Some(folder) = folder else {
        return tokio::task::spawn_blocking(move || exporter.finish(&mut Stdout::default() as &mut dyn LineWriter))
            .await
            .context("the export's writing task failed")?;
    };
    let incremental = state.is_some();
    let (folder, journal) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut stager = folder.stager()?;
        exporter.finish(&mut stager)?;
        let journal = folder.commit(stager.into_staged(), finishes)?;
        Ok((folder, journal))
    })
    .await
    .context("the export's writing task failed")??;
    if !incremental && journal.files.iter().any(|f| f.base > 0) {
        tracing::info!(
            "appended to existing files in {} (--incremental reads only objects not exported before)",
            folder.root().display()
        );
    }
    if let Some(state) = &state {
        for finish in &journal.records {
            finish.save(state).await?;
        }
    }
    folder.clear(&journal)
}
