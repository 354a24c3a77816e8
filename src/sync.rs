//! The sync engine: index only what is new since the last run.
//!
//! A sync is an import with memory. For each source it takes the source's
//! lease and reads its state: the checkpoint of each scope (an
//! account/region folder: the last day a complete run saw there), the
//! objects already done in each scope's look-back window (the checkpoint
//! minus `--lookback-days`, for late deliveries), and the objects that
//! failed to read before. It lists only those windows (S3) or skips the
//! folders before them (local), so each account and region continues from
//! its own last day: one that lags, or appears later, is not skipped. Scopes
//! without a checkpoint start at `--since` (or the beginning). Objects not
//! recorded yet, or rewritten since, are read; those that failed before and
//! lie before their window are read again by name.
//!
//! Each object is recorded once all its events are acknowledged (or once
//! it failed to read); records are flushed about every second, so a kill
//! loses at most a second of them, and those objects are read again next
//! time: their events have stable ids, so nothing is indexed twice.
//! Checkpoints move only at the end of a complete run (nothing interrupted,
//! everything listed was read or recorded as failed). Losing the lease or
//! failing to record stops the run.
//!
//! The engine drives a [`Pipeline`] it is given; it knows nothing of the
//! command line (`ctindex sync` and `export --incremental` both use it).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::date::day_text;
use crate::pipeline::{FileOutcome, Pipeline, Tracker};
use crate::sink::client::Cluster;
use crate::sink::restamp::restamp;
use crate::source::layout::{Days, scope_and_day};
use crate::source::{Selection, Source, SourceObject};
use crate::state::{self, Finish, Lease, Record, StateStore, Windows};
use crate::verify::Integrity;

/// Files restamped per `_update_by_query` (a `terms` query of their names).
const RESTAMP_FILES: usize = 500;

/// What sync adds to the import options.
#[derive(Debug, Clone)]
pub(crate) struct SyncSettings {
    pub(crate) since: Option<i64>,
    pub(crate) lookback_days: u32,
    pub(crate) state_file: Option<PathBuf>,
    pub(crate) state_index: String,
    /// How long the lease lasts without renewal; renewed every quarter of it.
    pub(crate) lease_ttl: Duration,
    /// Keep the records of the run instead of writing them as objects are
    /// done: `export --incremental` saves them only once its lines are
    /// committed (see [`Finish`]).
    pub(crate) deferred: bool,
}

/// `sync --verify`: the digests' word on each log file (read before the
/// run, over the days the windows need: [`digest_windows`]) and where the
/// events are, to restamp the events of files stamped `unverified` by
/// earlier syncs once their digest has arrived.
pub(crate) struct Verifying {
    pub(crate) integrity: Arc<Integrity>,
    pub(crate) cluster: Cluster,
    /// The alias over the prefix's indices.
    pub(crate) alias: String,
}

/// A source as sync knows it (a local path made absolute: names must not
/// depend on how the path was typed) and the id of its state.
pub(crate) fn keyed(source: Source, index_prefix: &str) -> (Source, String) {
    let source = match source {
        Source::Local { path, selection } => Source::Local {
            path: std::fs::canonicalize(&path).unwrap_or(path),
            selection,
        },
        other => other,
    };
    let id = format!("{index_prefix}|{}", source.id());
    (source, id)
}

/// The windows of a source's run: each scope's checkpoint minus the look-back.
fn windows(checkpoints: &HashMap<String, i64>, settings: &SyncSettings) -> Windows {
    Windows {
        by_scope: checkpoints
            .iter()
            .map(|(scope, day)| (scope.clone(), day - i64::from(settings.lookback_days)))
            .collect(),
        default_from: settings.since,
    }
}

/// `sync --verify`: the digest folders' windows (digest scope → first day)
/// that cover what the sources' runs will read and the files kept
/// `unverified` in their windows: each log folder's window start, in the
/// `CloudTrail-Digest/` folder beside it, open-ended (a file's digest is
/// delivered the same day or, for the last hour, the next). Folders without
/// a window start at `--since`, like their log files.
pub(crate) async fn digest_windows(
    state: &StateStore,
    sources: &[Source],
    index_prefix: &str,
    settings: &SyncSettings,
) -> Result<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for source in sources {
        let (_, id) = keyed(source.clone(), index_prefix);
        let checkpoints = state.checkpoints(&id).await?;
        for (scope, from) in windows(&checkpoints, settings).by_scope {
            if let Some(digests) = digest_scope(&scope) {
                out.insert(digests, from);
            }
        }
    }
    Ok(out)
}

/// The digest folder of a log folder's scope (`…/CloudTrail/<region>/` →
/// `…/CloudTrail-Digest/<region>/`); None for other folders (Insights have no digests).
fn digest_scope(scope: &str) -> Option<String> {
    let at = scope.rfind("/CloudTrail/")?;
    Some(format!(
        "{}/CloudTrail-Digest/{}",
        &scope[..at],
        &scope[at + "/CloudTrail/".len()..]
    ))
}

/// Syncs each source in turn through a pipeline made by `pipeline`. With
/// `settings.deferred`, returns what is left to save of each source. With
/// `verifying` (`sync --verify`), first restamps the events of files
/// stamped `unverified` by earlier runs whose digest has arrived.
pub(crate) async fn run_sources(
    state: &StateStore,
    sources: Vec<Source>,
    index_prefix: &str,
    settings: &SyncSettings,
    cancel: &CancellationToken,
    verifying: Option<&Verifying>,
    pipeline: impl Fn(Option<Arc<dyn Tracker>>) -> Pipeline,
) -> Result<Vec<Finish>> {
    let mut finishes = Vec::new();
    for source in sources {
        if cancel.is_cancelled() {
            break;
        }
        let (source, id) = keyed(source, index_prefix);
        let mut lease = match state.acquire(&id, settings.lease_ttl).await {
            Ok(lease) => lease,
            Err(e) if e.downcast_ref::<state::Busy>().is_some() => {
                tracing::info!("{}: skipped: {e}", source.id());
                continue;
            }
            Err(e) => return Err(e),
        };
        let result = sync_source(
            state,
            source,
            &id,
            lease.as_mut(),
            settings,
            cancel,
            verifying,
            &pipeline,
        )
        .await;
        if let Some(lease) = lease
            && let Err(e) = state.release(lease).await
        {
            tracing::warn!("{e:#}");
        }
        finishes.extend(result?);
    }
    Ok(finishes)
}

/// Syncs one source under its lease.
#[allow(clippy::too_many_arguments)]
async fn sync_source(
    state: &StateStore,
    source: Source,
    id: &str,
    lease: Option<&mut Lease>,
    settings: &SyncSettings,
    cancel: &CancellationToken,
    verifying: Option<&Verifying>,
    pipeline: &impl Fn(Option<Arc<dyn Tracker>>) -> Pipeline,
) -> Result<Option<Finish>> {
    let name = source.id();
    let checkpoints = state.checkpoints(id).await?;
    if let Some(since) = settings.since
        && !checkpoints.is_empty()
    {
        tracing::warn!(
            "{name}: --since {} is ignored for the {} account/region folder(s) synced before (each continues \
             from its own last synced day); it applies only to folders synced for the first time",
            day_text(since),
            checkpoints.len()
        );
    }
    let windows = windows(&checkpoints, settings);
    let done = state.done(id, &windows).await?;

    let chosen = source.selection();
    let selection = Arc::new(Selection {
        days: Days {
            from: settings.since,
            to: None,
        },
        windows: windows.by_scope.clone(),
        ..(*chosen).clone()
    });
    // Objects that failed before their scope's window are read again by
    // name (inside it, listing finds them), if the accounts and regions asked for hold them.
    let any_day = Selection {
        days: Days::default(),
        windows: HashMap::new(),
        ..(*chosen).clone()
    };
    let retries: Vec<SourceObject> = state
        .failed(id)
        .await?
        .into_iter()
        .filter(|r| any_day.wants_file(&r.name) && !selection.wants_file(&r.name))
        .filter_map(|r| source.object_named(&r.name, r.size, &r.version))
        .collect();
    tracing::info!(
        "{name}: {} (window from {}{}), {} objects already done in the windows{}",
        if checkpoints.is_empty() {
            "first sync".to_string()
        } else {
            format!("{} account/region folder(s) synced before", checkpoints.len())
        },
        windows
            .by_scope
            .values()
            .min()
            .copied()
            .or(settings.since)
            .map(day_text)
            .unwrap_or_else(|| "the beginning".into()),
        if checkpoints.is_empty() { "" } else { " at the earliest" },
        done.len(),
        if retries.is_empty() {
            String::new()
        } else {
            format!(", {} that could not be read before are tried again", retries.len())
        }
    );

    if let Some(verifying) = verifying {
        upgrade(state, id, &windows, verifying, cancel).await?;
    }

    let (tx, rx) = mpsc::unbounded_channel();
    let tracker = Arc::new(SyncTracker {
        done,
        records: tx,
        seen: Mutex::default(),
        integrity: verifying.map(|v| v.integrity.clone()),
    });
    let recorder = record_loop(state, id, rx, lease, settings, cancel);
    let run = async {
        let result = pipeline(Some(tracker.clone() as Arc<dyn Tracker>))
            .run(vec![source.with_selection(selection), Source::Known(retries)])
            .await;
        let seen = std::mem::take(&mut *tracker.seen.lock().unwrap_or_else(|p| p.into_inner()));
        // Closing the channel lets the recorder flush and finish.
        drop(tracker);
        (result, seen)
    };
    let ((result, seen), recorded) = tokio::join!(run, recorder);

    // Everything listed was read or recorded as failed: the checkpoints may move.
    let complete = result.is_ok() && recorded.is_ok() && !cancel.is_cancelled();
    let moved: HashMap<String, i64> = if complete {
        seen.into_iter()
            .filter(|(scope, day)| checkpoints.get(scope).is_none_or(|last| day > last))
            .collect()
    } else {
        HashMap::new()
    };
    let finish = Finish {
        source: id.to_string(),
        records: Vec::new(),
        checkpoints: moved,
        lookback_days: settings.lookback_days,
    };
    match recorded {
        // Deferred: the caller saves it all once its output is safe; after
        // a failure nothing was written, so nothing is recorded.
        Ok(records) if settings.deferred => {
            result?;
            Ok(Some(Finish { records, ..finish }))
        }
        recorded => {
            let finished = state.finish(id, &finish.checkpoints, finish.lookback_days).await;
            recorded?;
            result?;
            finished.map(|()| None)
        }
    }
}

/// `sync --verify`: restamps the events of the files that earlier runs
/// stamped `unverified` (the records of the windows with a kept hash), for
/// those a validly signed digest now lists: `verified` when the kept hash
/// is the one listed, `failed` (and named in a warning) when not; then
/// records them without their hash, so they are not judged again. Files
/// whose digest has not arrived wait for a later run (within their window).
/// A failure to restamp is a warning: the records keep their hash and the
/// next sync tries again; the run goes on.
async fn upgrade(
    state: &StateStore,
    id: &str,
    windows: &Windows,
    verifying: &Verifying,
    cancel: &CancellationToken,
) -> Result<()> {
    let kept = state.unverified(id, windows).await?;
    if kept.is_empty() {
        return Ok(());
    }
    let integrity = &verifying.integrity;
    let mut judged: [(&str, Vec<Record>); 2] = [
        (crate::verify::VERIFIED, Vec::new()),
        (crate::verify::FAILED, Vec::new()),
    ];
    let mut waiting = 0;
    for record in kept {
        match record
            .hash
            .as_deref()
            .and_then(|hash| integrity.judge_kept(&record.name, hash))
        {
            Some(stamp) if stamp == crate::verify::VERIFIED => judged[0].1.push(record),
            Some(_) => judged[1].1.push(record),
            None => waiting += 1,
        }
    }
    tracing::info!(
        "--verify: {} file(s) stamped unverified by earlier syncs: {} now match their digest, {} do not, \
         {waiting} still wait for theirs",
        judged[0].1.len() + judged[1].1.len() + waiting,
        judged[0].1.len(),
        judged[1].1.len()
    );
    if judged.iter().all(|(_, records)| records.is_empty()) {
        return Ok(());
    }
    // Events of a run that ended without its refresh become visible to the query.
    if let Err(e) = verifying.cluster.refresh(&verifying.alias).await {
        tracing::debug!("before restamping: {e:#}");
    }
    for (stamp, records) in &judged {
        for chunk in records.chunks(RESTAMP_FILES) {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let names: Vec<&str> = chunk.iter().map(|r| r.name.as_str()).collect();
            let events = match restamp(&verifying.cluster, &verifying.alias, &names, stamp).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(
                        "--verify: {e:#}; {} file(s) keep ctindex.integrity \"unverified\" until the next sync \
                         (restamping searches and updates them: it needs the read and write privileges on \
                         the indices)",
                        names.len()
                    );
                    continue;
                }
            };
            integrity.upgraded(stamp, &names, events);
            if *stamp == crate::verify::FAILED {
                for name in &names {
                    tracing::warn!(
                        "{name}: does not match the hash its digest lists (its content when it was read, by an \
                             earlier sync): its events are now ctindex.integrity \"failed\""
                    );
                }
            }
            let judged: Vec<Record> = chunk
                .iter()
                .map(|r| Record {
                    hash: None,
                    ..r.clone()
                })
                .collect();
            state.record(id, &judged).await?;
        }
    }
    Ok(())
}

/// Decides what to read from the state, and reports objects read.
struct SyncTracker {
    /// name → version of the objects already done in the windows.
    done: HashMap<String, String>,
    records: mpsc::UnboundedSender<Record>,
    /// scope → the latest delivery day listed in it.
    seen: Mutex<HashMap<String, i64>>,
    /// `sync --verify`: where the hashes of files stamped `unverified` are kept until recorded.
    integrity: Option<Arc<Integrity>>,
}

impl Tracker for SyncTracker {
    fn wanted(&self, object: &SourceObject) -> bool {
        if let (scope, Some(day)) = scope_and_day(&object.name) {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            match seen.get_mut(scope.as_ref()) {
                Some(last) => *last = (*last).max(day),
                None => {
                    seen.insert(scope.into_owned(), day);
                }
            }
        }
        self.done.get(object.name.as_ref()) != Some(&object.version)
    }

    fn done(&self, object: &SourceObject, outcome: FileOutcome) {
        let outcome = match outcome {
            FileOutcome::Indexed => state::Outcome::Indexed,
            FileOutcome::Unusable => state::Outcome::Unusable,
            FileOutcome::Unreadable => state::Outcome::Failed,
            FileOutcome::Missing => state::Outcome::Missing,
        };
        let mut record = Record::new(&object.name, &object.version, object.size, outcome);
        let kept = self.integrity.as_ref().and_then(|i| i.take_kept(&object.name));
        if outcome == state::Outcome::Indexed {
            record.hash = kept;
        }
        // The receiver only goes away after the pipeline has finished.
        let _ = self.records.send(record);
    }
}

/// Writes records as they come (every second or 1,000 records) and renews
/// the lease. When the lease is lost or records cannot be written, it
/// cancels the run (no new objects are read) and writes nothing more: the
/// objects not recorded are read again by the next sync. Deferred, it only
/// collects the records and returns them.
async fn record_loop(
    state: &StateStore,
    source: &str,
    mut rx: mpsc::UnboundedReceiver<Record>,
    mut lease: Option<&mut Lease>,
    settings: &SyncSettings,
    cancel: &CancellationToken,
) -> Result<Vec<Record>> {
    let lease_ttl = settings.lease_ttl;
    let mut kept = Vec::new();
    let mut pending = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let stop = |failure: &mut Option<anyhow::Error>, e: anyhow::Error| {
        tracing::error!("{e:#}; stopping: no new files are read, objects not recorded are read again next time");
        cancel.cancel();
        *failure = Some(e);
    };
    let mut flush_tick = tokio::time::interval(Duration::from_secs(1));
    let mut lease_tick = tokio::time::interval(lease_ttl / 4);
    lease_tick.tick().await;
    loop {
        tokio::select! {
            // An object read: buffer it (after a failure, only drain).
            received = rx.recv() => match received {
                Some(record) if settings.deferred => kept.push(record),
                Some(record) if failure.is_none() => {
                    pending.push(record);
                    if pending.len() >= 1000
                        && let Err(e) = state.record(source, &std::mem::take(&mut pending)).await
                    {
                        stop(&mut failure, e);
                    }
                }
                Some(_) => {}
                None => break,
            },
            // Time to write what was buffered.
            _ = flush_tick.tick(), if failure.is_none() => {
                if let Err(e) = state.record(source, &std::mem::take(&mut pending)).await {
                    stop(&mut failure, e);
                }
            }
            // Keep the lease while the run goes on.
            _ = lease_tick.tick(), if failure.is_none() => {
                if let Some(lease) = lease.as_deref_mut()
                    && let Err(e) = state.renew(lease).await
                {
                    stop(&mut failure, anyhow!("{source}: lost the sync lease ({e:#}); another sync may have taken over"));
                }
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => state.record(source, &pending).await.map(|()| kept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Location;

    fn object(name: &str, version: &str) -> SourceObject {
        SourceObject {
            name: name.into(),
            size: 10,
            version: version.into(),
            location: Location::File(name.into()),
        }
    }

    const EAST: &str = "AWSLogs/111111111111/CloudTrail/us-east-1/";
    const WEST: &str = "AWSLogs/111111111111/CloudTrail/us-west-2/";

    #[test]
    fn the_tracker_skips_what_is_done_and_keeps_each_scopes_latest_day() {
        let (records, mut rx) = mpsc::unbounded_channel();
        let tracker = SyncTracker {
            done: HashMap::from([(format!("{EAST}2024/03/01/a.json.gz"), "v1".to_string())]),
            records,
            seen: Mutex::default(),
            integrity: None,
        };
        // Done at the same version: skipped; rewritten since, or new: read.
        assert!(!tracker.wanted(&object(&format!("{EAST}2024/03/01/a.json.gz"), "v1")));
        assert!(tracker.wanted(&object(&format!("{EAST}2024/03/01/a.json.gz"), "v2")));
        assert!(tracker.wanted(&object(&format!("{EAST}2024/03/03/b.json.gz"), "v1")));
        assert!(tracker.wanted(&object(&format!("{EAST}2024/03/02/c.json.gz"), "v1")));
        assert!(tracker.wanted(&object(&format!("{WEST}2024/02/28/d.json.gz"), "v1")));
        let day = |t: &str| crate::date::parse_day(t).unwrap();
        let seen = tracker.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            HashMap::from([
                (EAST.to_string(), day("2024-03-03")),
                (WEST.to_string(), day("2024-02-28"))
            ])
        );

        tracker.done(
            &object(&format!("{EAST}2024/03/03/b.json.gz"), "v1"),
            FileOutcome::Indexed,
        );
        tracker.done(
            &object(&format!("{WEST}2024/02/28/d.json.gz"), "v1"),
            FileOutcome::Unreadable,
        );
        let first = rx.try_recv().unwrap();
        let second = rx.try_recv().unwrap();
        assert_eq!(
            (first.outcome, first.day),
            (state::Outcome::Indexed, Some(day("2024-03-03")))
        );
        assert_eq!((second.outcome, second.scope.as_str()), (state::Outcome::Failed, WEST));
    }

    #[test]
    fn digest_folders_take_the_windows_of_their_log_folders() {
        assert_eq!(
            digest_scope(EAST).as_deref(),
            Some("AWSLogs/111111111111/CloudTrail-Digest/us-east-1/")
        );
        assert_eq!(
            digest_scope("/m/CloudTrail/AWSLogs/1/CloudTrail/eu-west-1/").as_deref(),
            Some("/m/CloudTrail/AWSLogs/1/CloudTrail-Digest/eu-west-1/")
        );
        assert_eq!(digest_scope("AWSLogs/111111111111/CloudTrail-Insight/us-east-1/"), None);
    }

    /// The digests `sync --verify` reads: from each log folder's window
    /// start on, in the digest folder beside it; elsewhere from `--since`.
    #[tokio::test]
    async fn digests_are_read_over_the_windows_days() {
        let dir = tempfile::tempdir().unwrap();
        let trail = dir.path().join("trail");
        std::fs::create_dir_all(&trail).unwrap();
        let root = std::fs::canonicalize(&trail).unwrap().display().to_string();
        let state = StateStore::in_file(&dir.path().join("state.json")).await.unwrap();
        let source = Source::Local {
            path: trail.clone(),
            selection: Arc::default(),
        };
        let (_, id) = keyed(source.clone(), "p");
        let day = |t: &str| crate::date::parse_day(t).unwrap();
        let east = format!("{root}/{EAST}");
        let insight = format!("{root}/AWSLogs/111111111111/CloudTrail-Insight/us-east-1/");
        state
            .finish(
                &id,
                &HashMap::from([(east.clone(), day("2024-03-05")), (insight, day("2024-03-05"))]),
                2,
            )
            .await
            .unwrap();
        let settings = SyncSettings {
            lookback_days: 2,
            ..settings(false)
        };
        let windows = digest_windows(&state, &[source], "p", &settings).await.unwrap();
        assert_eq!(
            windows,
            HashMap::from([(
                format!("{root}/AWSLogs/111111111111/CloudTrail-Digest/us-east-1/"),
                day("2024-03-03")
            )])
        );
    }

    fn settings(deferred: bool) -> SyncSettings {
        SyncSettings {
            since: None,
            lookback_days: 3,
            state_file: None,
            state_index: String::new(),
            lease_ttl: Duration::from_secs(120),
            deferred,
        }
    }

    #[tokio::test]
    async fn records_are_written_or_handed_back_when_deferred() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::in_file(&dir.path().join("state.json")).await.unwrap();
        let cancel = CancellationToken::new();
        let name = |n: u32| format!("{EAST}2024/03/01/{n}.json.gz");
        for deferred in [true, false] {
            let source = if deferred { "deferred" } else { "plain" };
            let (tx, rx) = mpsc::unbounded_channel();
            for n in 0..3 {
                tx.send(Record::new(&name(n), "v1", 10, state::Outcome::Indexed))
                    .unwrap();
            }
            drop(tx);
            let kept = record_loop(&state, source, rx, None, &settings(deferred), &cancel)
                .await
                .unwrap();
            let written = state.done(source, &Windows::default()).await.unwrap();
            if deferred {
                assert_eq!(kept.len(), 3);
                assert!(written.is_empty(), "a deferred run writes nothing itself: {written:?}");
            } else {
                assert!(kept.is_empty());
                assert_eq!(written.len(), 3);
                assert!((0..3).all(|n| written.get(&name(n)).map(String::as_str) == Some("v1")));
            }
        }
        assert!(!cancel.is_cancelled(), "nothing failed: the run goes on");
    }
}
