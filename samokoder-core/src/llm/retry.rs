//! When to try again, and how long to wait first.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::LlmError;

/// The retry and timeout policy of a session.
///
/// Transport retries (rate limits, transient failures) and parse retries (an unusable answer
/// re-asked with the validation error) have separate limits: the original shared one budget, so
/// a flaky network left no room to fix a bad answer and vice versa.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Retries of one request after rate limits and transient failures.
    pub max_transport_retries: u32,
    /// Re-asks after unusable structured answers.
    pub max_parse_retries: u32,
    /// The first backoff step; doubles per retry.
    #[serde(with = "millis")]
    pub base_delay: Duration,
    /// The largest backoff step (before jitter).
    #[serde(with = "millis")]
    pub max_delay: Duration,
    /// The longest provider-requested wait the session sits out. A longer ask (a daily quota
    /// reset, say) fails the request with [`LlmError::RateLimited`] at once, carrying the wait,
    /// so the engine can pause the run instead of holding a worker.
    #[serde(with = "millis")]
    pub max_rate_limit_wait: Duration,
    /// The deadline of one request, retries and waits included.
    #[serde(with = "millis")]
    pub request_deadline: Duration,
    /// The longest silence tolerated from a streaming provider: before the response headers,
    /// before the first token and between chunks. A stalled stream fails as a transient timeout
    /// and is retried. Non-streamed requests arrive in one piece after the whole generation, so
    /// only `request_deadline` bounds them.
    #[serde(with = "millis")]
    pub idle_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_transport_retries: 4,
            max_parse_retries: 2,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(120),
            request_deadline: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then send again.
    RetryAfter(Duration),
    /// Give up and return the error.
    GiveUp,
}

impl RetryPolicy {
    /// The exponential step for retry number `retry` (0-based) with "equal jitter": half the
    /// step fixed, half random, so parallel requests that failed together spread out.
    pub fn backoff(&self, retry: u32) -> Duration {
        let step = self
            .base_delay
            .checked_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let half = step / 2;
        half + jitter(step - half)
    }

    /// Decides about retry number `retry` (0-based) after `error`, with `remaining` time until the
    /// request deadline.
    ///
    /// A provider-requested wait is never shortened: the wait is the ask plus a little jitter
    /// (up to a quarter of the ask, at most `base_delay`), or the backoff step if that is longer.
    /// When the ask exceeds `max_rate_limit_wait` or the wait would not end before the deadline,
    /// the answer is [`RetryDecision::GiveUp`]; waiting less than asked only earns another 429.
    pub fn decide(&self, error: &LlmError, retry: u32, remaining: Duration) -> RetryDecision {
        if !error.is_retryable() || retry >= self.max_transport_retries {
            return RetryDecision::GiveUp;
        }
        let backoff = self.backoff(retry);
        let wait = match error.retry_after() {
            Some(asked) if asked > self.max_rate_limit_wait => return RetryDecision::GiveUp,
            Some(asked) => (asked + jitter((asked / 4).min(self.base_delay))).max(backoff),
            None => backoff,
        };
        if wait >= remaining {
            return RetryDecision::GiveUp;
        }
        RetryDecision::RetryAfter(wait)
    }
}

fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::error::{FatalKind, TransientKind};

    fn transient() -> LlmError {
        LlmError::Transient {
            provider: "p".into(),
            kind: TransientKind::Server,
            retry_after: None,
            message: "boom".into(),
        }
    }

    fn rate_limited(wait: Duration) -> LlmError {
        LlmError::RateLimited {
            provider: "p".into(),
            retry_after: Some(wait),
            message: "slow".into(),
        }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let b0 = p.backoff(0);
            assert!(
                b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100),
                "{b0:?}"
            );
            let b3 = p.backoff(3);
            assert!(
                b3 >= Duration::from_millis(400) && b3 <= Duration::from_millis(800),
                "{b3:?}"
            );
            let b30 = p.backoff(30);
            assert!(
                b30 >= Duration::from_millis(500) && b30 <= Duration::from_secs(1),
                "{b30:?}"
            );
        }
    }

    #[test]
    fn never_waits_less_than_asked() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            match p.decide(
                &rate_limited(Duration::from_secs(2)),
                0,
                Duration::from_secs(60),
            ) {
                RetryDecision::RetryAfter(wait) => {
                    assert!(
                        wait >= Duration::from_secs(2) && wait <= Duration::from_millis(2010),
                        "{wait:?}"
                    );
                }
                RetryDecision::GiveUp => panic!("should retry"),
            }
        }
    }

    #[test]
    fn gives_up_on_long_asks_deadlines_limits_and_fatal_errors() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.decide(
                &rate_limited(Duration::from_secs(3600)),
                0,
                Duration::from_secs(7200)
            ),
            RetryDecision::GiveUp
        );
        assert_eq!(
            p.decide(
                &rate_limited(Duration::from_secs(5)),
                0,
                Duration::from_secs(4)
            ),
            RetryDecision::GiveUp
        );
        assert_eq!(
            p.decide(
                &transient(),
                p.max_transport_retries,
                Duration::from_secs(60)
            ),
            RetryDecision::GiveUp
        );
        let fatal = LlmError::Fatal {
            provider: "p".into(),
            kind: FatalKind::BadRequest,
            message: "no".into(),
        };
        assert_eq!(
            p.decide(&fatal, 0, Duration::from_secs(60)),
            RetryDecision::GiveUp
        );
        assert!(matches!(
            p.decide(&transient(), 0, Duration::from_secs(60)),
            RetryDecision::RetryAfter(_)
        ));
    }

    #[test]
    fn policy_deserialises_from_milliseconds() {
        let p: RetryPolicy =
            serde_json::from_str(r#"{"max_parse_retries": 5, "base_delay": 20}"#).unwrap();
        assert_eq!(p.max_parse_retries, 5);
        assert_eq!(p.base_delay, Duration::from_millis(20));
        assert_eq!(
            p.max_transport_retries,
            RetryPolicy::default().max_transport_retries
        );
    }
}
