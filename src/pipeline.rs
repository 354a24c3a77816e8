//! The pipeline: sources → read → decode → transform → batch → output
//! (bulk requests to the cluster, or export records).
//!
//! Owns the stages' tasks and the bounded queues between them, which are what
//! bounds memory whatever the input size:
//! - listing runs ahead by at most [`LISTING_QUEUE`] entries;
//! - at most `downloads` S3 objects are fetched at once, within their
//!   bytes-in-flight budget;
//! - at most `workers` groups of files are read and decoded at once (decode,
//!   transform and bulk encoding run on blocking threads, the files of a
//!   group one after the other: the files ready at once, up to
//!   [`GROUP_FILES`] or [`GROUP_BYTES`], so that a trail of tiny files does
//!   not pay a task and a queue per file);
//! - at most `concurrency` bulk requests are in flight, plus one being filled.
//!
//! It also keeps the ledger of files: a file is done once every one of its
//! events is acknowledged or dead-lettered.
//!
//! Invariant: every event decoded is counted as read and ends up
//! acknowledged, dead-lettered, or (on a fatal error) reported in the error.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::decode::stream::{Feed, Took};
use crate::decode::{self, DecodeError};
use crate::dlq::{DeadLetters, Letter};
use crate::export::{Encoder, Exporter};
use crate::progress::Stats;
use crate::raw::RawEvent;
use crate::sink::bulk::{Batch, Origin};
use crate::sink::{FileNames, Sink, Unsent};
use crate::source::{Listed, Location, Source, SourceObject};
use crate::transform::{Document, StandIns, Transformer, View};

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
    /// On a cluster without free-form objects: where each document's
    /// unindexed objects are, whose text goes into `ctindex.payload`.
    pub unindexed: Option<Arc<crate::sink::freeform::Unindexed>>,
    /// `follow`: a batch that is not full is sent once no file output came
    /// for this long (input arrives as it is announced, not all at once).
    pub flush_idle: Option<std::time::Duration>,
    /// `import --shard`: only this share of the listed objects is read.
    pub shard: Option<crate::source::shard::Shard>,
    /// `import --verify`: the digests' hashes; each event is stamped
    /// `ctindex.integrity`.
    pub integrity: Option<Arc<crate::verify::Integrity>>,
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
    /// `--dry-run`: bulk bodies are built and counted, never sent; with
    /// `print`, each document is printed ([`print_documents`]).
    DryRun { print: bool },
    /// Bulk requests to the cluster.
    Bulk(Arc<Sink>),
    /// Export records, sorted and written when the run ends.
    Export {
        encoder: Arc<Encoder>,
        exporter: Arc<Exporter>,
    },
}

/// `--print-documents`: each document of a batch on a line of stdout, as
/// `{"action": …, "document": …, "quarantined": …}` (the bulk action, the
/// document, and its second try after a parse refusal or null), for
/// scripts/mapping-check.py, which checks the templates against exactly
/// what ctindex sends.
fn print_documents(batch: &Batch) -> Result<()> {
    use std::io::Write;
    let mut out = Vec::with_capacity(batch.body.len() * 2);
    for i in 0..batch.len() {
        out.extend_from_slice(b"{\"action\":");
        out.extend_from_slice(batch.head_bytes(i));
        out.extend_from_slice(b",\"document\":");
        out.extend_from_slice(batch.doc_bytes(i));
        out.extend_from_slice(b",\"quarantined\":");
        match crate::transform::quarantined(batch.doc_bytes(i)) {
            Some(doc) => out.extend_from_slice(&doc),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}\n");
    }
    std::io::stdout()
        .lock()
        .write_all(&out)
        .map_err(|e| anyhow::anyhow!("writing the documents to stdout: {e}"))
}

/// One run's pipeline.
pub struct Pipeline {
    pub transformer: Arc<Transformer>,
    pub output: Output,
    pub stats: Arc<Stats>,
    pub dlq: Arc<DeadLetters>,
    pub names: Arc<FileNames>,
    pub options: Options,
    /// The run's stop (Ctrl-C, SIGTERM, a lost lease): no new files are
    /// listed or read; what is in flight is finished.
    pub cancel: CancellationToken,
    /// Decoding slots: `workers` permits.
    pub decoders: Arc<tokio::sync::Semaphore>,
    /// Set by sync: skips objects already done, hears of finished ones.
    pub tracker: Option<Arc<dyn Tracker>>,
    /// The objects in flight, by number, for the tracker.
    pub in_flight: Mutex<HashMap<u32, SourceObject>>,
}

/// A piece of the decoders' output: the encoded documents of one or more
/// files (each item names its file), and the files that ended with it. A
/// file is read in pieces of about [`PIECE_BYTES`], so a file of any size
/// takes bounded memory; small files share a piece.
struct Piece {
    batch: Batch,
    /// Files whose last document is in this piece or an earlier one, and how
    /// they ended.
    ends: Vec<(u32, FileKind)>,
}

/// The encoded documents of a file are handed on in pieces of this size.
const PIECE_BYTES: usize = 2 << 20;

/// Pieces of one group of files that may wait between its decoder and the batches.
const PIECES_AHEAD: usize = 2;

/// Files ready at once are decoded together, up to this many files or
/// [`GROUP_BYTES`] of input, by one blocking task that sends shared pieces:
/// on trails of tiny files, a task, a queue and their wake-ups per file cost
/// more than decoding the file.
const GROUP_FILES: usize = 64;

/// See [`GROUP_FILES`]: input bytes (as listed) of a group.
const GROUP_BYTES: u64 = 1 << 20;

/// A listed file, ready to decode: its bytes fetched (S3), or its path (a
/// local file is read as it is decoded); or how it ended without.
struct Fetched {
    file: u32,
    name: Arc<str>,
    size: u64,
    input: Result<Input, FileKind>,
    /// S3: the downloaded bytes' share of the bytes-in-flight budget.
    budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Each file's events not yet acknowledged.
#[derive(Default)]
struct Ledger {
    remaining: HashMap<u32, Pending>,
    done: u64,
}

#[derive(Default)]
struct Pending {
    items: usize,
    /// The file's last piece came, with how it ended.
    end: Option<FileKind>,
}

impl Ledger {
    /// Counts a piece of `file`; true when the file is thereby done.
    fn piece(&mut self, file: u32, items: usize, end: Option<FileKind>) -> Option<FileKind> {
        let pending = self.remaining.entry(file).or_default();
        pending.items += items;
        if end.is_some() {
            pending.end = end;
        }
        (pending.items == 0).then_some(pending.end).flatten()
    }

    /// Counts acknowledged items of `file`; the file's end when it is done.
    fn acknowledged(&mut self, file: u32, items: usize) -> Option<FileKind> {
        let pending = self.remaining.get_mut(&file)?;
        pending.items = pending.items.saturating_sub(items);
        (pending.items == 0).then_some(pending.end).flatten()
    }
}

impl Pipeline {
    /// Runs all sources to the end (or to a cancel, or a fatal error).
    pub async fn run(&self, sources: Vec<Source>) -> Result<()> {
        let (listed_tx, listed_rx) = mpsc::channel::<Listed>(LISTING_QUEUE);
        let stats = self.stats.clone();
        let cancel = self.cancel.clone();
        // Sync (with a tracker) may rightly find nothing new; import and export may not.
        let require_match = self.tracker.is_none();
        let lister = tokio::spawn(async move {
            crate::source::list_all(&sources, &listed_tx, require_match, || cancel.is_cancelled()).await?;
            stats.listing_done.store(true, Ordering::Relaxed);
            anyhow::Ok(())
        });

        let ran = self.run_listed(listed_rx).await;
        lister.abort();
        ran?;
        if let Ok(Err(e)) = lister.await {
            return Err(e);
        }
        Ok(())
    }

    /// Runs the objects `listed_rx` brings until it closes (or a cancel, or
    /// a fatal error): `follow` feeds it as notifications arrive.
    pub async fn run_listed(&self, listed_rx: mpsc::Receiver<Listed>) -> Result<()> {
        let (batch_tx, batch_rx) = mpsc::channel::<Batch>(1);
        let ledger = Mutex::new(Ledger::default());
        let produce = self.produce(listed_rx, batch_tx, &ledger);
        let consume = self.consume(batch_rx, &ledger);
        let (produced, consumed) = tokio::join!(produce, consume);
        consumed?;
        produced
    }

    /// Reads, decodes and encodes files, and fills batches: fetching (S3
    /// downloads, `downloads` at once) runs beside the decoders (`workers`
    /// groups of files at once), which take what is fetched in groups.
    async fn produce(
        &self,
        listed_rx: mpsc::Receiver<Listed>,
        batch_tx: mpsc::Sender<Batch>,
        ledger: &Mutex<Ledger>,
    ) -> Result<()> {
        let workers = self.options.workers.max(1);
        let (ready_tx, ready_rx) = mpsc::channel::<Fetched>(GROUP_FILES * workers);
        let cancel = self.cancel.clone();
        let fetch = async move {
            let fetched = received(listed_rx)
                .take_while(move |_| std::future::ready(!cancel.is_cancelled()))
                .filter_map(|listed| std::future::ready(self.accept(listed)))
                .enumerate()
                .map(|(n, object)| self.fetch(n as u32, object))
                .buffer_unordered(self.options.downloads.max(1));
            futures::pin_mut!(fetched);
            loop {
                let ready = tokio::select! {
                    ready = fetched.next() => ready,
                    // The decoders stopped (a fatal error): nothing more is
                    // fetched, even while the listing stays open (`follow`).
                    () = ready_tx.closed() => break,
                };
                let Some(ready) = ready else { break };
                if ready_tx.send(ready).await.is_err() {
                    break;
                }
            }
        };
        let fill = async move {
            let pieces = groups(ready_rx).flat_map_unordered(workers, |group| self.decode_group(group));
            futures::pin_mut!(pieces);
            self.fill(pieces, batch_tx, ledger).await
        };
        let ((), filled) = tokio::join!(fetch, fill);
        filled
    }

    /// Fills batches from the decoders' pieces, and counts their files in the ledger.
    async fn fill(
        &self,
        mut pieces: impl futures::Stream<Item = Piece> + Unpin,
        batch_tx: mpsc::Sender<Batch>,
        ledger: &Mutex<Ledger>,
    ) -> Result<()> {
        let capacity = self.options.batch_bytes + self.options.batch_bytes / 8;
        let mut current = Batch::with_capacity(capacity);
        loop {
            let idle = self.options.flush_idle.filter(|_| !current.is_empty());
            let next = tokio::select! {
                // The sender side is gone (a fatal error; its error is what
                // the run reports): no more input is waited for, even while
                // the listing stays open (`follow`).
                () = batch_tx.closed() => return Ok(()),
                next = async {
                    match idle {
                        Some(idle) => tokio::time::timeout(idle, pieces.next()).await,
                        None => Ok(pieces.next().await),
                    }
                } => next,
            };
            let next = match next {
                Ok(next) => next,
                // Nothing more for a while: what is there goes now.
                Err(_) => {
                    let partial = std::mem::replace(&mut current, Batch::with_capacity(capacity));
                    if batch_tx.send(partial).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
            };
            let Some(Piece { batch, ends }) = next else { break };
            self.count_piece(&batch, &ends, ledger);
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
            batch.recycle();
        }
        if !current.is_empty() {
            let _ = batch_tx.send(current).await;
        }
        Ok(())
    }

    /// Counts a piece's documents by file in the ledger (a file's documents
    /// are together in a piece), then its ended files, which may thereby be done.
    fn count_piece(&self, batch: &Batch, ends: &[(u32, FileKind)], ledger: &Mutex<Ledger>) {
        let mut done = Vec::new();
        {
            let mut ledger = lock(ledger);
            let mut items = batch.items.iter().map(|item| item.origin.file).peekable();
            while let Some(file) = items.next() {
                let mut n = 1;
                while items.next_if_eq(&file).is_some() {
                    n += 1;
                }
                ledger.piece(file, n, None);
            }
            for &(file, kind) in ends {
                if let Some(kind) = ledger.piece(file, 0, Some(kind)) {
                    done.push((file, kind));
                }
            }
        }
        for (file, kind) in done {
            self.file_done(file, ledger, kind);
        }
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
                Output::DryRun { print } => {
                    if *print {
                        print_documents(&batch)?;
                    }
                    Stats::add(&self.stats.batches, 1);
                    Stats::add(&self.stats.bulk_bytes, batch.body.len() as u64);
                    Stats::add(&self.stats.encoded, batch.len() as u64);
                    batch.recycle();
                }
                Output::Export { exporter, .. } => {
                    Stats::add(&self.stats.encoded, batch.len() as u64);
                    let exporter = exporter.clone();
                    tokio::task::spawn_blocking(move || {
                        let added = exporter.add(&batch);
                        batch.recycle();
                        added
                    })
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
                    let Some(sink) = sink else {
                        // An export that cannot write stops here: dropping
                        // the queue stops the readers, instead of reading
                        // (and holding) the rest of the input for nothing.
                        failure.get_or_insert(e);
                        break;
                    };
                    if failure.is_none() {
                        sink.abandon(format!("{e:#}"));
                    }
                    failure.get_or_insert(e);
                    continue;
                }
            };
            for (file, n) in counts {
                let done = lock(ledger).acknowledged(file, n);
                if let Some(kind) = done {
                    self.file_done(file, ledger, kind);
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
            Listed::Object(object) if self.options.shard.is_some_and(|s| !s.takes(&object.name)) => None,
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

    /// Gets a file's bytes (S3), or how it ended without; a local file is
    /// read as it is decoded, so its size does not matter, while S3 objects
    /// are fetched ahead, within their own bytes-in-flight budget, because
    /// the network needs the overlap.
    async fn fetch(&self, file: u32, object: SourceObject) -> Fetched {
        self.names.insert(file, object.name.clone());
        if self.tracker.is_some() {
            self.in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(file, object.clone());
        }
        let (input, budget) = match &object.location {
            Location::File(path) => (Ok(Input::File(path.clone())), None),
            Location::S3 { .. } => match object.read().await {
                Ok((bytes, budget)) => (Ok(Input::Bytes(bytes)), budget),
                Err(e) => {
                    tracing::warn!("skipped: {e:#}");
                    Stats::add(&self.stats.files_skipped, 1);
                    let kind = if crate::source::is_missing(&e) {
                        FileKind::Missing
                    } else {
                        FileKind::Unread
                    };
                    (Err(kind), None)
                }
            },
        };
        Fetched {
            file,
            name: object.name,
            size: object.size,
            input,
            budget,
        }
    }

    /// Decodes a group of files on a blocking thread, once a decoding slot
    /// is free, into the pieces it sends.
    fn decode_group(&self, group: Vec<Fetched>) -> futures::stream::BoxStream<'_, Piece> {
        futures::stream::once(self.start_group(group))
            .flat_map(received)
            .boxed()
    }

    async fn start_group(&self, group: Vec<Fetched>) -> mpsc::Receiver<Piece> {
        let (tx, rx) = mpsc::channel(PIECES_AHEAD);
        let Ok(slot) = self.decoders.clone().acquire_owned().await else {
            let ends = group.iter().map(|f| (f.file, FileKind::Unread)).collect();
            let _ = tx.try_send(Piece {
                batch: Batch::default(),
                ends,
            });
            return rx;
        };
        let work = DecodeWork {
            transformer: self.transformer.clone(),
            encoder: match &self.output {
                Output::Export { encoder, .. } => Some(encoder.clone()),
                _ => None,
            },
            unindexed: self.options.unindexed.clone(),
            integrity: self.options.integrity.clone(),
            stats: self.stats.clone(),
            dlq: self.dlq.clone(),
            cancel: self.cancel.clone(),
        };
        tokio::task::spawn_blocking(move || {
            work.run(group, &tx);
            drop(slot);
        });
        rx
    }
}

/// What a queue brings, as a stream.
fn received<T>(rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// Groups the files that are ready at once (see [`GROUP_FILES`]).
fn groups(ready: mpsc::Receiver<Fetched>) -> impl futures::Stream<Item = Vec<Fetched>> {
    futures::stream::unfold(ready, |mut rx| async move {
        let first = rx.recv().await?;
        let mut bytes = first.size;
        let mut group = vec![first];
        while group.len() < GROUP_FILES && bytes < GROUP_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            bytes += next.size;
            group.push(next);
        }
        Some((group, rx))
    })
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a file's bytes come from.
enum Input {
    /// Read as it is decoded.
    File(std::path::PathBuf),
    /// Downloaded already.
    Bytes(Vec<u8>),
    /// Uncompressed already (`import --verify`), its compressed size counted.
    Plain(Vec<u8>),
}

/// Everything a group of files' decoding needs, for its blocking thread.
struct DecodeWork {
    transformer: Arc<Transformer>,
    encoder: Option<Arc<Encoder>>,
    unindexed: Option<Arc<crate::sink::freeform::Unindexed>>,
    integrity: Option<Arc<crate::verify::Integrity>>,
    stats: Arc<Stats>,
    dlq: Arc<DeadLetters>,
    /// After a stop, the group's files not begun are left for the next run.
    cancel: CancellationToken,
}

impl DecodeWork {
    /// Decodes, transforms and encodes the group's files one after the
    /// other, sending pieces of encoded documents as they fill.
    fn run(&self, group: Vec<Fetched>, tx: &mpsc::Sender<Piece>) {
        let mut out = FileEncoder {
            work: self,
            tx,
            batch: Batch::default(),
            ends: Vec::new(),
            stopped: false,
            view: None,
            file: 0,
            name: Arc::from(""),
            integrity: None,
            pending_events: 0,
            rejects: 0,
            stand_ins: StandIns::default(),
            fast: 0,
            indices: BTreeMap::new(),
        };
        for Fetched {
            file,
            name,
            input,
            budget,
            ..
        } in group
        {
            if out.stopped {
                break;
            }
            let end = match input {
                Err(kind) => kind,
                // Stopped before it was begun: left for the next run.
                Ok(_) if self.cancel.is_cancelled() => FileKind::Unread,
                Ok(input) => {
                    out.begin(file, name);
                    self.run_file(input, &mut out)
                }
            };
            drop(budget);
            out.end(file, end);
        }
        out.send();
    }

    /// Decodes, transforms and encodes one file into `out`; returns how it ended.
    fn run_file(&self, input: Input, out: &mut FileEncoder) -> FileKind {
        let name = out.name.clone();
        let name = &*name;
        let input = match &self.integrity {
            Some(integrity) => match self.hashed(name, input, integrity) {
                Ok((input, stamp)) => {
                    out.integrity = stamp;
                    input
                }
                Err(kind) => return kind,
            },
            None => input,
        };
        let read = match input {
            Input::File(path) => match std::fs::File::open(&path) {
                Ok(file) => {
                    Stats::add(&self.stats.bytes_read, file.metadata().map(|m| m.len()).unwrap_or(0));
                    decode::stream::read_feed(Feed::file(file), out)
                }
                Err(e) => {
                    tracing::warn!("{name}: skipped: cannot read: {e}");
                    Stats::add(&self.stats.files_skipped, 1);
                    return FileKind::Unread;
                }
            },
            Input::Bytes(bytes) => {
                Stats::add(&self.stats.bytes_read, bytes.len() as u64);
                decode::stream::read_feed(Feed::bytes(bytes), out)
            }
            Input::Plain(content) => decode::stream::read_feed(Feed::bytes(content), out),
        };
        let finished = match read {
            Ok(finished) => finished,
            Err(DecodeError::Digest) => {
                tracing::debug!("{name}: digest file, skipped");
                Stats::add(&self.stats.files_digest, 1);
                return FileKind::Events;
            }
            Err(e) => {
                // Every skipped file is named: it is input the run did not take.
                tracing::warn!(target: "ctindex::input", "{name}: skipped: {e}");
                Stats::add(&self.stats.files_skipped, 1);
                return FileKind::Unusable;
            }
        };
        out.count_read();
        Stats::add(&self.stats.files_read, 1);
        if let (Some(counts), Some(stamp)) = (&self.integrity, out.integrity) {
            counts.count(stamp, finished.events as u64);
            if stamp == crate::verify::FAILED {
                tracing::warn!(
                    "{name}: does not match the hash its digest lists: its {} events are indexed with \
                     ctindex.integrity \"failed\"",
                    finished.events
                );
            }
        }
        let place = crate::source::layout::Place::of_file(name);
        self.stats.add_file(
            place.account.unwrap_or("other"),
            place.region.unwrap_or("other"),
            finished.events as u64,
            std::mem::take(&mut out.indices),
        );
        tracing::trace!("{name}: {} events, {} on the fast path", finished.events, out.fast);
        if let Some(why) = &finished.truncated {
            tracing::warn!(
                "{name}: incomplete, {} events before the break kept: {why}",
                finished.events
            );
            Stats::add(&self.stats.files_truncated, 1);
        }
        if out.rejects > REJECT_MESSAGES_PER_FILE {
            tracing::warn!(
                "{name}: {} more values skipped (see the dead-letter file)",
                out.rejects - REJECT_MESSAGES_PER_FILE
            );
        }
        Stats::add(&self.stats.events_without_id, out.stand_ins.without_id.len() as u64);
        Stats::add(&self.stats.events_undated, out.stand_ins.undated.len() as u64);
        for message in out.stand_ins.messages() {
            match crate::progress::input_warning(crate::progress::InputWarning::StandIns) {
                Some(more) => tracing::warn!(target: "ctindex::input", "{name}: {message}{more}"),
                None => tracing::debug!(target: "ctindex::input", "{name}: {message}"),
            }
        }
        FileKind::Events
    }
}

impl DecodeWork {
    /// `import --verify`: the stamp of the file's events, and the input to
    /// decode. A file a valid digest lists is uncompressed once, whole (log
    /// files are small), its SHA-256 taken over those bytes, and the
    /// uncompressed bytes decoded: the decoder does not uncompress it again,
    /// and the stamp is known before the first event is transformed.
    fn hashed(
        &self,
        name: &str,
        input: Input,
        integrity: &crate::verify::Integrity,
    ) -> Result<(Input, Option<&'static str>), FileKind> {
        if !integrity.wants_hash(name) {
            return Ok((input, Some(integrity.stamp(name, None))));
        }
        let bytes = match input {
            Input::Bytes(bytes) => bytes,
            Input::Plain(_) => return Ok((input, Some(integrity.stamp(name, None)))),
            Input::File(path) => match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::warn!("{name}: skipped: cannot read: {e}");
                    Stats::add(&self.stats.files_skipped, 1);
                    return Err(FileKind::Unread);
                }
            },
        };
        match crate::verify::gunzip(&bytes) {
            Ok(content) => {
                let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content));
                Stats::add(&self.stats.bytes_read, bytes.len() as u64);
                Ok((Input::Plain(content), Some(integrity.stamp(name, Some(&hash)))))
            }
            // Not whole: it cannot match its digest; the decoder keeps what it can.
            Err(_) => Ok((Input::Bytes(bytes), Some(integrity.stamp(name, Some(""))))),
        }
    }
}

/// Receives a group's values, file after file: events become documents in
/// `batch`, which is sent on as it fills; other values go to the
/// dead-letter file.
struct FileEncoder<'a> {
    work: &'a DecodeWork,
    tx: &'a mpsc::Sender<Piece>,
    batch: Batch,
    /// Files ended since the last piece was sent.
    ends: Vec<(u32, FileKind)>,
    /// The pipeline went away (a fatal error): nothing more is sent.
    stopped: bool,
    /// The fast path's parsed fields, reused from event to event.
    view: Option<Box<View>>,
    // The file being read:
    file: u32,
    name: Arc<str>,
    /// `import --verify`: the stamp of this file's events.
    integrity: Option<&'static str>,
    /// Events of this file in `batch`, counted as read once it is sent.
    pending_events: u64,
    rejects: usize,
    stand_ins: StandIns,
    /// Events that took the fast path (for -vv).
    fast: u64,
    /// Events per index (added to the run's counts at the end of the file).
    indices: BTreeMap<String, u64>,
}

impl FileEncoder<'_> {
    /// Starts on the next file of the group.
    fn begin(&mut self, file: u32, name: Arc<str>) {
        self.file = file;
        self.name = name;
        self.integrity = None;
        self.pending_events = 0;
        self.rejects = 0;
        self.stand_ins = StandIns::default();
        self.fast = 0;
        self.indices.clear();
    }

    /// The file's events so far count as read.
    fn count_read(&mut self) {
        Stats::add(&self.work.stats.events_read, self.pending_events);
        self.pending_events = 0;
    }

    /// A file of the group ended; its end goes with the next piece.
    fn end(&mut self, file: u32, kind: FileKind) {
        self.ends.push((file, kind));
    }

    fn add(&mut self, doc: &impl Document, position: decode::Position) {
        let record = match position {
            decode::Position::Record(i) => i as u32,
            decode::Position::Line(n) => n as u32,
            decode::Position::Whole => 0,
        };
        self.stand_ins.note(doc, position);
        if self.batch.body.capacity() == 0 {
            self.batch = Batch::with_capacity(PIECE_BYTES + PIECE_BYTES / 4);
        }
        let origin = Origin {
            file: self.file,
            record,
        };
        match &self.work.encoder {
            Some(encoder) => encoder.push(doc, &self.name, origin, &mut self.batch),
            None => {
                match self.indices.get_mut(doc.index()) {
                    Some(n) => *n += 1,
                    None => {
                        self.indices.insert(doc.index().to_string(), 1);
                    }
                }
                self.batch.push_doc(doc, origin);
                if let Some(unindexed) = &self.work.unindexed {
                    self.batch.add_payload(unindexed);
                }
            }
        }
        self.pending_events += 1;
        if self.batch.body.len() >= PIECE_BYTES {
            self.send();
        }
    }

    /// Sends the documents and ends so far on.
    fn send(&mut self) {
        self.count_read();
        let batch = std::mem::take(&mut self.batch);
        if (batch.is_empty() && self.ends.is_empty()) || self.stopped {
            batch.recycle();
            return;
        }
        let piece = Piece {
            batch,
            ends: std::mem::take(&mut self.ends),
        };
        self.stopped = self.tx.blocking_send(piece).is_err();
    }
}

impl decode::stream::Found for FileEncoder<'_> {
    fn text(&mut self, text: &[u8], whole: bool, position: decode::Position) -> Took {
        let watch = self.work.transformer.watch();
        let parsed = match whole {
            true => RawEvent::parse(text, watch).map(|raw| (text.len(), raw)),
            false => RawEvent::parse_at(text, watch),
        };
        let Some((len, raw)) = parsed else {
            return Took::Unread;
        };
        // Taken out while the document borrows them (a box and an Arc: no copy).
        let mut view = self.view.take().unwrap_or_default();
        let name = self.name.clone();
        let took = match self
            .work
            .transformer
            .apply_raw_stamped(&raw, &name, &mut view, self.integrity)
        {
            Some(doc) => {
                self.fast += 1;
                self.add(&doc, position);
                Took::Event(len)
            }
            None => Took::Value(len),
        };
        self.view = Some(view);
        took
    }

    fn event(&mut self, event: decode::Event, position: decode::Position) {
        let name = self.name.clone();
        let doc = self.work.transformer.apply_stamped(event, &name, self.integrity);
        self.add(&doc, position);
    }

    fn reject(&mut self, reject: decode::Reject) {
        let name = &*self.name;
        if self.rejects < REJECT_MESSAGES_PER_FILE {
            tracing::warn!("{name}: {}: skipped: {}", reject.position, reject.reason);
        }
        self.rejects += 1;
        let position = reject.position.to_string();
        let letter = Letter {
            reason: &reject.reason,
            source: name,
            position: &position,
            index: None,
            id: None,
        };
        if let Err(e) = self.work.dlq.write_value(&letter, reject.dead_letter_event().as_ref()) {
            tracing::error!("{e:#}");
        }
        Stats::add(&self.work.stats.events_skipped, 1);
    }
}

/// The pipeline against a real HTTP server answering from a script.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::sink::testing::{Harness, Reply, Server, ids};

    /// More than a few groups of files (see GROUP_FILES).
    const FILES: usize = 5 * GROUP_FILES;
    const EVENTS: usize = 3;

    /// FILES local CloudTrail files of EVENTS events each; ids `fNNN-eJ`.
    fn trail(dir: &std::path::Path) {
        for file in 0..FILES {
            let records: Vec<serde_json::Value> = (0..EVENTS)
                .map(|event| {
                    serde_json::json!({"eventVersion": "1.08", "eventID": format!("f{file:03}-e{event}"),
                        "eventTime": "2024-03-01T00:00:00Z", "eventSource": "s3.amazonaws.com",
                        "eventName": "GetObject", "awsRegion": "us-east-1"})
                })
                .collect();
            let text = serde_json::json!({ "Records": records }).to_string();
            std::fs::write(dir.join(format!("f{file:03}.json")), text).unwrap();
        }
    }

    fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// A pipeline into `output` with one of everything: one worker, one
    /// download, one request at a time, every event a batch of its own
    /// (tests change what they need).
    fn pipeline(output: Output, stats: Arc<Stats>, dlq: Arc<DeadLetters>, cancel: CancellationToken) -> Pipeline {
        let filter = crate::filter::FieldFilter::new(&[], &[], false).unwrap();
        Pipeline {
            transformer: Arc::new(Transformer::new(filter, "ct", crate::normalize::Limits::default())),
            output,
            stats,
            dlq,
            names: Arc::default(),
            options: Options {
                batch_bytes: 1,
                concurrency: 1,
                workers: 1,
                downloads: 1,
                unindexed: None,
                flush_idle: None,
                shard: None,
                integrity: None,
            },
            cancel,
            decoders: Arc::new(tokio::sync::Semaphore::new(1)),
            tracker: None,
            in_flight: Mutex::default(),
        }
    }

    /// Records what the pipeline says of each file.
    #[derive(Default)]
    struct Outcomes(Mutex<Vec<(String, FileOutcome)>>);

    impl Tracker for Outcomes {
        fn wanted(&self, _: &SourceObject) -> bool {
            true
        }
        fn done(&self, object: &SourceObject, outcome: FileOutcome) {
            self.0.lock().unwrap().push((object.name.to_string(), outcome));
        }
    }

    #[tokio::test]
    async fn files_sharing_pieces_each_end_as_they_should() {
        use std::io::Write;
        let input = tempfile::tempdir().unwrap();
        let mut expected = BTreeMap::new();
        let mut events = 0;
        // More files than a group holds; good, corrupt and foreign files interleaved.
        for file in 0..3 * GROUP_FILES + 5 {
            let name = format!("f{file:03}.json.gz");
            let bytes = match file % 10 {
                3 => b"\x1f\x8b\x08\x00 not gzip at all".to_vec(),
                7 => gzip(br#"{"foo": [1, 2, 3]}"#),
                _ => {
                    let n = file % 4 + 1;
                    events += n;
                    let records: Vec<serde_json::Value> = (0..n)
                        .map(|event| {
                            serde_json::json!({"eventVersion": "1.08", "eventID": format!("f{file:03}-e{event}"),
                                "eventTime": "2024-03-01T00:00:00Z", "eventSource": "s3.amazonaws.com",
                                "eventName": "GetObject", "awsRegion": "us-east-1"})
                        })
                        .collect();
                    gzip(serde_json::json!({ "Records": records }).to_string().as_bytes())
                }
            };
            let outcome = match file % 10 {
                3 | 7 => FileOutcome::Unusable,
                _ => FileOutcome::Indexed,
            };
            std::fs::write(input.path().join(&name), bytes).unwrap();
            expected.insert(name, outcome);
        }
        fn gzip(bytes: &[u8]) -> Vec<u8> {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(bytes).unwrap();
            encoder.finish().unwrap()
        }

        let dead = tempfile::tempdir().unwrap();
        let outcomes = Arc::new(Outcomes::default());
        let stats = Arc::new(Stats::default());
        let dlq = Arc::new(DeadLetters::new(dead.path().join("dead.ndjson")));
        let mut pipeline = pipeline(
            Output::DryRun { print: false },
            stats.clone(),
            dlq,
            CancellationToken::new(),
        );
        pipeline.options.batch_bytes = 2000;
        pipeline.options.concurrency = 2;
        pipeline.options.workers = 2;
        pipeline.options.downloads = 8;
        pipeline.decoders = Arc::new(tokio::sync::Semaphore::new(2));
        pipeline.tracker = Some(outcomes.clone());
        let source = Source::Local {
            path: input.path().to_path_buf(),
            selection: Arc::default(),
        };
        pipeline.run(vec![source]).await.unwrap();

        let mut told = BTreeMap::new();
        for (name, outcome) in outcomes.0.lock().unwrap().iter() {
            let file = name.rsplit('/').next().unwrap().to_string();
            assert!(told.insert(file, *outcome).is_none(), "{name} was reported twice");
        }
        assert_eq!(told, expected);
        let good = expected.values().filter(|o| **o == FileOutcome::Indexed).count() as u64;
        assert_eq!(count(&stats.files_read), good);
        assert_eq!(count(&stats.files_skipped), expected.len() as u64 - good);
        assert_eq!(count(&stats.events_read), events as u64);
        assert_eq!(count(&stats.encoded), events as u64);
    }

    #[tokio::test]
    async fn a_fatal_error_ends_the_run_while_the_listing_stays_open() {
        let input = tempfile::tempdir().unwrap();
        trail(input.path());
        // Every bulk request refused for good: the sink gives up at once.
        let server = Server::start(Box::new(|_, _| Reply::status(403))).await;
        let harness = Harness::new(&server, Duration::from_secs(60), 1, CancellationToken::new()).await;
        let output = Output::Bulk(harness.sink.clone());
        let mut pipeline = pipeline(output, harness.stats.clone(), harness.dlq.clone(), harness.stop.clone());
        // As `follow` runs it.
        pipeline.options.flush_idle = Some(Duration::from_millis(50));
        // Like `follow`'s queue: one object listed, and the listing kept open.
        let (listed_tx, listed_rx) = mpsc::channel(4);
        let path = input.path().join("f000.json");
        let object = SourceObject {
            name: Arc::from(path.to_string_lossy().as_ref()),
            size: std::fs::metadata(&path).unwrap().len(),
            version: String::new(),
            location: Location::File(path),
        };
        listed_tx.send(Listed::Object(object)).await.unwrap();
        let ran = tokio::time::timeout(Duration::from_secs(30), pipeline.run_listed(listed_rx))
            .await
            .expect("the run did not end after a fatal error while the listing stayed open");
        let error = ran.expect_err("a refused bulk request is a fatal error");
        assert!(format!("{error:#}").contains("refused"), "{error:#}");
        // The refused batch is dead-lettered with the reason (the rest of
        // the file is not done, so a later run reads it again).
        let letters = harness.letters();
        assert!(!letters.is_empty());
        assert!(
            letters.iter().all(|(_, reason)| reason.contains("refused")),
            "{letters:?}"
        );
        drop(listed_tx);
    }

    #[tokio::test]
    async fn a_stop_while_the_queues_are_full_loses_nothing_and_reads_no_more() {
        let input = tempfile::tempdir().unwrap();
        trail(input.path());
        let stop = CancellationToken::new();
        let stopping = stop.clone();
        // One request at a time, each slow: the readers fill the queues
        // behind the first, and the stop comes with the second.
        let server = Server::start(Box::new(move |n, body| {
            if n == 1 {
                stopping.cancel();
            }
            Reply {
                delay: Duration::from_millis(300),
                ..Reply::all_created(body)
            }
        }))
        .await;
        let harness = Harness::new(&server, Duration::from_secs(60), 1, stop.clone()).await;
        // Every event is a batch of its own: the queue of batches fills at once.
        let output = Output::Bulk(harness.sink.clone());
        let pipeline = pipeline(output, harness.stats.clone(), harness.dlq.clone(), stop);
        let source = Source::Local {
            path: input.path().to_path_buf(),
            selection: Arc::default(),
        };
        tokio::time::timeout(Duration::from_secs(60), pipeline.run(vec![source]))
            .await
            .expect("the pipeline did not end after the stop")
            .expect("a stop is not an error");

        let stats = &harness.stats;
        let files = count(&stats.files_read);
        // At least the first file (whose group may hold only it), never all.
        assert!((1..FILES as u64).contains(&files), "{files} files read of {FILES}");
        // Every event read was sent, once, and acknowledged; none dead-lettered.
        let sent: Vec<String> = server.bulks().iter().flat_map(|b| ids(b)).collect();
        let mut by_file: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &sent {
            *by_file.entry(&id[..4]).or_default() += 1;
        }
        assert_eq!(sent.len() as u64, count(&stats.events_read));
        assert_eq!(count(&stats.created), count(&stats.events_read));
        assert_eq!(count(&stats.failed), 0);
        assert!(harness.letters().is_empty());
        // Files are sent whole: those begun before the stop are finished, no other is begun.
        assert_eq!(by_file.len() as u64, files, "{by_file:?}");
        assert!(by_file.values().all(|n| *n == EVENTS), "{by_file:?}");
    }
}
