//! Retry policy: which failures are worth another try, and when.
//!
//! Pure and synchronous. Request-level answers are classified here; item-level
//! answers are classified in [`super::bulk`]. Backoff is exponential with full
//! jitter, capped, and every retry loop runs within a time budget.

use std::time::Duration;

/// What to do after a whole bulk request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestVerdict {
    /// Try the same request again after a pause (connection trouble, 429, 5xx).
    Retry,
    /// The request is too large for the cluster (413): split it and send the halves.
    Split,
    /// Retrying cannot help: authentication, permissions, a malformed request.
    Fatal,
}

/// Classifies an HTTP status of a whole bulk request (not 2xx).
pub fn classify_status(status: u16) -> RequestVerdict {
    match status {
        413 => RequestVerdict::Split,
        408 | 429 | 500..=599 => RequestVerdict::Retry,
        _ => RequestVerdict::Fatal,
    }
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            ^ (std::process::id() as u64) << 32;
        Backoff {
            base,
            cap,
            attempt: 0,
            seed: seed | 1,
        }
    }

    /// The attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The pause before the next attempt: uniform in [ceiling/2, ceiling], where
    /// the ceiling doubles each time up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.attempt.min(20);
        self.attempt += 1;
        let ceiling = self.base.saturating_mul(1u32 << exp).min(self.cap);
        let nanos = ceiling.as_nanos() as u64;
        let half = nanos / 2;
        Duration::from_nanos(half + self.random() % (nanos - half + 1))
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: enough to spread retries of concurrent senders.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for (status, want) in [
            (413, RequestVerdict::Split),
            (429, RequestVerdict::Retry),
            (502, RequestVerdict::Retry),
            (503, RequestVerdict::Retry),
            (504, RequestVerdict::Retry),
            (500, RequestVerdict::Retry),
            (400, RequestVerdict::Fatal),
            (401, RequestVerdict::Fatal),
            (403, RequestVerdict::Fatal),
            (404, RequestVerdict::Fatal),
        ] {
            assert_eq!(classify_status(status), want, "{status}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let ceiling = Duration::from_millis(100 * (1 << i)).min(Duration::from_secs(2));
            assert!(*d >= ceiling / 2 && *d <= ceiling, "attempt {i}: {d:?} vs {ceiling:?}");
        }
        assert_eq!(b.attempts(), 10);
    }
}
