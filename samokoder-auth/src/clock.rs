//! Where "now" comes from, so expiry, rotation and lockout can be tested without sleeping.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Duration, SubsecRound, Utc};

/// A source of the current time.
///
/// Everything time-dependent in this crate (token expiry, lockout windows, revocation marks)
/// asks a `Clock` instead of the system, so tests can move time by hand with [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests (ours and embedders').
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use samokoder_auth::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap());
/// clock.advance(Duration::minutes(15));
/// assert_eq!(clock.now(), Utc.with_ymd_and_hms(2030, 1, 1, 0, 15, 0).unwrap());
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    /// A clock stopped at the current system time, rounded down to whole seconds (the
    /// resolution of a token's `exp`), so values read back from tokens compare equal.
    pub fn starting_now() -> Self {
        Self::new(Utc::now().trunc_subsecs(0))
    }

    /// Moves the clock by `by` (which may be negative).
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
