//! Adaptive concurrency: how many bulk requests may be on the wire at once.
//!
//! Owns the limit and its adjustment, AIMD as in TCP: every answer that
//! shows the cluster pushing back (429, 503, rejected items, no answer at
//! all) halves the limit, at most once per [`DECREASE_EVERY`] so that one
//! burst of failures counts once; a full limit's worth of clean answers in
//! a row raises it by one, up to the `--concurrency` it started at.
//!
//! A [`Permit`] is held only around the HTTP call, never across a backoff
//! pause, so a batch waiting to retry does not take a slot from the others.
//! Invariant: `1 <= limit <= max`, and at most `limit` permits are out
//! (more only right after a decrease, until those calls return).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Pushback within this long after a decrease is taken as the same burst.
pub const DECREASE_EVERY: Duration = Duration::from_secs(1);

/// The limit on bulk requests in flight.
#[derive(Debug)]
pub struct Limiter {
    max: usize,
    state: Mutex<State>,
    /// Woken when a permit is returned or the limit grows.
    freed: Notify,
    /// Times the limit went down / up (for the summary).
    pub decreases: AtomicU64,
    pub increases: AtomicU64,
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_use: usize,
    /// Clean answers since the last change.
    clean: usize,
    /// The lowest limit of the run.
    low: usize,
    last_decrease: Option<Instant>,
}

/// A slot for one HTTP call; returned when dropped.
#[must_use]
pub struct Permit<'a>(&'a Limiter);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.lock().in_use -= 1;
        self.0.freed.notify_waiters();
    }
}

/// What an answer says about the cluster's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Every item settled at the first try.
    Clean,
    /// 429, 503, rejected items, a refused or dropped connection.
    Pushback,
    /// Neither: a permanent error, a split after 413.
    Neutral,
}

/// A change of the limit, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Down { from: usize, to: usize },
    Up { from: usize, to: usize },
}

impl Limiter {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Limiter {
            max,
            state: Mutex::new(State {
                limit: max,
                in_use: 0,
                clean: 0,
                low: max,
                last_decrease: None,
            }),
            freed: Notify::new(),
            decreases: AtomicU64::new(0),
            increases: AtomicU64::new(0),
        }
    }

    /// Waits for a free slot.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            // Created before the check, so a release between the check and
            // the wait still wakes it (`notify_waiters` semantics).
            let freed = self.freed.notified();
            {
                let mut state = self.lock();
                if state.in_use < state.limit {
                    state.in_use += 1;
                    return Permit(self);
                }
            }
            freed.await;
        }
    }

    /// Adjusts the limit after an answer; returns the change, if any.
    pub fn record(&self, signal: Signal) -> Option<Change> {
        self.record_at(signal, Instant::now())
    }

    fn record_at(&self, signal: Signal, now: Instant) -> Option<Change> {
        let mut state = self.lock();
        let change = match signal {
            Signal::Neutral => None,
            Signal::Clean => {
                state.clean += 1;
                if state.limit < self.max && state.clean >= state.limit {
                    let from = state.limit;
                    state.limit += 1;
                    state.clean = 0;
                    self.increases.fetch_add(1, Ordering::Relaxed);
                    Some(Change::Up { from, to: state.limit })
                } else {
                    None
                }
            }
            Signal::Pushback => {
                state.clean = 0;
                let recent = state
                    .last_decrease
                    .is_some_and(|at| now.saturating_duration_since(at) < DECREASE_EVERY);
                if state.limit > 1 && !recent {
                    let from = state.limit;
                    state.limit = (from / 2).max(1);
                    state.low = state.low.min(state.limit);
                    state.last_decrease = Some(now);
                    self.decreases.fetch_add(1, Ordering::Relaxed);
                    Some(Change::Down { from, to: state.limit })
                } else {
                    None
                }
            }
        };
        drop(state);
        if matches!(change, Some(Change::Up { .. })) {
            self.freed.notify_waiters();
        }
        change
    }

    /// The current limit.
    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// The lowest limit of the run.
    pub fn low(&self) -> usize {
        self.lock().low
    }

    /// The limit the run started with (`--concurrency`).
    pub fn max(&self) -> usize {
        self.max
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_pushback_once_per_burst_and_climbs_back_one_at_a_time() {
        let limiter = Limiter::new(8);
        let t0 = Instant::now();
        assert_eq!(
            limiter.record_at(Signal::Pushback, t0),
            Some(Change::Down { from: 8, to: 4 })
        );
        // The same burst: not halved again.
        assert_eq!(
            limiter.record_at(Signal::Pushback, t0 + Duration::from_millis(300)),
            None
        );
        let t1 = t0 + DECREASE_EVERY;
        assert_eq!(
            limiter.record_at(Signal::Pushback, t1),
            Some(Change::Down { from: 4, to: 2 })
        );
        let t2 = t1 + DECREASE_EVERY;
        assert_eq!(
            limiter.record_at(Signal::Pushback, t2),
            Some(Change::Down { from: 2, to: 1 })
        );
        assert_eq!(
            limiter.record_at(Signal::Pushback, t2 + DECREASE_EVERY),
            None,
            "never below 1"
        );
        assert_eq!(limiter.low(), 1);

        // One clean answer per slot raises it by one.
        let ups: Vec<Option<Change>> = (0..7).map(|_| limiter.record_at(Signal::Clean, t2)).collect();
        assert_eq!(
            ups,
            [
                Some(Change::Up { from: 1, to: 2 }),
                None,
                Some(Change::Up { from: 2, to: 3 }),
                None,
                None,
                Some(Change::Up { from: 3, to: 4 }),
                None,
            ]
        );
        // Neutral answers change nothing; pushback resets the clean streak.
        assert_eq!(limiter.record_at(Signal::Neutral, t2), None);
        for _ in 0..40 {
            limiter.record_at(Signal::Clean, t2);
        }
        assert_eq!(limiter.limit(), 8, "capped at the configured concurrency");
        assert_eq!(limiter.low(), 1);
        assert_eq!(limiter.decreases.load(Ordering::Relaxed), 3);
        assert_eq!(limiter.increases.load(Ordering::Relaxed), 7);
    }

    #[tokio::test]
    async fn permits_follow_the_limit() {
        use futures::FutureExt;
        let limiter = Limiter::new(2);
        let a = limiter.acquire().await;
        let b = limiter.acquire().await;
        // Full: a third caller waits until one is returned.
        assert!(
            limiter.acquire().now_or_never().is_none(),
            "a third permit with a limit of 2"
        );
        limiter.record(Signal::Pushback);
        assert_eq!(limiter.limit(), 1);
        drop(a);
        // Still one out (b), and the limit is now 1.
        let mut waiting = Box::pin(limiter.acquire());
        assert!(
            (&mut waiting).now_or_never().is_none(),
            "the lowered limit was not respected"
        );
        drop(b);
        let _c = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("a returned permit must wake a waiter");
    }
}
