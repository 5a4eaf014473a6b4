//! In-process limits: one keyed GCRA limiter (governor) per route class.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::{Decision, RateLimitKey, RouteClass};

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// How often keys whose allowance is whole again are forgotten, bounding memory by the number
/// of clients seen in about a minute.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

pub(super) struct MemoryLimiter {
    limiters: HashMap<RouteClass, (u32, Keyed)>,
    last_cleanup: Mutex<Instant>,
}

impl MemoryLimiter {
    /// One limiter per `(class, requests per minute)`; zero-rate classes are skipped.
    pub(super) fn new(quotas: &[(RouteClass, u32)]) -> Self {
        let limiters = quotas
            .iter()
            .filter_map(|&(class, per_minute)| {
                let rate = NonZeroU32::new(per_minute)?;
                let limiter = RateLimiter::keyed(Quota::per_minute(rate))
                    .with_middleware::<StateInformationMiddleware>();
                Some((class, (per_minute, limiter)))
            })
            .collect();
        Self {
            limiters,
            last_cleanup: Mutex::new(Instant::now()),
        }
    }

    pub(super) fn check(&self, class: RouteClass, key: &RateLimitKey) -> Option<Decision> {
        let (limit, limiter) = self.limiters.get(&class)?;
        self.maybe_clean_up();
        // The time for one request's worth of allowance to come back.
        let interval = Duration::from_secs(60) / *limit;
        let decision = match limiter.check_key(&key.as_str().to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit: *limit,
                    remaining,
                    reset_after: interval * (limit - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(limiter.clock().now());
                Decision {
                    allowed: false,
                    limit: *limit,
                    remaining: 0,
                    reset_after: retry_after + interval * (limit - 1),
                    retry_after,
                }
            }
        };
        Some(decision)
    }

    /// Drops idle keys at most once per [`CLEANUP_EVERY`], from whichever request comes first.
    fn maybe_clean_up(&self) {
        let Ok(mut last) = self.last_cleanup.try_lock() else {
            return; // another request is cleaning up
        };
        if last.elapsed() < CLEANUP_EVERY {
            return;
        }
        *last = Instant::now();
        for (_, limiter) in self.limiters.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_refuses_per_key_and_class() {
        let limiter = MemoryLimiter::new(&[(RouteClass::Auth, 3), (RouteClass::General, 100)]);
        let alice = RateLimitKey::user("alice");
        let remaining: Vec<u32> = (0..3)
            .map(|_| limiter.check(RouteClass::Auth, &alice).unwrap())
            .inspect(|d| assert!(d.allowed))
            .map(|d| d.remaining)
            .collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let refused = limiter.check(RouteClass::Auth, &alice).unwrap();
        assert!(!refused.allowed);
        assert!(
            refused.retry_after > Duration::from_secs(15)
                && refused.retry_after <= Duration::from_secs(20)
        );
        // Other keys and other classes have their own allowance.
        assert!(
            limiter
                .check(RouteClass::Auth, &RateLimitKey::user("bob"))
                .unwrap()
                .allowed
        );
        assert!(limiter.check(RouteClass::General, &alice).unwrap().allowed);
        // Unlimited classes are not counted.
        assert!(limiter.check(RouteClass::Operational, &alice).is_none());
    }
}
