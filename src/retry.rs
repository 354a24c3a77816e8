//! The retry policy of every call ctindex makes: bulk requests, control
//! requests and sync state to the cluster, downloads from S3, imports to
//! Kibana.
//!
//! Owns two things. [`Policy::decide`] is the pure decision "try again or
//! not, and after how long", taken on a plain description of what came back
//! ([`Answer`]: a status with its `Retry-After`, or how the connection
//! failed) and the number of attempts made. [`Retrier`] walks one call
//! through it, picking each pause inside the window the decision gives with
//! jitter, so that concurrent callers do not retry in step.
//!
//! The rules, the same for every server: no answer at all (refused, reset,
//! timed out, a body cut off mid-way), 408, 429 and 5xx (except 501 and 505,
//! which say the server cannot do it) are worth another try; a 413 asks the
//! caller to split its request; any other status is final. A pause doubles
//! from the policy's first one up to its cap, uniform in [half, whole] of
//! that ceiling; a `Retry-After` the server sent (seconds) is waited for, up
//! to [`MAX_RETRY_AFTER`].
//!
//! Pure and synchronous, no I/O and no clock: callers sleep, and callers
//! with a time budget (bulk requests, see [`crate::sink`]) check it.
//! Callers whose write is conditional (the sync lease) do not re-send
//! blindly on a `Retry`: they read back first (see [`crate::state`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A `Retry-After` longer than this is cut to it: a server asking for more
/// is better answered by the caller's own budget.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// What came back from one attempt that did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The server answered with this status (not 2xx).
    Status {
        status: u16,
        /// The server's `Retry-After`, when it sent one in seconds.
        retry_after: Option<Duration>,
    },
    /// No complete answer.
    Failed(Failure),
}

impl Answer {
    /// A status without `Retry-After`.
    pub const fn status(status: u16) -> Answer {
        Answer::Status {
            status,
            retry_after: None,
        }
    }

    /// Whether another try may get a different answer: no answer, 408,
    /// 429, or a server error other than 501 and 505.
    pub fn is_transient(&self) -> bool {
        match *self {
            Answer::Status { status, .. } => {
                matches!(status, 408 | 429) || ((500..=599).contains(&status) && !matches!(status, 501 | 505))
            }
            Answer::Failed(_) => true,
        }
    }
}

/// How an attempt got no complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection was refused: the request never reached the server.
    Refused,
    /// The connection was reset or closed before the answer.
    Reset,
    /// No answer within the timeout.
    TimedOut,
    /// The answer began, but its body broke off.
    CutOff,
    /// Anything else on the way (DNS, TLS, a proxy).
    Other,
}

/// What to do after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after a pause within this window.
    Retry(Pause),
    /// The request is too large (413): split it and send the parts.
    Split,
    /// Do not try again.
    GiveUp(Why),
}

/// Why a call is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Trying again cannot help: a refusal (4xx), or what the server cannot do.
    Final,
    /// Worth another try, but the policy's attempts are used up.
    Exhausted,
}

/// The window a pause is picked in (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub min: Duration,
    pub max: Duration,
}

/// How hard one kind of call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts at most, the first included.
    pub attempts: u32,
    /// The ceiling of the first pause; it doubles with each retry.
    pub first_pause: Duration,
    /// The ceiling of the pauses.
    pub max_pause: Duration,
}

impl Policy {
    /// Bulk requests of events: as many attempts as the `--retry-budget`
    /// (time) allows, which the sink checks.
    pub const BULK: Policy = Policy {
        attempts: u32::MAX,
        first_pause: Duration::from_millis(250),
        max_pause: Duration::from_secs(30),
    };

    /// The cluster's control requests: templates, searches, refreshes (with
    /// the pauses: about 15 s).
    pub const CONTROL: Policy = Policy {
        attempts: 6,
        first_pause: Duration::from_millis(500),
        max_pause: Duration::from_secs(8),
    };

    /// Sync state records and the state index (about a minute).
    pub const STATE: Policy = Policy {
        attempts: 11,
        first_pause: Duration::from_millis(250),
        max_pause: Duration::from_secs(8),
    };

    /// The sync lease: well within its shortest time to live.
    pub const LEASE: Policy = Policy {
        attempts: 7,
        first_pause: Duration::from_millis(250),
        max_pause: Duration::from_secs(5),
    };

    /// AWS requests (S3): the SDK's own retry is set from it for listings,
    /// and downloads are retried by it alone (see [`crate::source::s3`]).
    pub const AWS: Policy = Policy {
        attempts: 8,
        first_pause: Duration::from_millis(200),
        max_pause: Duration::from_secs(20),
    };

    /// Receiving from the SQS queue `follow` reads, once the SDK's own
    /// retry ([`Policy::AWS`]) has given up: again and again while the
    /// follower runs, at most half a minute apart.
    pub const QUEUE: Policy = Policy {
        attempts: u32::MAX,
        first_pause: Duration::from_secs(1),
        max_pause: Duration::from_secs(30),
    };

    /// Kibana imports: one attempt, so that a failing server is reported at
    /// once (the user runs the command again; the import overwrites).
    pub const KIBANA: Policy = Policy {
        attempts: 1,
        first_pause: Duration::from_millis(500),
        max_pause: Duration::from_secs(8),
    };

    /// After `attempt` attempts (1 for the first) ended in `answer`: try
    /// again (and within which pause), split, or give up.
    pub fn decide(&self, answer: &Answer, attempt: u32) -> Decision {
        let retry_after = match *answer {
            Answer::Status { status: 413, .. } => return Decision::Split,
            _ if !answer.is_transient() => return Decision::GiveUp(Why::Final),
            Answer::Status { retry_after, .. } => retry_after,
            Answer::Failed(_) => None,
        };
        if attempt >= self.attempts {
            return Decision::GiveUp(Why::Exhausted);
        }
        let mut pause = self.pause(attempt);
        if let Some(asked) = retry_after {
            let asked = asked.min(MAX_RETRY_AFTER);
            pause.min = pause.min.max(asked);
            pause.max = pause.max.max(asked);
        }
        Decision::Retry(pause)
    }

    /// The pause after `attempt` attempts: its ceiling is the first pause
    /// doubled `attempt - 1` times, capped; the pause is at least half of it.
    pub fn pause(&self, attempt: u32) -> Pause {
        let doublings = attempt.saturating_sub(1).min(20);
        let max = self.first_pause.saturating_mul(1 << doublings).min(self.max_pause);
        Pause { min: max / 2, max }
    }
}

/// A `Retry-After` value in seconds (the HTTP-date form is not used by the
/// servers ctindex talks to, and is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// One call's attempts under a policy: counts them and picks each pause.
#[derive(Debug, Clone)]
pub struct Retrier {
    policy: Policy,
    attempts: u32,
    seed: u64,
}

impl Retrier {
    pub fn new(policy: Policy) -> Retrier {
        // Time, process and a count: no two retriers of a run start alike.
        static CREATED: AtomicU64 = AtomicU64::new(0);
        let count = CREATED.fetch_add(1, Ordering::Relaxed);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            ^ (u64::from(std::process::id()) << 32)
            ^ count.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Retrier {
            policy,
            attempts: 0,
            seed: seed | 1,
        }
    }

    /// The attempts made so far (failed ones, as reported to [`Retrier::next`]).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Counts a failed attempt and decides; a retry comes with its pause.
    pub fn next(&mut self, answer: &Answer) -> Next {
        self.attempts += 1;
        match self.policy.decide(answer, self.attempts) {
            Decision::Retry(pause) => Next::Retry(self.pick(pause)),
            Decision::Split => Next::Split,
            Decision::GiveUp(why) => Next::GiveUp(why),
        }
    }

    /// Counts a failed attempt the caller judged worth another try on its
    /// own (bulk items refused for now, a lease write that lost a race):
    /// the pause, while the policy's attempts last.
    pub fn again(&mut self) -> Option<Duration> {
        self.attempts += 1;
        (self.attempts < self.policy.attempts).then(|| self.pick(self.policy.pause(self.attempts)))
    }

    /// A point of the window, uniformly.
    fn pick(&mut self, pause: Pause) -> Duration {
        let min = pause.min.as_nanos() as u64;
        let max = (pause.max.as_nanos() as u64).max(min);
        Duration::from_nanos(min + self.random() % (max - min + 1))
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: enough to spread the retries of concurrent callers.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// [`Decision`] with the pause picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Retry(Duration),
    Split,
    GiveUp(Why),
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        attempts: 4,
        first_pause: Duration::from_millis(100),
        max_pause: Duration::from_millis(300),
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn retry(min: u64, max: u64) -> Decision {
        Decision::Retry(Pause {
            min: ms(min),
            max: ms(max),
        })
    }

    #[test]
    fn literal_answers() {
        let secs = |s| Some(Duration::from_secs(s));
        let cases = [
            // Busy: back off, or wait as long as the server asks.
            (Answer::status(429), 1, retry(50, 100)),
            (
                Answer::Status {
                    status: 429,
                    retry_after: secs(2),
                },
                1,
                retry(2000, 2000),
            ),
            // A Retry-After shorter than the backoff changes nothing.
            (
                Answer::Status {
                    status: 503,
                    retry_after: Some(ms(10)),
                },
                2,
                retry(100, 200),
            ),
            // One longer than the limit is cut to it.
            (
                Answer::Status {
                    status: 429,
                    retry_after: secs(3600),
                },
                1,
                Decision::Retry(Pause {
                    min: MAX_RETRY_AFTER,
                    max: MAX_RETRY_AFTER,
                }),
            ),
            (Answer::status(408), 1, retry(50, 100)),
            (Answer::status(500), 1, retry(50, 100)),
            (Answer::status(502), 2, retry(100, 200)),
            (Answer::status(503), 3, retry(150, 300)),
            (Answer::status(504), 1, retry(50, 100)),
            // What the server cannot do, and refusals: final at once.
            (Answer::status(501), 1, Decision::GiveUp(Why::Final)),
            (Answer::status(505), 1, Decision::GiveUp(Why::Final)),
            (Answer::status(400), 1, Decision::GiveUp(Why::Final)),
            (Answer::status(401), 1, Decision::GiveUp(Why::Final)),
            (Answer::status(403), 1, Decision::GiveUp(Why::Final)),
            (Answer::status(404), 1, Decision::GiveUp(Why::Final)),
            (Answer::status(409), 1, Decision::GiveUp(Why::Final)),
            (Answer::status(413), 1, Decision::Split),
            // A split does not depend on the attempts left.
            (Answer::status(413), 4, Decision::Split),
            // No answer: another try.
            (Answer::Failed(Failure::Refused), 1, retry(50, 100)),
            (Answer::Failed(Failure::Reset), 2, retry(100, 200)),
            (Answer::Failed(Failure::TimedOut), 1, retry(50, 100)),
            (Answer::Failed(Failure::CutOff), 1, retry(50, 100)),
            (Answer::Failed(Failure::Other), 1, retry(50, 100)),
            // The attempts are used up.
            (Answer::status(503), 4, Decision::GiveUp(Why::Exhausted)),
            (
                Answer::Status {
                    status: 429,
                    retry_after: secs(1),
                },
                4,
                Decision::GiveUp(Why::Exhausted),
            ),
            (Answer::Failed(Failure::Reset), 4, Decision::GiveUp(Why::Exhausted)),
            (Answer::Failed(Failure::CutOff), 9, Decision::GiveUp(Why::Exhausted)),
            // Refusals stay final whatever the count.
            (Answer::status(404), 9, Decision::GiveUp(Why::Final)),
        ];
        for (answer, attempt, want) in cases {
            assert_eq!(POLICY.decide(&answer, attempt), want, "{answer:?} after {attempt}");
        }
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let ceilings: Vec<Duration> = (1..=6).map(|a| POLICY.pause(a).max).collect();
        assert_eq!(ceilings, [ms(100), ms(200), ms(300), ms(300), ms(300), ms(300)]);
        // Far attempts do not overflow.
        assert_eq!(Policy::BULK.pause(u32::MAX).max, Duration::from_secs(30));
        assert_eq!(Policy::BULK.pause(1).max, ms(250));
    }

    #[test]
    fn one_attempt_policies_never_retry() {
        assert_eq!(
            Policy::KIBANA.decide(&Answer::status(503), 1),
            Decision::GiveUp(Why::Exhausted)
        );
        assert_eq!(
            Policy::KIBANA.decide(&Answer::status(403), 1),
            Decision::GiveUp(Why::Final)
        );
    }

    #[test]
    fn the_retrier_counts_and_picks_within_the_window() {
        let mut retrier = Retrier::new(POLICY);
        for attempt in 1..POLICY.attempts {
            let Next::Retry(pause) = retrier.next(&Answer::Failed(Failure::Reset)) else {
                panic!("attempt {attempt} not retried")
            };
            let window = POLICY.pause(attempt);
            assert!(
                pause >= window.min && pause <= window.max,
                "{pause:?} outside {window:?}"
            );
        }
        assert_eq!(
            retrier.next(&Answer::Failed(Failure::Reset)),
            Next::GiveUp(Why::Exhausted)
        );
        assert_eq!(retrier.attempts(), POLICY.attempts);
        // Retries the caller decides on are bounded by the same attempts.
        let mut retrier = Retrier::new(POLICY);
        let pauses: Vec<Option<Duration>> = (0..POLICY.attempts).map(|_| retrier.again()).collect();
        assert!(
            pauses[..3].iter().all(Option::is_some) && pauses[3].is_none(),
            "{pauses:?}"
        );

        // Jitter: pauses of many callers are spread over the window.
        let picks: std::collections::BTreeSet<Duration> =
            (0..100).filter_map(|_| Retrier::new(Policy::BULK).again()).collect();
        assert!(picks.len() > 10, "{} distinct pauses of 100", picks.len());
        assert!(picks.iter().all(|p| *p >= ms(125) && *p <= ms(250)));
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
