//! Following a queue: SQS messages that announce new log files become
//! objects for the [`Pipeline`], and a message is deleted once every event
//! of every object it names is settled.
//!
//! Owns the book of messages in flight (which objects each waits for), the
//! receive loop (long polling, at most `max_messages` held at once), the
//! settling of messages (deleted when all their objects are indexed; left
//! to come back, and past the queue's `maxReceiveCount` to its dead-letter
//! queue, when one could not be read), the extension of their visibility
//! while their objects are in flight, the status line, and the stop:
//! receiving stops, what is in flight is finished within `stop_timeout`,
//! and what will not be finished is made visible again at once.
//!
//! Several followers on one queue need nothing else: SQS hands each message
//! to one of them at a time, and a message handed out twice (after a crash,
//! or a visibility that ran out) only indexes the same events again under
//! the same ids (eventIDs).
//!
//! Invariant: a message is deleted only after the pipeline reported each of
//! its objects done as indexed (every event acknowledged by the cluster or
//! dead-lettered); passed-over objects (digests, keys outside the layout,
//! S3's test event) need nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::pipeline::{FileOutcome, Pipeline, Tracker};
use crate::progress::Stats;
use crate::retry::{Policy, Retrier};
use crate::source::notification::{self, Notice};
use crate::source::s3::S3;
use crate::source::sqs::{self, Queue, Received};
use crate::source::{Listed, Location, Selection, SourceObject};

/// How a follow runs.
pub struct Settings {
    pub queue: Queue,
    pub s3: Arc<S3>,
    /// `--accounts`, `--regions`: other objects are passed over.
    pub selection: Arc<Selection>,
    /// Messages held (received, not yet deleted or released) at once.
    pub max_messages: usize,
    /// Long-polling wait of one receive (at most 20 s).
    pub wait_seconds: u32,
    /// Visibility timeout of received messages (default: the queue's).
    pub visibility: Option<u32>,
    /// `--until-empty`: stop once nothing came for this long and nothing is held.
    pub until_empty: Option<Duration>,
    /// `--max-received`: stop receiving after this many messages.
    pub stop_after: Option<u64>,
    /// After a stop, what is not finished by then is released.
    pub stop_timeout: Duration,
    /// Between status lines.
    pub status_interval: Duration,
}

/// What a follow did with messages, for the status line and the summary.
#[derive(Debug, Default)]
pub struct Counts {
    pub received: AtomicU64,
    /// Deleted: every object named is indexed, or nothing was to be read.
    pub deleted: AtomicU64,
    /// Left to come back: an object named could not be read (missing,
    /// unreadable, unusable) or the body is no notification.
    pub failed: AtomicU64,
    /// Made visible again at a stop, unfinished.
    pub released: AtomicU64,
    /// Objects named and sent to be read.
    pub objects: AtomicU64,
    /// Objects named and passed over (digests, outside the layout or the
    /// selection, S3's test event, removals).
    pub passed: AtomicU64,
    /// How long after it was sent the last message was received (ms).
    pub last_lag_ms: AtomicU64,
}

impl Counts {
    /// The counters, for `--summary-json`.
    pub fn to_json(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "messages_received": g(&self.received),
            "messages_deleted": g(&self.deleted),
            "messages_failed": g(&self.failed),
            "messages_released": g(&self.released),
            "objects": g(&self.objects),
            "objects_passed": g(&self.passed),
        })
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A message held until its objects are done.
struct Held {
    id: String,
    receipt: String,
    receive_count: u32,
    /// Objects not yet done.
    pending: usize,
    /// What could not be read, if anything did not.
    failed: Option<String>,
    /// Its room among `max_messages`.
    _room: OwnedSemaphorePermit,
}

/// What to do with a message whose objects are all done.
enum Settled {
    Delete {
        receipt: String,
    },
    Failed {
        receipt: String,
    },
    /// No more will come.
    End,
}

#[derive(Default)]
struct Inner {
    next: u64,
    held: HashMap<u64, Held>,
    /// Object name → the messages waiting for it.
    waiting: HashMap<Arc<str>, Vec<u64>>,
}

/// The messages in flight; the pipeline's [`Tracker`].
pub struct Book {
    inner: Mutex<Inner>,
    settled: mpsc::UnboundedSender<Settled>,
    max_receive_count: Option<u32>,
}

impl Book {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds `message` until `objects` are done; the objects not already
    /// in flight for another message, to send to the pipeline.
    fn hold(&self, message: &Received, objects: Vec<SourceObject>, room: OwnedSemaphorePermit) -> Vec<SourceObject> {
        let mut inner = self.lock();
        let n = inner.next;
        inner.next += 1;
        let mut new = Vec::new();
        let mut pending = 0;
        for object in objects {
            let waiters = inner.waiting.entry(object.name.clone()).or_default();
            if waiters.contains(&n) {
                continue; // named twice in one message
            }
            if waiters.is_empty() {
                new.push(object);
            }
            waiters.push(n);
            pending += 1;
        }
        inner.held.insert(
            n,
            Held {
                id: message.id.clone(),
                receipt: message.receipt.clone(),
                receive_count: message.receive_count,
                pending,
                failed: None,
                _room: room,
            },
        );
        new
    }

    fn is_empty(&self) -> bool {
        self.lock().held.is_empty()
    }

    /// The receipts of every message held.
    fn receipts(&self) -> Vec<String> {
        self.lock().held.values().map(|h| h.receipt.clone()).collect()
    }

    /// Takes every message still held (at the end), with their receipts.
    fn take_all(&self) -> Vec<String> {
        let mut inner = self.lock();
        inner.waiting.clear();
        inner.held.drain().map(|(_, h)| h.receipt).collect()
    }
}

impl Tracker for Book {
    fn wanted(&self, _object: &SourceObject) -> bool {
        true
    }

    fn done(&self, object: &SourceObject, outcome: FileOutcome) {
        let mut inner = self.lock();
        let Some(numbers) = inner.waiting.remove(&object.name) else {
            return;
        };
        for n in numbers {
            let Some(held) = inner.held.get_mut(&n) else {
                continue;
            };
            held.pending = held.pending.saturating_sub(1);
            let why = match outcome {
                FileOutcome::Indexed => None,
                FileOutcome::Unusable => Some("cannot be used (see the warning above)"),
                FileOutcome::Unreadable => Some("could not be read"),
                FileOutcome::Missing => Some("is not in the bucket"),
            };
            if let Some(why) = why {
                held.failed = Some(format!("{} {why}", object.name));
            }
            if held.pending > 0 {
                continue;
            }
            let Some(held) = inner.held.remove(&n) else {
                continue;
            };
            let settled = match held.failed {
                None => Settled::Delete { receipt: held.receipt },
                Some(what) => {
                    let redrive = match self.max_receive_count {
                        Some(max) => format!(
                            "received {} time(s); after {max} the queue's redrive policy moves it to the dead-letter queue",
                            held.receive_count
                        ),
                        None => format!(
                            "received {} time(s); the queue has no redrive policy, so it comes back until it is read",
                            held.receive_count
                        ),
                    };
                    tracing::warn!(
                        "message {}: not deleted, it comes back after its visibility timeout: {what} ({redrive})",
                        held.id
                    );
                    Settled::Failed { receipt: held.receipt }
                }
            };
            let _ = self.settled.send(settled);
        }
    }
}

/// Follows the queue until a stop (Ctrl-C, SIGTERM), `--until-empty`,
/// `--max-received`, or a fatal error of the pipeline. `make` builds the
/// pipeline with the tracker it is given.
pub async fn follow(
    settings: Settings,
    make: impl FnOnce(Option<Arc<dyn Tracker>>) -> Pipeline,
    cancel: CancellationToken,
    stats: Arc<Stats>,
    counts: Arc<Counts>,
) -> Result<()> {
    let queue = settings.queue.clone();
    let attributes = queue.attributes().await?;
    let visibility = settings
        .visibility
        .or(attributes.visibility_timeout)
        .unwrap_or(30)
        .max(2);
    match attributes.max_receive_count {
        Some(max) => tracing::info!(
            "following {}: {} message(s) waiting, visibility timeout {visibility} s, redrive after {max} receives",
            queue.url,
            attributes.waiting
        ),
        None => tracing::warn!(
            "following {}: {} message(s) waiting, visibility timeout {visibility} s; the queue has no redrive \
             policy, so a message naming an object that cannot be read comes back forever (set one with a \
             dead-letter queue and maxReceiveCount)",
            queue.url,
            attributes.waiting
        ),
    }

    let (settled_tx, settled_rx) = mpsc::unbounded_channel();
    let book = Arc::new(Book {
        inner: Mutex::default(),
        settled: settled_tx.clone(),
        max_receive_count: attributes.max_receive_count,
    });
    let pipeline = make(Some(book.clone()));
    let settler = tokio::spawn(settle(queue.clone(), settled_rx, counts.clone(), cancel.clone()));
    let extender = tokio::spawn(extend(queue.clone(), book.clone(), visibility));
    let status = tokio::spawn(status(
        queue.clone(),
        counts.clone(),
        stats.clone(),
        settings.status_interval,
    ));

    // Objects to read; a message's objects wait here when the readers are busy.
    let (listed_tx, listed_rx) = mpsc::channel::<Listed>(sqs::BATCH);
    // Set when the pipeline ends (a fatal error): receiving stops.
    let (ended_tx, ended_rx) = watch::channel(false);
    let run = async {
        let ran = pipeline.run_listed(listed_rx).await;
        let _ = ended_tx.send(true);
        ran
    };
    let receiving = receive(&settings, visibility, &book, listed_tx, ended_rx, &cancel, &counts);
    let work = async { tokio::join!(run, receiving).0 };
    let stop_bound = async {
        cancel.cancelled().await;
        tokio::time::sleep(settings.stop_timeout).await;
    };
    let result = tokio::select! {
        // Finished: the input ended (a stop, --until-empty) and what was in flight is settled.
        result = work => result,
        // Stopped, and still not finished after --stop-timeout: what is left is released below.
        _ = stop_bound => {
            tracing::warn!(
                "stopping: not finished after {} s; what is still in flight is released for another worker",
                settings.stop_timeout.as_secs()
            );
            Ok(())
        }
    };
    extender.abort();
    status.abort();
    let _ = settled_tx.send(Settled::End);
    let _ = settler.await;
    let unfinished = book.take_all();
    if !unfinished.is_empty() {
        match queue.set_visibility(&unfinished, 0).await {
            Ok(_) => {
                tracing::info!("{} unfinished message(s) released to the queue", unfinished.len());
                Counts::add(&counts.released, unfinished.len() as u64);
            }
            Err(e) => tracing::warn!("{e:#} (they come back after their visibility timeout)"),
        }
    }
    tracing::info!(
        "follow: {} message(s) received, {} deleted, {} failed, {} released; {} object(s) read, {} passed over",
        counts.received.load(Ordering::Relaxed),
        counts.deleted.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        counts.released.load(Ordering::Relaxed),
        counts.objects.load(Ordering::Relaxed),
        counts.passed.load(Ordering::Relaxed),
    );
    result
}

/// Receives messages while there is room, and hands their objects on.
async fn receive(
    settings: &Settings,
    visibility: u32,
    book: &Book,
    listed_tx: mpsc::Sender<Listed>,
    mut ended: watch::Receiver<bool>,
    cancel: &CancellationToken,
    counts: &Counts,
) {
    let room = Arc::new(Semaphore::new(settings.max_messages.max(1)));
    let wait = match settings.until_empty {
        Some(idle) => settings.wait_seconds.min(idle.as_secs().max(1) as u32),
        None => settings.wait_seconds,
    };
    let mut idle_since: Option<Instant> = None;
    // The SDK already retried each receive (Policy::AWS); past that, a
    // follower waits and tries again for as long as it runs.
    let mut retrier = Retrier::new(Policy::QUEUE);
    loop {
        if settings
            .stop_after
            .is_some_and(|n| counts.received.load(Ordering::Relaxed) >= n)
        {
            break;
        }
        let first = tokio::select! {
            // Ctrl-C / SIGTERM: receive no more.
            _ = cancel.cancelled() => break,
            // The pipeline ended (a fatal error): nothing more can be read.
            _ = ended.changed() => break,
            // Room for at least one more message.
            room = room.clone().acquire_owned() => match room {
                Ok(room) => room,
                Err(_) => break,
            },
        };
        let mut rooms = vec![first];
        let mut max = sqs::BATCH;
        if let Some(n) = settings.stop_after {
            max = max.min(n.saturating_sub(counts.received.load(Ordering::Relaxed)) as usize);
        }
        while rooms.len() < max {
            match room.clone().try_acquire_owned() {
                Ok(r) => rooms.push(r),
                Err(_) => break,
            }
        }
        let got = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ended.changed() => break,
            got = settings.queue.receive(rooms.len(), wait, visibility) => got,
        };
        let messages = match got {
            Ok(messages) => {
                retrier = Retrier::new(Policy::QUEUE);
                messages
            }
            Err(e) => {
                let pause = retrier.again().unwrap_or(Policy::QUEUE.max_pause);
                tracing::warn!("{e:#} (trying again in {} s)", pause.as_secs());
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
        };
        if messages.is_empty() {
            if let Some(idle) = settings.until_empty {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= idle && book.is_empty() {
                    tracing::info!("--until-empty: no message for {} s, nothing in flight", idle.as_secs());
                    break;
                }
            }
            continue;
        }
        idle_since = None;
        for message in messages {
            let room = rooms.pop();
            let objects = take(settings, &message, counts, book);
            let Some(room) = room.filter(|_| !objects.is_empty()) else {
                continue;
            };
            for object in book.hold(&message, objects, room) {
                Counts::add(&counts.objects, 1);
                tokio::select! {
                    // Stopped while the readers were busy: the message is released at the end.
                    _ = cancel.cancelled() => break,
                    sent = listed_tx.send(Listed::Object(object)) => if sent.is_err() { break },
                }
            }
        }
    }
}

/// Reads one message: its objects to read (empty when there are none,
/// in which case it is already settled).
fn take(settings: &Settings, message: &Received, counts: &Counts, book: &Book) -> Vec<SourceObject> {
    Counts::add(&counts.received, 1);
    if let Some(sent) = message.sent_ms {
        counts
            .last_lag_ms
            .store(sqs::age(sent).as_millis() as u64, Ordering::Relaxed);
    }
    let notification = match notification::parse(&message.body) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(
                "message {}: {e}; left to come back (and, with a redrive policy, to go to the dead-letter queue)",
                message.id
            );
            Counts::add(&counts.failed, 1);
            return Vec::new();
        }
    };
    for passed in &notification.passed {
        tracing::info!("message {}: {} passed over: {}", message.id, passed.what, passed.why);
    }
    Counts::add(&counts.passed, notification.passed.len() as u64);
    let mut objects = Vec::new();
    for Notice { bucket, key, size } in notification.notices {
        if !settings.selection.wants_file(&key) {
            tracing::info!(
                "message {}: s3://{bucket}/{key} passed over: not in --accounts/--regions",
                message.id
            );
            Counts::add(&counts.passed, 1);
            continue;
        }
        objects.push(SourceObject {
            name: format!("s3://{bucket}/{key}").into(),
            // Unknown for CloudTrail's notifications: the download then takes
            // the least of the bytes budget (downloads are bounded in number too).
            size: size.unwrap_or(0),
            version: String::new(),
            location: Location::S3 {
                s3: settings.s3.clone(),
                bucket,
                key,
            },
        });
    }
    if objects.is_empty() {
        // Nothing to read: done with at once.
        let _ = book.settled.send(Settled::Delete {
            receipt: message.receipt.clone(),
        });
    }
    objects
}

/// Deletes settled messages, up to ten per request, as they come; counts
/// the failed ones (left to come back, or released at once after a stop).
async fn settle(
    queue: Queue,
    mut rx: mpsc::UnboundedReceiver<Settled>,
    counts: Arc<Counts>,
    cancel: CancellationToken,
) {
    let mut end = false;
    while !end {
        let Some(first) = rx.recv().await else { break };
        let mut batch = vec![first];
        while batch.len() < sqs::BATCH {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        let (mut deletes, mut releases) = (Vec::new(), Vec::new());
        for settled in batch {
            match settled {
                Settled::Delete { receipt } => deletes.push(receipt),
                Settled::Failed { receipt } => {
                    Counts::add(&counts.failed, 1);
                    // Stopping: back to the queue at once, for another worker.
                    if cancel.is_cancelled() {
                        releases.push(receipt);
                    }
                }
                Settled::End => end = true,
            }
        }
        if !deletes.is_empty() {
            match queue.delete(&deletes).await {
                Ok(failed) => {
                    Counts::add(&counts.deleted, (deletes.len() - failed.len()) as u64);
                    for (_, why) in failed {
                        tracing::warn!(
                            "a settled message could not be deleted ({why}); it comes back and is indexed again \
                             under the same ids"
                        );
                    }
                }
                Err(e) => tracing::warn!(
                    "{e:#}; {} settled message(s) come back and are indexed again under the same ids",
                    deletes.len()
                ),
            }
        }
        if !releases.is_empty() {
            let _ = queue.set_visibility(&releases, 0).await;
        }
    }
}

/// Keeps the messages held invisible to other workers while their objects
/// are in flight: every third of the visibility timeout, it starts again
/// (on a fixed beat: a slow answer does not push the next extension back).
async fn extend(queue: Queue, book: Arc<Book>, visibility: u32) {
    let every = Duration::from_millis(u64::from(visibility) * 1000 / 3);
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        beat.tick().await;
        let receipts = book.receipts();
        if receipts.is_empty() {
            continue;
        }
        match queue.set_visibility(&receipts, visibility).await {
            Ok(0) => tracing::debug!("visibility of {} message(s) extended", receipts.len()),
            Ok(n) => tracing::debug!("visibility of {n} of {} message(s) not extended", receipts.len()),
            Err(e) => tracing::warn!("{e:#}"),
        }
    }
}

/// A status line every `interval`.
async fn status(queue: Queue, counts: Arc<Counts>, stats: Arc<Stats>, interval: Duration) {
    let mut events_before = 0;
    let mut at = Instant::now();
    loop {
        tokio::time::sleep(interval).await;
        let events = Stats::get(&stats.events_read);
        let rate = (events - events_before) as f64 / at.elapsed().as_secs_f64().max(0.001);
        events_before = events;
        at = Instant::now();
        let depth = match queue.attributes().await {
            Ok(a) => format!("queue: {} waiting, {} in flight", a.waiting, a.in_flight),
            Err(e) => format!("queue depth unknown ({e:#})"),
        };
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            "follow: {} received, {} deleted, {} failed; {} objects; {rate:.0} events/s; {depth}; last message \
             received {:.1} s after it was sent",
            g(&counts.received),
            g(&counts.deleted),
            g(&counts.failed),
            g(&counts.objects),
            g(&counts.last_lag_ms) as f64 / 1000.0,
        );
    }
}
