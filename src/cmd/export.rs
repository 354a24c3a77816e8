//! `ctindex export`: events as lines in files or on stdout, for log monitors
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

use super::Outcome;
use super::import::{default_workers, open_sources, report, watch_signals};
use crate::cli::ExportArgs;
use crate::config::{self, usage};
use crate::dlq::DeadLetters;
use crate::export::commit::Folder;
use crate::export::{Encoder, Exporter, LineWriter, Stdout};
use crate::pipeline::{Cancel, Options, Output, Pipeline};
use crate::progress::{Reporter, Stats, Summary};
use crate::sink::FileNames;
use crate::transform::Transformer;

/// Records move from the decoders to the sorter in batches of about this size.
const BATCH_BYTES: usize = 4 << 20;

pub async fn run(args: ExportArgs) -> Result<Outcome> {
    let to_stdout = args.out == Path::new("-");
    if to_stdout && args.incremental {
        return usage("--incremental needs --out DIR: it appends to the files of a folder and keeps its state there");
    }
    if to_stdout && args.report.summary_json.as_deref() == Some(Path::new("-")) {
        return usage("the events go to stdout: write --summary-json to a file");
    }
    let (sources, _s3) = open_sources(&args.sources, &args.s3).await?;
    let transformer = Arc::new(Transformer::for_export(config::field_filter(&args.filter)?));
    let folder = match to_stdout {
        true => None,
        false => Some(Folder::open(&args.out)?),
    };
    if let Some(folder) = &folder
        && let Some(journal) = folder.recover()?
    {
        folder.clear(&journal)?;
    }
    let spill_dir = match &folder {
        Some(folder) => folder.work().join("sort"),
        None => std::env::temp_dir().join(format!("ctindex-sort-{}", std::process::id())),
    };

    let stats = Arc::new(Stats::default());
    let dlq = Arc::new(DeadLetters::new(&args.report.dead_letter));
    let exporter = Arc::new(Exporter::new(args.sort_memory, spill_dir.clone(), stats.clone()));
    let workers = args.workers.map(usize::from).unwrap_or_else(default_workers);
    let cancel = Arc::new(Cancel::default());
    let signals = tokio::spawn(watch_signals(cancel.clone()));
    let pipeline = Pipeline {
        transformer,
        output: Output::Export {
            encoder: Arc::new(Encoder {
                format: args.format,
                route: !to_stdout,
            }),
            exporter: exporter.clone(),
        },
        stats: stats.clone(),
        dlq: dlq.clone(),
        names: Arc::new(FileNames::default()),
        options: Options {
            batch_bytes: BATCH_BYTES,
            concurrency: 1,
            workers,
            downloads: usize::from(args.s3.downloads),
        },
        cancel: cancel.clone(),
        decoders: Arc::new(tokio::sync::Semaphore::new(workers)),
        tracker: None,
        in_flight: Default::default(),
    };

    let started = Instant::now();
    let reporter = Reporter::start(
        stats.clone(),
        args.report.progress,
        true,
        Duration::from_secs(args.report.progress_interval.max(1)),
    );
    let mut result = pipeline.run(sources).await;
    reporter.finish().await;
    signals.abort();
    drop(pipeline);
    if result.is_ok() {
        // What was read is written, also after a Ctrl-C.
        result = write(exporter, folder).await;
    }
    if to_stdout {
        let _ = std::fs::remove_dir_all(&spill_dir);
    }
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

/// Merges the sorted records into the folder (committed) or onto stdout.
async fn write(exporter: Arc<Exporter>, folder: Option<Folder>) -> Result<()> {
    let exporter = Arc::try_unwrap(exporter)
        .map_err(|_| anyhow::anyhow!("internal: the exporter is still in use after the run"))?;
    tokio::task::spawn_blocking(move || match folder {
        None => exporter.finish(&mut Stdout::default() as &mut dyn LineWriter),
        Some(folder) => {
            let mut stager = folder.stager()?;
            exporter.finish(&mut stager)?;
            let journal = folder.commit(stager.into_staged(), Vec::new())?;
            if journal.files.iter().any(|f| f.base > 0) {
                tracing::info!(
                    "appended to existing files in {} (--incremental reads only objects not exported before)",
                    folder.root().display()
                );
            }
            folder.clear(&journal)
        }
    })
    .await
    .context("the export's writing task failed")?
}
