//! The pipeline: sources → read → decode → transform → batch → output
//! (bulk requests to the cluster, or export records).
//!
//! Owns the stages' tasks and the bounded queues between them, which are what
//! bounds memory whatever the input size:
//! - listing runs ahead by at most [`LISTING_QUEUE`] entries;
//! - at most `workers` files are read and decoded at once (decode, transform
//!   and bulk encoding run on blocking threads, one file per thread);
//! - at most `concurrency` bulk requests are in flight, plus one being filled.
//!
//! It also keeps the ledger of files: a file is done once every one of its
//! events is acknowledged or dead-lettered.
//!
//! Invariant: every event decoded is counted as read and ends up
//! acknowledged, dead-lettered, or (on a fatal error) reported in the error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::Result;
use futures::StreamExt;
use tokio::sync::{Notify, mpsc};

use crate::decode::{self, DecodeError};
use crate::dlq::{DeadLetters, Letter};
use crate::export::{Encoder, Exporter};
use crate::progress::Stats;
use crate::sink::bulk::{Batch, Origin};
use crate::sink::{FileNames, Sink, Unsent};
use crate::source::{Listed, Location, Source, SourceObject};
use crate::transform::{StandIns, Transformer};

/// How far listing may run ahead of reading (entries, not bytes: they are small).
pub const LISTING_QUEUE: usize = 4096;

/// At most this many messages per file about values that are not events;
/// the rest are only counted (all of them are in the dead-letter file).
const REJECT_MESSAGES_PER_FILE: usize = 5;

/// Tuning of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// A bulk request is sent once its body reaches this many bytes.
    pub batch_bytes: usize,
    /// Bulk requests in flight at once.
    pub concurrency: usize,
    /// Files decoded at once (CPU-bound: about one per core).
    pub workers: usize,
    /// Files being fetched or waiting to be decoded at once (I/O-bound: S3
    /// downloads want many; their bytes are bounded separately).
    pub downloads: usize,
}

/// Set by Ctrl-C / SIGTERM: stop listing, finish what is in flight.
#[derive(Debug, Default)]
pub struct Cancel {
    flag: AtomicBool,
    /// When the stop was asked for (retries get a short budget from then on).
    at: OnceLock<Instant>,
    /// Wakes those waiting in [`Cancel::cancelled`].
    woken: Notify,
}

impl Cancel {
    pub fn cancel(&self) {
        self.at.get_or_init(Instant::now);
        self.flag.store(true, Ordering::Relaxed);
        self.woken.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// When the stop was asked for, if it was.
    pub fn since(&self) -> Option<Instant> {
        self.at.get().copied()
    }

    /// Resolves once cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        loop {
            let woken = self.woken.notified();
            if self.is_cancelled() {
                return;
            }
            woken.await;
        }
    }
}

/// What became of a file, for a [`Tracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOutcome {
    /// Every event is acknowledged by the cluster or dead-lettered (or it held none).
    Indexed,
    /// Its content is not usable (corrupt, not CloudTrail): reading it again cannot help.
    Unusable,
    /// It could not be read (denied, archived, failing): worth trying again later.
    Unreadable,
    /// It is not there any more.
    Missing,
}

/// Sync's view of the pipeline: which listed objects to read, and which are done.
pub trait Tracker: Send + Sync {
    /// Whether a listed object still needs reading.
    fn wanted(&self, object: &SourceObject) -> bool;
    /// An object is done with, read or not (objects never started, after a
    /// cancel or a fatal error, are not reported).
    fn done(&self, object: &SourceObject, outcome: FileOutcome);
}

/// How far one file got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// It has events in the batch (or none, in a valid file).
    Events,
    /// Its content is not usable.
    Unusable,
    /// It could not be read.
    Unread,
    /// It is not there any more.
    Missing,
}

/// Where the pipeline's batches go.
pub enum Output {
    /// `--dry-run`: bulk bodies are built and counted, never sent.
    DryRun,
    /// Bulk requests to the cluster.
    Bulk(Arc<Sink>),
    /// Export records, sorted and written when the run ends.
    Export {
        encoder: Arc<Encoder>,
        exporter: Arc<Exporter>,
    },
}

/// One run's pipeline.
pub struct Pipeline {
    pub transformer: Arc<Transformer>,
    pub output: Output,
    pub stats: Arc<Stats>,
    pub dlq: Arc<DeadLetters>,
    pub names: Arc<FileNames>,
    pub options: Options,
    pub cancel: Arc<Cancel>,
    /// Decoding slots: `workers` permits.
    pub decoders: Arc<tokio::sync::Semaphore>,
    /// Set by sync: skips objects already done, hears of finished ones.
    pub tracker: Option<Arc<dyn Tracker>>,
    /// The objects in flight, by number, for the tracker.
    pub in_flight: Mutex<HashMap<u32, SourceObject>>,
}

/// What one file yielded, encoded.
struct FileOutput {
    file: u32,
    batch: Batch,
    kind: FileKind,
}

impl FileOutput {
    fn nothing(file: u32, kind: FileKind) -> Self {
        FileOutput {
            file,
            batch: Batch::default(),
            kind,
        }
    }
}

/// Events of each file not yet acknowledged.
#[derive(Default)]
struct Ledger {
    remaining: HashMap<u32, usize>,
    done: u64,
}

impl Pipeline {
    /// Runs all sources to the end (or to a cancel, or a fatal error).
    pub async fn run(&self, sources: Vec<Source>) -> Result<()> {
        let (listed_tx, listed_rx) = mpsc::channel::<Listed>(LISTING_QUEUE);
        let stats = self.stats.clone();
        let cancel = self.cancel.clone();
        let lister = tokio::spawn(async move {
            for source in &sources {
                if cancel.is_cancelled() {
                    break;
                }
                source.list(&listed_tx).await?;
            }
            stats.listing_done.store(true, Ordering::Relaxed);
            anyhow::Ok(())
        });

        let (batch_tx, batch_rx) = mpsc::channel::<Batch>(1);
        let ledger = Mutex::new(Ledger::default());
        let produce = self.produce(listed_rx, batch_tx, &ledger);
        let consume = self.consume(batch_rx, &ledger);
        let (produced, consumed) = tokio::join!(produce, consume);
        lister.abort();
        consumed?;
        produced?;
        if let Ok(Err(e)) = lister.await {
            return Err(e);
        }
        Ok(())
    }

    /// Reads, decodes and encodes files, and fills batches.
    async fn produce(
        &self,
        listed_rx: mpsc::Receiver<Listed>,
        batch_tx: mpsc::Sender<Batch>,
        ledger: &Mutex<Ledger>,
    ) -> Result<()> {
        let cancel = self.cancel.clone();
        let objects = futures::stream::unfold(listed_rx, |mut rx| async move { rx.recv().await.map(|l| (l, rx)) })
            .take_while(move |_| std::future::ready(!cancel.is_cancelled()))
            .filter_map(|listed| std::future::ready(self.accept(listed)))
            .enumerate()
            .map(|(n, object)| self.process_file(n as u32, object))
            .buffer_unordered(self.options.downloads.max(self.options.workers).max(1));
        futures::pin_mut!(objects);

        let capacity = self.options.batch_bytes + self.options.batch_bytes / 8;
        let mut current = Batch::with_capacity(capacity);
        while let Some(output) = objects.next().await {
            let FileOutput { file, batch, kind } = output;
            if batch.is_empty() {
                self.file_done(file, ledger, kind);
                continue;
            }
            lock(ledger).remaining.insert(file, batch.len());
            for i in 0..batch.len() {
                current.push_item_from(&batch, i);
                if current.body.len() >= self.options.batch_bytes {
                    let full = std::mem::replace(&mut current, Batch::with_capacity(capacity));
                    if batch_tx.send(full).await.is_err() {
                        // The sender side failed; its error is what the run reports.
                        return Ok(());
                    }
                }
            }
        }
        if !current.is_empty() {
            let _ = batch_tx.send(current).await;
        }
        Ok(())
    }

    /// Sends batches, `concurrency` at a time, and settles the ledger.
    /// After a fatal error the batches in flight are finished (dead-lettered
    /// by the sink) before the error is returned.
    async fn consume(&self, batch_rx: mpsc::Receiver<Batch>, ledger: &Mutex<Ledger>) -> Result<()> {
        let sink = match &self.output {
            Output::Bulk(sink) => Some(sink),
            _ => None,
        };
        let sends = futures::stream::unfold(batch_rx, |mut rx| async move {
            let batch = match sink {
                Some(sink) => sink.next_batch(&mut rx).await,
                None => rx.recv().await,
            };
            batch.map(|b| (b, rx))
        })
        .map(|batch| async move {
            let mut counts: HashMap<u32, usize> = HashMap::new();
            for item in &batch.items {
                *counts.entry(item.origin.file).or_default() += 1;
            }
            match &self.output {
                Output::Bulk(sink) => sink.send(batch).await?,
                Output::DryRun => {
                    Stats::add(&self.stats.batches, 1);
                    Stats::add(&self.stats.bulk_bytes, batch.body.len() as u64);
                    Stats::add(&self.stats.encoded, batch.len() as u64);
                }
                Output::Export { exporter, .. } => {
                    Stats::add(&self.stats.encoded, batch.len() as u64);
                    let exporter = exporter.clone();
                    tokio::task::spawn_blocking(move || exporter.add(&batch))
                        .await
                        .map_err(|e| anyhow::anyhow!("the export task failed: {e}"))??;
                }
            }
            anyhow::Ok(counts)
        })
        .buffer_unordered(self.options.concurrency.max(1));
        futures::pin_mut!(sends);
        let mut failure = None;
        while let Some(result) = sends.next().await {
            let counts = match result {
                Ok(counts) => counts,
                // Dead-lettered unsent while stopping: its files are not done.
                Err(e) if e.is::<Unsent>() => continue,
                Err(e) => {
                    if let (None, Some(sink)) = (&failure, sink) {
                        sink.abandon(format!("{e:#}"));
                    }
                    failure.get_or_insert(e);
                    continue;
                }
            };
            for (file, n) in counts {
                let finished = {
                    let mut ledger = lock(ledger);
                    let left = ledger.remaining.get_mut(&file).map(|left| {
                        *left = left.saturating_sub(n);
                        *left
                    });
                    left == Some(0)
                };
                if finished {
                    self.file_done(file, ledger, FileKind::Events);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    fn file_done(&self, file: u32, ledger: &Mutex<Ledger>, kind: FileKind) {
        {
            let mut ledger = lock(ledger);
            ledger.remaining.remove(&file);
            ledger.done += 1;
        }
        self.names.remove(file);
        if let Some(tracker) = &self.tracker {
            let object = self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&file);
            match (object, kind) {
                (Some(object), FileKind::Events) => tracker.done(&object, FileOutcome::Indexed),
                (Some(object), FileKind::Unusable) => tracker.done(&object, FileOutcome::Unusable),
                (Some(object), FileKind::Unread) => tracker.done(&object, FileOutcome::Unreadable),
                (Some(object), FileKind::Missing) => tracker.done(&object, FileOutcome::Missing),
                (None, _) => {}
            }
        }
    }

    /// Passes listed objects on; counts and reports the others.
    fn accept(&self, listed: Listed) -> Option<SourceObject> {
        match listed {
            Listed::Object(object) if self.tracker.as_ref().is_some_and(|t| !t.wanted(&object)) => {
                Stats::add(&self.stats.files_already_done, 1);
                None
            }
            Listed::Object(object) => {
                Stats::add(&self.stats.files_listed, 1);
                Stats::add(&self.stats.bytes_listed, object.size);
                Some(object)
            }
            Listed::Digest(name) => {
                tracing::debug!("{name}: digest file, skipped");
                Stats::add(&self.stats.files_listed, 1);
                Stats::add(&self.stats.files_digest, 1);
                None
            }
            Listed::Unreadable { name, reason } => {
                tracing::warn!("{name}: skipped: cannot list: {reason}");
                Stats::add(&self.stats.files_listed, 1);
                Stats::add(&self.stats.files_skipped, 1);
                None
            }
        }
    }

    /// Reads one file and turns it into encoded documents.
    async fn process_file(&self, file: u32, object: SourceObject) -> FileOutput {
        self.names.insert(file, object.name.clone());
        if self.tracker.is_some() {
            self.in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(file, object.clone());
        }
        // A local file is read only once a decoding slot is free, so at most
        // `workers` local files are in memory at once (the disk and the page
        // cache keep up); S3 objects are fetched ahead, within their own
        // bytes-in-flight budget, because the network needs the overlap.
        let slot = match object.location {
            Location::File(_) => match self.decoders.clone().acquire_owned().await {
                Ok(slot) => Some(slot),
                Err(_) => return FileOutput::nothing(file, FileKind::Unread),
            },
            Location::S3 { .. } => None,
        };
        let (bytes, budget) = match object.read().await {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!("skipped: {e:#}");
                Stats::add(&self.stats.files_skipped, 1);
                let kind = if crate::source::is_missing(&e) {
                    FileKind::Missing
                } else {
                    FileKind::Unread
                };
                return FileOutput::nothing(file, kind);
            }
        };
        Stats::add(&self.stats.bytes_read, bytes.len() as u64);
        let slot = match slot {
            Some(slot) => slot,
            None => match self.decoders.clone().acquire_owned().await {
                Ok(slot) => slot,
                Err(_) => return FileOutput::nothing(file, FileKind::Unread),
            },
        };
        // Stopped while it waited for a decoder: not started, so left for the next run.
        if self.cancel.is_cancelled() {
            return FileOutput::nothing(file, FileKind::Unread);
        }
        let transformer = self.transformer.clone();
        let encoder = match &self.output {
            Output::Export { encoder, .. } => Some(encoder.clone()),
            _ => None,
        };
        let stats = self.stats.clone();
        let dlq = self.dlq.clone();
        let name = object.name.clone();
        let work = tokio::task::spawn_blocking(move || {
            let batch = encode_file(&bytes, file, &name, &transformer, encoder.as_deref(), &stats, &dlq);
            drop((slot, budget));
            batch
        });
        match work.await {
            Ok((batch, kind)) => FileOutput { file, batch, kind },
            Err(e) => {
                tracing::error!("{}: skipped: decoding failed unexpectedly: {e}", object.name);
                Stats::add(&self.stats.files_skipped, 1);
                FileOutput::nothing(file, FileKind::Unread)
            }
        }
    }
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Decodes, transforms and encodes one file (runs on a blocking thread).
fn encode_file(
    bytes: &[u8],
    file: u32,
    name: &str,
    transformer: &Transformer,
    encoder: Option<&Encoder>,
    stats: &Stats,
    dlq: &DeadLetters,
) -> (Batch, FileKind) {
    let decoded = match decode::decode(bytes) {
        Ok(decoded) => decoded,
        Err(DecodeError::Digest) => {
            tracing::debug!("{name}: digest file, skipped");
            Stats::add(&stats.files_digest, 1);
            return (Batch::default(), FileKind::Events);
        }
        Err(e) => {
            tracing::warn!("{name}: skipped: {e}");
            Stats::add(&stats.files_skipped, 1);
            return (Batch::default(), FileKind::Unusable);
        }
    };
    Stats::add(&stats.files_read, 1);
    if let Some(why) = &decoded.truncated {
        tracing::warn!(
            "{name}: incomplete, {} events before the break kept: {why}",
            decoded.events.len()
        );
        Stats::add(&stats.files_truncated, 1);
    }
    for (n, reject) in decoded.rejects.iter().enumerate() {
        if n < REJECT_MESSAGES_PER_FILE {
            tracing::warn!("{name}: {}: skipped: {}", reject.position, reject.reason);
        } else if n == REJECT_MESSAGES_PER_FILE {
            tracing::warn!(
                "{name}: {} more values skipped (see the dead-letter file)",
                decoded.rejects.len() - n
            );
        }
        let position = reject.position.to_string();
        let letter = Letter {
            reason: &reject.reason,
            source: name,
            position: &position,
            index: None,
            id: None,
        };
        if let Err(e) = dlq.write_value(&letter, reject.dead_letter_event().as_ref()) {
            tracing::error!("{e:#}");
        }
        Stats::add(&stats.events_skipped, 1);
    }
    let mut batch = Batch::with_capacity(bytes.len() + bytes.len() / 4);
    let count = decoded.events.len();
    let mut stand_ins = StandIns::default();
    for (event, position) in decoded.events.into_iter().zip(decoded.positions) {
        let record = match position {
            decode::Position::Record(i) => i as u32,
            decode::Position::Line(n) => n as u32,
            decode::Position::Whole => 0,
        };
        let doc = transformer.apply(event, name);
        stand_ins.note(&doc, position);
        let origin = Origin { file, record };
        match encoder {
            Some(encoder) => encoder.push(&doc, name, origin, &mut batch),
            None => batch.push_doc(&doc, origin),
        }
    }
    Stats::add(&stats.events_read, count as u64);
    Stats::add(&stats.events_without_id, stand_ins.without_id.len() as u64);
    Stats::add(&stats.events_undated, stand_ins.undated.len() as u64);
    for message in stand_ins.messages() {
        tracing::warn!("{name}: {message}");
    }
    (batch, FileKind::Events)
}
