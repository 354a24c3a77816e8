//! The sink: bulk requests to Elasticsearch or OpenSearch, until every item
//! is either acknowledged or dead-lettered.
//!
//! [`client`] holds the connection, [`bulk`] the NDJSON body and the reading
//! of answers, [`crate::retry`] the policy, [`limit`] the adaptive concurrency,
//! [`template`] the index template. This file is the send loop: one batch in;
//! retries of the items that failed with 429/5xx, halving on 413, dead
//! letters for permanent item errors.
//!
//! Invariant: when [`Sink::send`] returns `Ok`, every item of the batch is
//! acknowledged by the cluster or written to the dead-letter file; when it
//! returns `Err` (auth failure, cluster unreachable past the retry budget),
//! the items not acknowledged are dead-lettered too. After a stop (Ctrl-C,
//! SIGTERM) retries get at most [`RETRY_BUDGET_AFTER_STOP`] more; after a
//! fatal error ([`Sink::abandon`]) batches still in flight are dead-lettered
//! without being sent.

pub mod bulk;
pub mod client;
pub mod freeform;
pub mod limit;
pub mod restamp;
pub mod retention;
pub mod template;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::http::Method;
use anyhow::{Result, bail};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::dlq::{DeadLetters, Letter, Letters};
use crate::progress::Stats;
use crate::retry::{Next, Policy, Retrier};
use bulk::{Batch, ItemOutcome};
use client::Cluster;
use limit::{Change, Limiter, Signal};

/// Once the run is asked to stop, a failing batch is retried for at most
/// this long more (or the rest of its `--retry-budget`, if shorter), then
/// dead-lettered: stopping must not take the whole budget.
pub const RETRY_BUDGET_AFTER_STOP: Duration = Duration::from_secs(20);

/// Bulk path: the answer is cut down to what the item-by-item reading needs.
const BULK_PATH: &str = "/_bulk?filter_path=errors,items.*.status,items.*.result,items.*.error";

/// Names of the files in flight, by their number in the run, for messages
/// and dead letters. Entries are removed when a file is done, so memory
/// follows the files in flight, not the files of the run.
#[derive(Debug, Default)]
pub struct FileNames(Mutex<HashMap<u32, Arc<str>>>);

impl FileNames {
    pub fn insert(&self, file: u32, name: Arc<str>) {
        self.lock().insert(file, name);
    }

    pub fn get(&self, file: u32) -> Arc<str> {
        self.lock().get(&file).cloned().unwrap_or_else(|| Arc::from("?"))
    }

    pub fn remove(&self, file: u32) {
        self.lock().remove(&file);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<str>>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A batch dead-lettered without a verdict of the cluster, because the run
/// is stopping (a stop, or a fatal error elsewhere): not a failure of its
/// own, but its files are not done (a sync reads them again).
#[derive(Debug, thiserror::Error)]
#[error("dead-lettered unsent because the run is stopping")]
pub struct Unsent;

/// Sends batches, retrying within a time budget.
pub struct Sink {
    cluster: Cluster,
    dlq: Arc<DeadLetters>,
    stats: Arc<Stats>,
    names: Arc<FileNames>,
    /// How long one batch may keep being retried before its items are given up.
    retry_budget: Duration,
    /// Bulk requests on the wire at once, lowered when the cluster pushes back.
    limiter: Limiter,
    /// The run's stop (Ctrl-C, SIGTERM, a lost lease): shortens retries.
    stop: CancellationToken,
    /// When the sink heard of the stop: retries get [`RETRY_BUDGET_AFTER_STOP`]
    /// from then on. Noted as soon as it comes while a request is in flight
    /// or a retry waits (see [`Sink::noting_stop`]).
    stopped_at: OnceLock<Instant>,
    /// Cancelled by [`Sink::abandon`] after a fatal error, with its reason.
    abandoned: CancellationToken,
    abandon_reason: OnceLock<String>,
}

impl Sink {
    /// A sink with at most `concurrency` bulk requests in flight.
    pub fn new(
        cluster: Cluster,
        dlq: Arc<DeadLetters>,
        stats: Arc<Stats>,
        names: Arc<FileNames>,
        retry_budget: Duration,
        concurrency: usize,
        stop: CancellationToken,
    ) -> Self {
        Sink {
            cluster,
            dlq,
            stats,
            names,
            retry_budget,
            limiter: Limiter::new(concurrency),
            stop,
            stopped_at: OnceLock::new(),
            abandoned: CancellationToken::new(),
            abandon_reason: OnceLock::new(),
        }
    }

    /// The concurrency limit, for the summary.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// After a fatal error: batches in flight and arriving later are
    /// dead-lettered with `reason` instead of being sent or retried.
    pub fn abandon(&self, reason: String) {
        let _ = self.abandon_reason.set(reason);
        self.abandoned.cancel();
    }

    /// The next batch to send, or None once the channel is closed or the
    /// sink is abandoned.
    pub async fn next_batch(&self, rx: &mut mpsc::Receiver<Batch>) -> Option<Batch> {
        tokio::select! {
            // Abandoned: take no more batches, even when more are coming.
            _ = self.abandoned.cancelled() => None,
            // The next batch, or the end of the input.
            batch = rx.recv() => batch,
        }
    }

    /// Sends one batch until every item is acknowledged or dead-lettered.
    /// [`Unsent`] when it was dead-lettered because the run is stopping.
    pub async fn send(&self, batch: Batch) -> Result<()> {
        let deadline = Instant::now() + self.retry_budget;
        let mut pending = vec![batch];
        while let Some(batch) = pending.pop() {
            self.send_one(batch, deadline, &mut pending).await?;
        }
        Ok(())
    }

    async fn send_one(&self, mut batch: Batch, deadline: Instant, pending: &mut Vec<Batch>) -> Result<()> {
        let mut retrier = Retrier::new(Policy::BULK);
        loop {
            if let Some(reason) = self.abandon_reason.get() {
                self.dead_letter_all(&batch, &format!("not sent: the run stopped on an error: {reason}"))
                    .await?;
                return Err(Unsent.into());
            }
            let body = Bytes::from(std::mem::take(&mut batch.body));
            Stats::add(&self.stats.bulk_bytes, body.len() as u64);
            Stats::add(&self.stats.batches, 1);
            let answer = self
                .noting_stop(async {
                    // Held only for the call: a batch pausing before a retry leaves its slot to others.
                    let _permit = self.limiter.acquire().await;
                    self.cluster.send(Method::POST, BULK_PATH, Some(body.clone())).await
                })
                .await;
            batch.body = Vec::from(body);

            let (failure, signal, pause) = match answer {
                Ok(response) => match bulk::read_response(&response, batch.len()) {
                    Ok(outcomes) => {
                        let retry = self.settle(&batch, outcomes);
                        self.post(retry.letters).await?;
                        if let Some(reason) = retry.fatal {
                            self.dead_letter_all(&retry.batch, &reason).await?;
                            bail!("{reason}");
                        }
                        if retry.batch.is_empty() {
                            self.adapt(Signal::Clean, "");
                            batch.recycle();
                            return Ok(());
                        }
                        batch = retry.batch;
                        let signal = if retry.pushback {
                            Signal::Pushback
                        } else {
                            Signal::Neutral
                        };
                        // Items refused for now: the policy's pause, as for a busy cluster.
                        (retry.reason, signal, retrier.again().unwrap_or(Policy::BULK.max_pause))
                    }
                    Err(e) => (
                        e.to_string(),
                        Signal::Neutral,
                        retrier.again().unwrap_or(Policy::BULK.max_pause),
                    ),
                },
                Err(error) => match retrier.next(&error.answer()) {
                    Next::Split if batch.len() > 1 => {
                        let (left, right) = batch.split();
                        tracing::debug!(
                            "bulk request of {} items too large (413): splitting",
                            left.len() + right.len()
                        );
                        pending.push(right);
                        pending.push(left);
                        return Ok(());
                    }
                    Next::Split => {
                        self.dead_letter_all(&batch, "the cluster refused the request as too large (413)")
                            .await?;
                        return Ok(());
                    }
                    Next::Retry(pause) => (error.to_string(), Signal::Pushback, pause),
                    Next::GiveUp(_) => {
                        let reason = format!("the cluster refused the bulk request: {error}");
                        self.dead_letter_all(&batch, &reason).await?;
                        let hint = match error.status() {
                            Some(403) => {
                                " (the credentials need the index and create_index privileges on the target indices)"
                            }
                            _ => "",
                        };
                        bail!("{reason}{hint}");
                    }
                },
            };
            self.adapt(signal, &failure);

            let stopped_at = self.stopped_at();
            let deadline = match stopped_at {
                Some(at) => deadline.min(at + RETRY_BUDGET_AFTER_STOP),
                None => deadline,
            };
            if Instant::now() + pause > deadline {
                if stopped_at.is_some() {
                    let reason = format!("interrupted while retrying (attempt {}): {failure}", retrier.attempts());
                    tracing::warn!(
                        "stopping: a bulk request of {} items still failing is dead-lettered (a rerun indexes it): {failure}",
                        batch.len()
                    );
                    self.dead_letter_all(&batch, &reason).await?;
                    return Err(Unsent.into());
                }
                let reason = format!("still failing after {} attempts: {failure}", retrier.attempts());
                self.dead_letter_all(&batch, &reason).await?;
                bail!(
                    "giving up on a bulk request of {} items after {} attempts ({}s retry budget, see --retry-budget): {failure}",
                    batch.len(),
                    retrier.attempts(),
                    self.retry_budget.as_secs()
                );
            }
            tracing::warn!(
                "bulk request of {} items failed (attempt {}), retrying in {:.1}s: {failure}",
                batch.len(),
                retrier.attempts(),
                pause.as_secs_f64()
            );
            Stats::add(&self.stats.retries, 1);
            tokio::select! {
                // The pause before the next attempt.
                _ = tokio::time::sleep(pause) => {}
                // A stop cuts the pause short: one more attempt, now, within the shortened budget.
                _ = self.stop.cancelled(), if stopped_at.is_none() => self.note_stop(),
                // Abandoned: the loop's first check dead-letters the batch.
                _ = self.abandoned.cancelled() => {}
            }
        }
    }

    /// Runs `work` to its end; a stop heard meanwhile is noted with its time
    /// (the work itself is not cut short: what is in flight is finished).
    async fn noting_stop<T>(&self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        tokio::select! {
            // The work is done before any stop.
            out = &mut work => out,
            // A stop (or one that came before): note when, then finish the work.
            _ = self.stop.cancelled() => {
                self.note_stop();
                work.await
            }
        }
    }

    fn note_stop(&self) {
        self.stopped_at.get_or_init(Instant::now);
    }

    /// When the sink heard of the run's stop, if there is one.
    fn stopped_at(&self) -> Option<Instant> {
        self.stop
            .is_cancelled()
            .then(|| *self.stopped_at.get_or_init(Instant::now))
    }

    /// Feeds an answer to the concurrency limit and logs a change.
    fn adapt(&self, signal: Signal, failure: &str) {
        match self.limiter.record(signal) {
            Some(Change::Down { from, to }) => {
                tracing::warn!("the cluster pushes back: {from} -> {to} bulk requests at once ({failure})");
            }
            Some(Change::Up { from, to }) if to == self.limiter.max() => {
                tracing::info!("the cluster keeps up again: {from} -> {to} bulk requests at once");
            }
            Some(Change::Up { from, to }) => {
                tracing::debug!("{from} -> {to} bulk requests at once");
            }
            None => {}
        }
    }

    /// Counts acknowledged items, makes the letters of rejected ones and
    /// returns the items to retry with the last retry reason.
    fn settle(&self, batch: &Batch, outcomes: Vec<ItemOutcome>) -> RetryBatch {
        let mut retry = RetryBatch::default();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                ItemOutcome::Created => Stats::add(&self.stats.created, 1),
                ItemOutcome::Updated => Stats::add(&self.stats.updated, 1),
                ItemOutcome::Retry(reason) => {
                    retry.batch.push_item_from(batch, i);
                    retry.reason = reason;
                    retry.pushback = true;
                }
                ItemOutcome::Fatal(reason) => {
                    self.letter(&mut retry.letters, batch, i, &reason);
                    retry.fatal = Some(reason);
                }
                ItemOutcome::Reject(reason) => {
                    let name = self.names.get(batch.items[i].origin.file);
                    let record = batch.items[i].origin.record;
                    match quarantined_doc(batch, i, &reason) {
                        Some(doc_line) => {
                            tracing::warn!(
                                "{name}: record {record}: the cluster could not parse the event ({reason}); \
                                 sending it again with its unknown fields in ctindex.overflow"
                            );
                            retry.batch.push_replaced(batch, i, &doc_line);
                            retry.reason = reason;
                        }
                        None => {
                            tracing::warn!("{name}: record {record}: the cluster rejected the event: {reason}");
                            self.letter(&mut retry.letters, batch, i, &reason);
                        }
                    }
                }
            }
        }
        retry
    }

    async fn dead_letter_all(&self, batch: &Batch, reason: &str) -> Result<()> {
        let mut letters = Letters::default();
        (0..batch.len()).for_each(|i| self.letter(&mut letters, batch, i, reason));
        self.post(letters).await
    }

    /// Writes letters (off the async threads) and counts them as failed.
    async fn post(&self, letters: Letters) -> Result<()> {
        let count = letters.count();
        self.dlq.append_async(letters).await?;
        Stats::add(&self.stats.failed, count);
        Ok(())
    }

    /// The dead letter of item `i`.
    fn letter(&self, letters: &mut Letters, batch: &Batch, i: usize, reason: &str) {
        let item = batch.items[i];
        let action: serde_json::Value = serde_json::from_slice(batch.head_bytes(i)).unwrap_or_default();
        let index = action["index"]["_index"].as_str();
        let id = action["index"]["_id"].as_str();
        let source = self.names.get(item.origin.file);
        let position = format!("record {}", item.origin.record);
        let letter = Letter {
            reason,
            source: &source,
            position: &position,
            index,
            id,
        };
        letters.push(&letter, batch.doc_bytes(i));
    }
}

/// For a document the cluster could not parse: the document with its unknown
/// fields moved to `ctindex.overflow`, unless it was tried that way already
/// or had nothing to move.
fn quarantined_doc(batch: &Batch, i: usize, reason: &str) -> Option<Vec<u8>> {
    let parse_error = [
        "document_parsing_exception",
        "mapper_parsing_exception",
        "illegal_argument_exception",
    ]
    .iter()
    .any(|kind| reason.contains(kind));
    if !parse_error || batch.items[i].quarantined {
        return None;
    }
    crate::transform::quarantined(batch.doc_bytes(i))
}

/// Items to send again, and why the last attempt failed.
#[derive(Default)]
struct RetryBatch {
    batch: Batch,
    reason: String,
    /// Some items were refused because the cluster is busy (429, 5xx).
    pushback: bool,
    /// An item was refused in a way no event of the run can get past.
    fatal: Option<String>,
    /// The letters of the items given up.
    letters: Letters,
}

#[cfg(test)]
pub(crate) mod testing;

/// The send loop against a real HTTP server that answers from a script:
/// what was sent, acknowledged and dead-lettered when a stop meets a split,
/// a retry, or a batch partly accepted.
#[cfg(test)]
mod tests {
    use super::testing::{Harness, Reply, Server, ids};
    use super::*;
    use crate::transform::Doc;

    /// A batch of one document per id, each from its own record of file 0.
    fn batch(ids: &[&str]) -> Batch {
        let mut batch = Batch::default();
        for (record, id) in ids.iter().enumerate() {
            let serde_json::Value::Object(source) = serde_json::json!({"eventID": id}) else {
                unreachable!()
            };
            let doc = Doc {
                index: "cloudtrail-2024.03".into(),
                id: id.to_string(),
                source,
            };
            batch.push_doc(
                &doc,
                bulk::Origin {
                    file: 0,
                    record: record as u32,
                },
            );
        }
        batch
    }

    fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits (at most 10 s) until the sink has counted `n` retries: it is
    /// then in, or about to enter, its pause before the next attempt.
    async fn retries_reach(stats: &Stats, n: u64) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while count(&stats.retries) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the sink never retried");
    }

    #[tokio::test]
    async fn a_stop_while_a_batch_is_split_sends_both_halves_and_letters_what_still_fails() {
        let stop = CancellationToken::new();
        let stopping = stop.clone();
        let server = Server::start(Box::new(move |n, body| match n {
            // The stop comes while the cluster refuses the whole as too large.
            0 => {
                stopping.cancel();
                Reply::status(413)
            }
            1 => Reply::all_created(body),
            // Busy for longer than a stopping run waits.
            _ => Reply::status(503).retry_after(30),
        }))
        .await;
        let harness = Harness::new(&server, Duration::from_secs(120), 2, stop).await;
        let sent = batch(&["a", "b", "c", "d"]);
        let whole = sent.body.clone();

        let error = harness
            .sink
            .send(sent)
            .await
            .expect_err("the right half is not acknowledged");
        assert!(error.is::<Unsent>(), "{error:#}");

        let bulks = server.bulks();
        assert_eq!(
            bulks.iter().map(|b| ids(b)).collect::<Vec<_>>(),
            [vec!["a", "b", "c", "d"], vec!["a", "b"], vec!["c", "d"]]
        );
        assert_eq!(
            [bulks[1].clone(), bulks[2].clone()].concat(),
            whole,
            "the halves are the whole, byte for byte"
        );
        assert_eq!(count(&harness.stats.created), 2);
        assert_eq!(count(&harness.stats.failed), 2);
        let letters = harness.letters();
        assert_eq!(
            letters.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["c", "d"]
        );
        for (_, reason) in &letters {
            assert!(
                reason.starts_with("interrupted while retrying (attempt 1): "),
                "{reason}"
            );
        }
    }

    #[tokio::test]
    async fn a_stop_cuts_a_retry_pause_short() {
        let server = Server::start(Box::new(|n, body| match n {
            // A pause of 30 s asked for: only a stop makes the next attempt come sooner.
            0 => Reply::status(503).retry_after(30),
            _ => Reply::all_created(body),
        }))
        .await;
        let harness = Harness::new(&server, Duration::from_secs(120), 2, CancellationToken::new()).await;
        let sent = batch(&["a", "b", "c"]);
        let whole = sent.body.clone();
        let sink = harness.sink.clone();
        let sending = tokio::spawn(async move { sink.send(sent).await });

        retries_reach(&harness.stats, 1).await;
        harness.stop.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .expect("the pause was not cut short by the stop")
            .expect("the send task");
        result.expect("the attempt after the stop is acknowledged");

        assert_eq!(server.bulks(), [whole.clone(), whole], "the same request twice");
        assert_eq!(count(&harness.stats.created), 3);
        assert_eq!(count(&harness.stats.failed), 0);
        assert!(harness.letters().is_empty());
    }

    #[tokio::test]
    async fn a_retry_failing_again_after_a_stop_is_dead_lettered_at_once() {
        let server = Server::start(Box::new(|n, _| match n {
            0 | 1 => Reply::status(429).retry_after(30),
            _ => Reply::status(500),
        }))
        .await;
        let harness = Harness::new(&server, Duration::from_secs(120), 2, CancellationToken::new()).await;
        let sink = harness.sink.clone();
        let sending = tokio::spawn(async move { sink.send(batch(&["a", "b"])).await });

        retries_reach(&harness.stats, 1).await;
        harness.stop.cancel();
        let error = tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .expect("a stopping run waited out the pause")
            .expect("the send task")
            .expect_err("nothing was acknowledged");
        assert!(error.is::<Unsent>(), "{error:#}");

        assert_eq!(server.bulks().len(), 2, "one attempt after the stop, no more");
        assert_eq!(count(&harness.stats.created), 0);
        assert_eq!(count(&harness.stats.failed), 2);
        let letters = harness.letters();
        assert_eq!(
            letters.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        for (_, reason) in &letters {
            assert!(
                reason.starts_with("interrupted while retrying (attempt 2): "),
                "{reason}"
            );
            assert!(reason.contains("429"), "{reason}");
        }
    }

    #[tokio::test]
    async fn a_batch_partly_accepted_then_stopped_resends_only_the_rest() {
        for acknowledged in [true, false] {
            let stop = CancellationToken::new();
            let stopping = stop.clone();
            let server = Server::start(Box::new(move |n, body| match n {
                0 => {
                    stopping.cancel();
                    Reply::items(&[201, 429, 201, 503])
                }
                1 if acknowledged => Reply::all_created(body),
                _ => Reply::status(503).retry_after(30),
            }))
            .await;
            let harness = Harness::new(&server, Duration::from_secs(120), 2, stop).await;
            let result = harness.sink.send(batch(&["a", "b", "c", "d"])).await;

            let bulks = server.bulks();
            assert_eq!(
                bulks.iter().map(|b| ids(b)).collect::<Vec<_>>(),
                [vec!["a", "b", "c", "d"], vec!["b", "d"]]
            );
            if acknowledged {
                result.expect("every item acknowledged");
                assert_eq!(count(&harness.stats.created), 4);
                assert!(harness.letters().is_empty());
            } else {
                assert!(result.expect_err("b and d not acknowledged").is::<Unsent>());
                assert_eq!(count(&harness.stats.created), 2);
                assert_eq!(count(&harness.stats.failed), 2);
                let letters = harness.letters();
                assert_eq!(
                    letters.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
                    ["b", "d"]
                );
                assert!(
                    letters[0].1.starts_with("interrupted while retrying (attempt 2): "),
                    "{letters:?}"
                );
            }
        }
    }
}
