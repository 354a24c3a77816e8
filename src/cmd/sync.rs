//! `ctindex sync`: index only what is new since the last run.
//!
//! A sync is an import with memory: for each source it takes the source's
//! lease, reads the state of its look-back window (the days before the last
//! synced day, for late deliveries), lists only that window (S3) or skips
//! older objects (local folders), reads the objects not recorded yet (or
//! rewritten since), and records each one once all its events are
//! acknowledged. Records are flushed about every second, so a kill loses at
//! most a second of records, and those objects are read again next time:
//! their events have stable ids, so nothing is indexed twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::mpsc;

use super::Outcome;
use crate::cli::SyncArgs;
use crate::config::usage;
use crate::pipeline::{Cancel, FileOutcome, Pipeline, Tracker};
use crate::source::s3::{Days, key_day};
use crate::source::{Source, SourceObject};
use crate::state::{LEASE_TTL, Record, StateStore};

/// What sync adds to the import options.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub since: Option<i64>,
    pub lookback_days: u32,
    pub state_file: Option<PathBuf>,
    pub state_index: String,
}

pub async fn run(args: SyncArgs) -> Result<Outcome> {
    if args.import.s3.from.is_some() || args.import.s3.to.is_some() {
        return usage("sync chooses its own days: use --since for the first run instead of --from/--to");
    }
    if args.import.dry_run {
        return usage(
            "sync cannot --dry-run (it would record files as done that were never sent); use import --dry-run",
        );
    }
    let settings = SyncSettings {
        since: args.since,
        lookback_days: args.lookback_days,
        state_file: args.state_file,
        state_index: args.state_index,
    };
    super::import::execute(args.import, Some(settings)).await
}

/// Syncs each source in turn through a pipeline made by `pipeline`.
pub(crate) async fn run_sources(
    state: &StateStore,
    sources: Vec<Source>,
    index_prefix: &str,
    settings: &SyncSettings,
    cancel: &Arc<Cancel>,
    pipeline: impl Fn(Option<Arc<dyn Tracker>>) -> Pipeline,
) -> Result<()> {
    for source in sources {
        if cancel.is_cancelled() {
            break;
        }
        let source = match source {
            // Local names must not depend on how the path was typed.
            Source::Local(path) => Source::Local(std::fs::canonicalize(&path).unwrap_or(path)),
            other => other,
        };
        let id = format!("{index_prefix}|{}", source.id());
        let mut lease = match state.acquire(&id).await {
            Ok(lease) => lease,
            Err(e) if e.downcast_ref::<crate::state::Busy>().is_some() => {
                tracing::info!("{}: skipped: {e}", source.id());
                continue;
            }
            Err(e) => return Err(e),
        };

        let last = state.last_day(&id).await?;
        let from = match last {
            Some(day) => Some(day - i64::from(settings.lookback_days)),
            None => settings.since,
        };
        let done = state.done_since(&id, from).await?;
        tracing::info!(
            "{}: {} (window from {}), {} objects already done in it",
            source.id(),
            match last {
                Some(_) => "continuing",
                None => "first sync",
            },
            from.map(day_text).unwrap_or_else(|| "the beginning".into()),
            done.len()
        );
        let days = Days { from, to: None };
        let source = match source {
            Source::S3 { s3, bucket, prefix, .. } => Source::S3 {
                s3,
                bucket,
                prefix,
                days: Some(days),
            },
            other => other,
        };

        let (tx, rx) = mpsc::unbounded_channel();
        let tracker = Arc::new(SyncTracker {
            done,
            days,
            records: tx,
        });
        let recorder = record_loop(state, &id, rx, &mut lease);
        let run = async {
            let result = pipeline(Some(tracker.clone() as Arc<dyn Tracker>))
                .run(vec![source])
                .await;
            // Closing the channel lets the recorder flush and finish.
            drop(tracker);
            result
        };
        let (result, recorded) = tokio::join!(run, recorder);
        if let Some(lease) = lease
            && let Err(e) = state.release(lease).await
        {
            tracing::warn!("{e:#}");
        }
        recorded?;
        result?;
    }
    Ok(())
}

fn day_text(day: i64) -> String {
    let (y, m, d) = crate::transform::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Decides what to read from the state, and reports finished objects.
struct SyncTracker {
    /// name → version of the objects already done in the window.
    done: HashMap<String, String>,
    days: Days,
    records: mpsc::UnboundedSender<Record>,
}

impl Tracker for SyncTracker {
    fn wanted(&self, object: &SourceObject) -> bool {
        if !self.days.contains_key(&object.name) {
            return false; // before the window: synced by an earlier run
        }
        self.done.get(object.name.as_ref()) != Some(&object.version)
    }

    fn done(&self, object: &SourceObject, outcome: FileOutcome) {
        let record = Record {
            name: object.name.to_string(),
            version: object.version.clone(),
            day: key_day(&object.name),
            outcome: match outcome {
                FileOutcome::Indexed => "indexed".into(),
                FileOutcome::Unusable => "unusable".into(),
            },
        };
        // The receiver only goes away after the pipeline has finished.
        let _ = self.records.send(record);
    }
}

/// Writes records as they come (every second or 1,000 records), renews the
/// lease, and flushes durably at the end.
async fn record_loop(
    state: &StateStore,
    source: &str,
    mut rx: mpsc::UnboundedReceiver<Record>,
    lease: &mut Option<crate::state::Lease>,
) -> Result<()> {
    let mut pending = Vec::new();
    let mut flush_tick = tokio::time::interval(Duration::from_secs(1));
    let mut lease_tick = tokio::time::interval(LEASE_TTL / 4);
    lease_tick.tick().await;
    loop {
        tokio::select! {
            // A finished object: buffer it.
            received = rx.recv() => match received {
                Some(record) => {
                    pending.push(record);
                    if pending.len() >= 1000 {
                        state.record(source, &std::mem::take(&mut pending), false).await?;
                    }
                }
                None => break,
            },
            // Time to write what was buffered.
            _ = flush_tick.tick() => {
                if !pending.is_empty() {
                    state.record(source, &std::mem::take(&mut pending), false).await?;
                }
            }
            // Keep the lease while the run goes on.
            _ = lease_tick.tick() => {
                if let Some(lease) = lease.as_mut() {
                    state.renew(lease).await?;
                }
            }
        }
    }
    state.record(source, &pending, true).await
}
