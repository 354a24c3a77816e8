//! The sink: bulk requests to Elasticsearch or OpenSearch, until every item
//! is either acknowledged or dead-lettered.
//!
//! [`client`] holds the connection, [`bulk`] the NDJSON body and the reading
//! of answers, [`retry`] the policy, [`limit`] the adaptive concurrency,
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
pub mod retention;
pub mod retry;
pub mod template;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::http::Method;
use anyhow::{Result, bail};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::dlq::{DeadLetters, Letter};
use crate::pipeline::Cancel;
use crate::progress::Stats;
use bulk::{Batch, ItemOutcome};
use client::{Cluster, SendError};
use limit::{Change, Limiter, Signal};
use retry::{Backoff, RequestVerdict};

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
    /// The run's stop (Ctrl-C, SIGTERM): shortens retries.
    stop: Arc<Cancel>,
    /// Set by [`Sink::abandon`] after a fatal error, with its reason.
    abandoned: Cancel,
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
        stop: Arc<Cancel>,
    ) -> Self {
        Sink {
            cluster,
            dlq,
            stats,
            names,
            retry_budget,
            limiter: Limiter::new(concurrency),
            stop,
            abandoned: Cancel::default(),
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
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        loop {
            if let Some(reason) = self.abandon_reason.get() {
                self.dead_letter_all(&batch, &format!("not sent: the run stopped on an error: {reason}"))?;
                return Err(Unsent.into());
            }
            let body = Bytes::from(std::mem::take(&mut batch.body));
            Stats::add(&self.stats.bulk_bytes, body.len() as u64);
            Stats::add(&self.stats.batches, 1);
            let answer = {
                // Held only for the call: a batch pausing before a retry leaves its slot to others.
                let _permit = self.limiter.acquire().await;
                self.cluster.send(Method::POST, BULK_PATH, Some(body.clone())).await
            };
            batch.body = Vec::from(body);

            let (failure, signal) = match answer {
                Ok(response) => match bulk::read_response(&response, batch.len()) {
                    Ok(outcomes) => {
                        let retry = self.settle(&batch, outcomes)?;
                        if let Some(reason) = retry.fatal {
                            self.dead_letter_all(&retry.batch, &reason)?;
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
                        (retry.reason, signal)
                    }
                    Err(e) => (e.to_string(), Signal::Neutral),
                },
                Err(error @ SendError::Status { status, .. }) => match retry::classify_status(status) {
                    RequestVerdict::Split if batch.len() > 1 => {
                        let (left, right) = batch.split();
                        tracing::debug!(
                            "bulk request of {} items too large (413): splitting",
                            left.len() + right.len()
                        );
                        pending.push(right);
                        pending.push(left);
                        return Ok(());
                    }
                    RequestVerdict::Split => {
                        self.dead_letter_all(&batch, "the cluster refused the request as too large (413)")?;
                        return Ok(());
                    }
                    RequestVerdict::Retry => (error.to_string(), Signal::Pushback),
                    RequestVerdict::Fatal => {
                        let reason = format!("the cluster refused the bulk request: {error}");
                        self.dead_letter_all(&batch, &reason)?;
                        let hint = match status {
                            403 => {
                                " (the credentials need the index and create_index privileges on the target indices)"
                            }
                            _ => "",
                        };
                        bail!("{reason}{hint}");
                    }
                },
                Err(e @ SendError::Connection { .. }) => (e.to_string(), Signal::Pushback),
            };
            self.adapt(signal, &failure);

            let delay = backoff.next_delay();
            let stopped_at = self.stop.since();
            let deadline = match stopped_at {
                Some(at) => deadline.min(at + RETRY_BUDGET_AFTER_STOP),
                None => deadline,
            };
            if Instant::now() + delay > deadline {
                if stopped_at.is_some() {
                    let reason = format!("interrupted while retrying (attempt {}): {failure}", backoff.attempts());
                    tracing::warn!(
                        "stopping: a bulk request of {} items still failing is dead-lettered (a rerun indexes it): {failure}",
                        batch.len()
                    );
                    self.dead_letter_all(&batch, &reason)?;
                    return Err(Unsent.into());
                }
                let reason = format!("still failing after {} attempts: {failure}", backoff.attempts());
                self.dead_letter_all(&batch, &reason)?;
                bail!(
                    "giving up on a bulk request of {} items after {} attempts ({}s retry budget, see --retry-budget): {failure}",
                    batch.len(),
                    backoff.attempts(),
                    self.retry_budget.as_secs()
                );
            }
            tracing::warn!(
                "bulk request of {} items failed (attempt {}), retrying in {:.1}s: {failure}",
                batch.len(),
                backoff.attempts(),
                delay.as_secs_f64()
            );
            Stats::add(&self.stats.retries, 1);
            tokio::select! {
                // The pause before the next attempt.
                _ = tokio::time::sleep(delay) => {}
                // A stop cuts the pause short: one more attempt, now, within the shortened budget.
                _ = self.stop.cancelled(), if stopped_at.is_none() => {}
                // Abandoned: the loop's first check dead-letters the batch.
                _ = self.abandoned.cancelled() => {}
            }
        }
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

    /// Counts acknowledged items, dead-letters rejected ones and returns the
    /// items to retry with the last retry reason.
    fn settle(&self, batch: &Batch, outcomes: Vec<ItemOutcome>) -> Result<RetryBatch> {
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
                    self.dead_letter(batch, i, &reason)?;
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
                            self.dead_letter(batch, i, &reason)?;
                        }
                    }
                }
            }
        }
        Ok(retry)
    }

    fn dead_letter_all(&self, batch: &Batch, reason: &str) -> Result<()> {
        (0..batch.len()).try_for_each(|i| self.dead_letter(batch, i, reason))
    }

    fn dead_letter(&self, batch: &Batch, i: usize, reason: &str) -> Result<()> {
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
        self.dlq.write_raw(&letter, batch.doc_bytes(i))?;
        Stats::add(&self.stats.failed, 1);
        Ok(())
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
}
