//! Login lockout: a sliding window over recent failures, per (account, client address) and
//! per account.
//!
//! The original locked an account after 5 failures from anywhere, so anyone could lock anyone
//! out. Here the tight limit (default 5 failures in 15 minutes) applies to one account *from one
//! client address*; the account as a whole only locks at a much higher ceiling (default 50 in
//! 15 minutes), which a distributed attack can reach but a single stranger cannot push the
//! owner into. A client's earlier failures stop counting once it logs in successfully (the
//! [`LoginAttemptStore`] contract).
//!
//! The window slides: a lock ends when enough failures have aged out of it, and
//! [`LockoutDecision::Locked::until`] is exactly that moment (assuming no new failures are
//! recorded meanwhile — the server should not record attempts it refused to check). Check the
//! lock *before* verifying the password, and answer a locked attempt the same way whether the
//! password was right or not.
//!
//! **Use [`LockoutService::begin`]**, not [`LockoutService::check`] followed by a
//! `record_*` call: between those two the password is being verified, and a burst of parallel
//! requests would all pass the check before the first failure is recorded, each getting a
//! guess. `begin` holds the account's turn (in this process) from the check until the outcome
//! is recorded, so one process never lets more guesses through than the limits allow. Across
//! several server processes sharing a database the burst is bounded by the number of processes.
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use samokoder_auth::lockout::{LockScope, LockoutDecision, LockoutPolicy};
//! use samokoder_auth::ports::FailedLogin;
//!
//! let policy = LockoutPolicy::default(); // 5 per client, 50 per account, 15 minutes
//! let start = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
//! let failures: Vec<FailedLogin> = (0..5)
//!     .map(|i| FailedLogin { at: start + Duration::minutes(i), client: "203.0.113.9".into() })
//!     .collect();
//! let now = start + Duration::minutes(5);
//!
//! // The guesser's address is locked until the oldest of its five failures is 15 minutes old...
//! assert_eq!(
//!     policy.evaluate(&failures, "203.0.113.9", now),
//!     LockoutDecision::Locked { until: start + Duration::minutes(15), scope: LockScope::Client }
//! );
//! // ...while the owner, elsewhere, can still log in.
//! assert_eq!(policy.evaluate(&failures, "198.51.100.7", now), LockoutDecision::Allowed);
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex};

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use tokio::sync::{Mutex as TurnMutex, OwnedMutexGuard};

use crate::clock::Clock;
use crate::error::{AuthError, AuthResult};
use crate::ports::{FailedLogin, LoginAttemptStore};

/// "At most `max_failures` failures within `window_seconds`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutLimit {
    /// Failures that lock (the `max_failures`-th failure inside the window locks).
    pub max_failures: u32,
    /// Length of the sliding window, in seconds.
    pub window_seconds: u64,
}

impl LockoutLimit {
    fn window(self) -> Duration {
        Duration::seconds(i64::try_from(self.window_seconds).unwrap_or(i64::MAX))
    }
}

/// The lockout thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutPolicy {
    /// Per account and client address (default 5 in 15 minutes).
    pub per_client: LockoutLimit,
    /// Per account, from all addresses together (default 50 in 15 minutes).
    pub per_account: LockoutLimit,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            per_client: LockoutLimit {
                max_failures: 5,
                window_seconds: 15 * 60,
            },
            per_account: LockoutLimit {
                max_failures: 50,
                window_seconds: 15 * 60,
            },
        }
    }
}

/// Which limit locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope {
    /// Too many failures for this account from this client address.
    Client,
    /// Too many failures for this account from everywhere.
    Account,
}

/// Whether a login attempt may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockoutDecision {
    /// Go ahead and check the password.
    Allowed,
    /// Refuse without checking the password.
    Locked {
        /// When the lock lifts if no further failures are recorded.
        until: DateTime<Utc>,
        /// The limit that locked (the later-ending one when both did).
        scope: LockScope,
    },
}

impl LockoutDecision {
    /// Whether the attempt is refused.
    pub fn is_locked(&self) -> bool {
        matches!(self, Self::Locked { .. })
    }

    /// Whole seconds from `now` until the lock lifts, rounded up (for `Retry-After`); zero
    /// when allowed.
    pub fn retry_after_seconds(&self, now: DateTime<Utc>) -> u64 {
        match self {
            Self::Allowed => 0,
            Self::Locked { until, .. } => {
                let millis = (*until - now).num_milliseconds().max(0);
                u64::try_from(millis).unwrap_or(0).div_ceil(1000)
            }
        }
    }
}

impl LockoutPolicy {
    /// Checks that the limits make sense: at least one failure, a window of at least a second,
    /// an account ceiling no lower than the per-client limit (otherwise one address could lock
    /// the owner out everywhere again), and an account window no shorter than the per-client
    /// one (see [`LockoutPolicy::fetch_limit`] for why).
    pub fn validate(&self) -> AuthResult<()> {
        for (field, limit) in [
            ("lockout.per_client", self.per_client),
            ("lockout.per_account", self.per_account),
        ] {
            if limit.max_failures == 0 || limit.window_seconds == 0 {
                return Err(AuthError::InvalidConfig {
                    field,
                    reason: "max_failures and window_seconds must be positive".into(),
                });
            }
        }
        if self.per_account.max_failures < self.per_client.max_failures {
            return Err(AuthError::InvalidConfig {
                field: "lockout.per_account",
                reason: "max_failures must be at least lockout.per_client.max_failures".into(),
            });
        }
        if self.per_account.window_seconds < self.per_client.window_seconds {
            return Err(AuthError::InvalidConfig {
                field: "lockout.per_account",
                reason: "window_seconds must be at least lockout.per_client.window_seconds".into(),
            });
        }
        Ok(())
    }

    /// How far back the failures passed to [`LockoutPolicy::evaluate`] must reach.
    pub fn lookback(&self) -> Duration {
        self.per_client.window().max(self.per_account.window())
    }

    /// How many of the newest failures [`LockoutPolicy::evaluate`] needs at most. Older ones
    /// cannot change the decision: if the account has this many within the lookback, they are
    /// all inside the account window (which [`LockoutPolicy::validate`] requires to be the
    /// longest), so the account limit decides.
    pub fn fetch_limit(&self) -> u32 {
        self.per_client
            .max_failures
            .max(self.per_account.max_failures)
    }

    /// Decides for one attempt by `client`, given the account's recent failures (from all
    /// clients, in any order).
    pub fn evaluate(
        &self,
        failures: &[FailedLogin],
        client: &str,
        now: DateTime<Utc>,
    ) -> LockoutDecision {
        let from_client = lock_end(
            failures.iter().filter(|f| f.client == client).map(|f| f.at),
            self.per_client,
            now,
        )
        .map(|until| (until, LockScope::Client));
        let from_account = lock_end(failures.iter().map(|f| f.at), self.per_account, now)
            .map(|until| (until, LockScope::Account));
        match (from_client, from_account) {
            (None, None) => LockoutDecision::Allowed,
            (Some((until, scope)), None) | (None, Some((until, scope))) => {
                LockoutDecision::Locked { until, scope }
            }
            (Some(client), Some(account)) => {
                let (until, scope) = if account.0 >= client.0 {
                    account
                } else {
                    client
                };
                LockoutDecision::Locked { until, scope }
            }
        }
    }
}

/// When the lock by `limit` ends, if it is locked at `now`.
///
/// A failure counts while `now < at + window`. With the failures inside the window sorted newest
/// first, the limit holds while the `max_failures`-th of them is still inside, so the lock ends
/// when that one ages out: at its time plus the window.
fn lock_end(
    times: impl Iterator<Item = DateTime<Utc>>,
    limit: LockoutLimit,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let window = limit.window();
    let mut inside: Vec<DateTime<Utc>> = times.filter(|at| now < *at + window).collect();
    let nth = usize::try_from(limit.max_failures).ok()?.checked_sub(1)?;
    if inside.len() <= nth {
        return None;
    }
    inside.sort_unstable_by(|a, b| b.cmp(a));
    Some(inside[nth] + window)
}

/// Trims and lowercases an e-mail address into the account key the lockout counts under, so
/// `Owner@Example.com ` and `owner@example.com` share one counter.
pub fn account_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// One lock per account with a login attempt in flight in this process; an entry lives only
/// while some attempt holds or waits for it.
type Turns = Arc<SyncMutex<HashMap<String, Arc<TurnMutex<()>>>>>;

/// The lockout policy over a [`LoginAttemptStore`].
#[derive(Clone)]
pub struct LockoutService {
    policy: LockoutPolicy,
    store: Arc<dyn LoginAttemptStore>,
    clock: Arc<dyn Clock>,
    turns: Turns,
}

impl std::fmt::Debug for LockoutService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockoutService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl LockoutService {
    /// Ties a validated policy to a store and a clock.
    pub fn new(
        policy: LockoutPolicy,
        store: Arc<dyn LoginAttemptStore>,
        clock: Arc<dyn Clock>,
    ) -> AuthResult<Self> {
        policy.validate()?;
        Ok(Self {
            policy,
            store,
            clock,
            turns: Arc::default(),
        })
    }

    /// Starts a login attempt by `client` on `account` (an [`account_key`]): waits for the
    /// account's turn, then decides like [`LockoutService::check`].
    ///
    /// When [`LoginAttempt::decision`] is allowed, verify the password and report the outcome
    /// with [`LoginAttempt::failed`] or [`LoginAttempt::succeeded`]; the next attempt on the same
    /// account waits until then, so concurrent requests cannot all pass the check before any
    /// failure is recorded. When it is locked, refuse and drop the attempt (nothing is recorded).
    /// Dropping an attempt without reporting records nothing and releases the turn.
    pub async fn begin(&self, account: &str, client: &str) -> AuthResult<LoginAttempt> {
        let turn = {
            let mut turns = lock_turns(&self.turns);
            Arc::clone(turns.entry(account.to_owned()).or_default())
        };
        let mut attempt = LoginAttempt {
            service: self.clone(),
            account: account.to_owned(),
            client: client.to_owned(),
            decision: LockoutDecision::Allowed,
            turn: Some(turn.lock_owned().await),
        };
        attempt.decision = self.check(account, client).await?;
        Ok(attempt)
    }

    /// How many accounts have an attempt in flight (for tests of the turn bookkeeping).
    #[cfg(test)]
    fn turns_in_use(&self) -> usize {
        lock_turns(&self.turns).len()
    }

    /// The policy.
    pub fn policy(&self) -> &LockoutPolicy {
        &self.policy
    }

    /// Whether `client` may try to log in to `account` (an [`account_key`]) now.
    pub async fn check(&self, account: &str, client: &str) -> AuthResult<LockoutDecision> {
        let now = self.clock.now();
        let failures = self
            .store
            .recent_failures(
                account,
                now - self.policy.lookback(),
                self.policy.fetch_limit(),
            )
            .await?;
        Ok(self.policy.evaluate(&failures, client, now))
    }

    /// Records a failed attempt (wrong password or unknown account alike).
    pub async fn record_failure(&self, account: &str, client: &str) -> AuthResult<()> {
        self.store
            .record_attempt(account, client, false, self.clock.now())
            .await?;
        Ok(())
    }

    /// Records a successful login, which forgives this client's earlier failures.
    pub async fn record_success(&self, account: &str, client: &str) -> AuthResult<()> {
        self.store
            .record_attempt(account, client, true, self.clock.now())
            .await?;
        Ok(())
    }
}

fn lock_turns(
    turns: &SyncMutex<HashMap<String, Arc<TurnMutex<()>>>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TurnMutex<()>>>> {
    // Every critical section below leaves the map consistent, so a poisoned lock is still good.
    turns
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A login attempt holding its account's turn; from [`LockoutService::begin`].
#[must_use = "report the outcome with `failed` or `succeeded` (or drop a locked attempt)"]
pub struct LoginAttempt {
    service: LockoutService,
    account: String,
    client: String,
    decision: LockoutDecision,
    turn: Option<OwnedMutexGuard<()>>,
}

impl std::fmt::Debug for LoginAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginAttempt")
            .field("decision", &self.decision)
            .finish_non_exhaustive()
    }
}

impl LoginAttempt {
    /// Whether the password may be checked.
    pub fn decision(&self) -> LockoutDecision {
        self.decision
    }

    /// The password was wrong (or the account does not exist): records a failure and releases
    /// the turn.
    pub async fn failed(self) -> AuthResult<()> {
        self.service
            .record_failure(&self.account, &self.client)
            .await
    }

    /// The password was right: records the success (forgiving this client's failures) and
    /// releases the turn.
    pub async fn succeeded(self) -> AuthResult<()> {
        self.service
            .record_success(&self.account, &self.client)
            .await
    }
}

impl Drop for LoginAttempt {
    fn drop(&mut self) {
        drop(self.turn.take());
        // Forget the account's lock once nobody holds or waits for it: waiters hold a clone of
        // the Arc, and new ones can only get one under the map lock held here.
        let mut turns = lock_turns(&self.service.turns);
        if turns
            .get(&self.account)
            .is_some_and(|turn| Arc::strong_count(turn) == 1)
        {
            turns.remove(&self.account);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::clock::ManualClock;
    use crate::memory::InMemoryLoginAttemptStore;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        t0() + Duration::minutes(minutes)
    }

    fn failure(minutes: i64, client: &str) -> FailedLogin {
        FailedLogin {
            at: at(minutes),
            client: client.into(),
        }
    }

    #[test]
    fn four_failures_allow_the_fifth_locks_until_the_oldest_ages_out() {
        let policy = LockoutPolicy::default();
        let mut failures: Vec<_> = [0, 2, 4, 6].iter().map(|m| failure(*m, "a")).collect();
        assert_eq!(
            policy.evaluate(&failures, "a", at(7)),
            LockoutDecision::Allowed
        );
        failures.push(failure(8, "a"));
        assert_eq!(
            policy.evaluate(&failures, "a", at(9)),
            LockoutDecision::Locked {
                until: at(15),
                scope: LockScope::Client
            }
        );
    }

    #[test]
    fn the_window_slides_and_until_is_exact() {
        let policy = LockoutPolicy::default();
        let failures: Vec<_> = [0, 2, 4, 6, 8, 10]
            .iter()
            .map(|m| failure(*m, "a"))
            .collect();
        // Six failures: the fifth newest (at minute 2) decides.
        let locked = policy.evaluate(&failures, "a", at(11));
        let LockoutDecision::Locked { until, .. } = locked else {
            panic!("expected a lock, got {locked:?}");
        };
        assert_eq!(until, at(17));
        // One second before `until` still locked, at `until` open.
        assert!(
            policy
                .evaluate(&failures, "a", until - Duration::seconds(1))
                .is_locked()
        );
        assert_eq!(
            policy.evaluate(&failures, "a", until),
            LockoutDecision::Allowed
        );
        assert_eq!(locked.retry_after_seconds(at(11)), 6 * 60);
        assert_eq!(
            locked.retry_after_seconds(until - Duration::milliseconds(1)),
            1
        );
    }

    #[test]
    fn a_stranger_cannot_lock_the_owner_out_until_the_account_ceiling() {
        let policy = LockoutPolicy::default();
        // 49 failures from the stranger's address within a minute.
        let mut failures: Vec<_> = (0..49)
            .map(|i| FailedLogin {
                at: t0() + Duration::seconds(i),
                client: "stranger".into(),
            })
            .collect();
        let now = at(1);
        assert!(policy.evaluate(&failures, "stranger", now).is_locked());
        assert_eq!(
            policy.evaluate(&failures, "owner", now),
            LockoutDecision::Allowed
        );
        // The 50th reaches the account ceiling: now everyone is locked out, for 15 minutes from
        // the oldest of the newest 50.
        failures.push(FailedLogin {
            at: t0() + Duration::seconds(49),
            client: "stranger-2".into(),
        });
        assert_eq!(
            policy.evaluate(&failures, "owner", now),
            LockoutDecision::Locked {
                until: at(15),
                scope: LockScope::Account
            }
        );
    }

    #[test]
    fn when_both_lock_the_later_end_wins() {
        let policy = LockoutPolicy {
            per_client: LockoutLimit {
                max_failures: 2,
                window_seconds: 600,
            },
            per_account: LockoutLimit {
                max_failures: 3,
                window_seconds: 60 * 60,
            },
        };
        let failures = [failure(0, "x"), failure(1, "a"), failure(2, "a")];
        assert_eq!(
            policy.evaluate(&failures, "a", at(3)),
            LockoutDecision::Locked {
                until: at(60),
                scope: LockScope::Account
            }
        );
    }

    #[test]
    fn invalid_policies_are_rejected() {
        let mut policy = LockoutPolicy::default();
        policy.per_client.max_failures = 0;
        assert!(policy.validate().is_err());
        let mut policy = LockoutPolicy::default();
        policy.per_account.max_failures = 4;
        assert!(policy.validate().is_err());
        LockoutPolicy::default().validate().unwrap();
    }

    #[tokio::test]
    async fn a_client_window_longer_than_the_account_window_is_rejected() {
        // 5 per client per hour, but the account ceiling only looks at one minute.
        let policy = LockoutPolicy {
            per_client: LockoutLimit {
                max_failures: 5,
                window_seconds: 3600,
            },
            per_account: LockoutLimit {
                max_failures: 50,
                window_seconds: 60,
            },
        };
        // Why: `check` reads only the account's newest `fetch_limit()` (50) failures. Client
        // "a" fails 5 times, then 50 failures from other addresses, one a minute (never 50 in
        // one minute), push a's failures out of that read: a would be let in again within its
        // hour although it is locked.
        let mut failures: Vec<_> = (0..5).map(|m| failure(m, "a")).collect();
        failures.extend((5..55).map(|m| failure(m, &format!("other-{m}"))));
        let now = at(55);
        assert!(policy.evaluate(&failures, "a", now).is_locked());
        failures.sort_by_key(|f| std::cmp::Reverse(f.at));
        failures.truncate(policy.fetch_limit() as usize);
        assert!(!policy.evaluate(&failures, "a", now).is_locked());

        assert!(matches!(
            policy.validate(),
            Err(AuthError::InvalidConfig {
                field: "lockout.per_account",
                ..
            })
        ));
        let store = Arc::new(InMemoryLoginAttemptStore::new());
        let clock = Arc::new(ManualClock::new(t0()));
        assert!(LockoutService::new(policy, store, clock).is_err());
    }

    #[test]
    fn account_keys_are_normalised() {
        assert_eq!(account_key("  Owner@Example.COM "), "owner@example.com");
    }

    #[tokio::test]
    async fn service_over_the_store_slides_and_forgives_on_success() {
        let clock = Arc::new(ManualClock::new(t0()));
        let service = LockoutService::new(
            LockoutPolicy::default(),
            Arc::new(InMemoryLoginAttemptStore::new()),
            clock.clone(),
        )
        .unwrap();
        let account = account_key("owner@example.com");
        for _ in 0..5 {
            assert!(!service.check(&account, "a").await.unwrap().is_locked());
            service.record_failure(&account, "a").await.unwrap();
            clock.advance(Duration::minutes(1));
        }
        // Failures at minutes 0..=4; the lock lifts at minute 15.
        assert_eq!(
            service.check(&account, "a").await.unwrap(),
            LockoutDecision::Locked {
                until: at(15),
                scope: LockScope::Client
            }
        );
        assert!(!service.check(&account, "b").await.unwrap().is_locked());
        clock.set(at(15));
        assert!(!service.check(&account, "a").await.unwrap().is_locked());

        // A success from "b" forgives b's failures, not a's.
        for _ in 0..4 {
            service.record_failure(&account, "b").await.unwrap();
        }
        service.record_success(&account, "b").await.unwrap();
        service.record_failure(&account, "b").await.unwrap();
        assert!(!service.check(&account, "b").await.unwrap().is_locked());
    }

    /// `attempts` concurrent logins by one client, each taking `verify` to check its (wrong)
    /// password; returns how many got to check it.
    async fn concurrent_guesses(
        service: &LockoutService,
        attempts: usize,
        serialised: bool,
    ) -> usize {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..attempts {
            let service = service.clone();
            tasks.spawn(async move {
                let account = account_key("owner@example.com");
                let verify = std::time::Duration::from_millis(50);
                if serialised {
                    let attempt = service.begin(&account, "attacker").await.unwrap();
                    if attempt.decision().is_locked() {
                        return false;
                    }
                    tokio::time::sleep(verify).await;
                    attempt.failed().await.unwrap();
                } else {
                    if service
                        .check(&account, "attacker")
                        .await
                        .unwrap()
                        .is_locked()
                    {
                        return false;
                    }
                    tokio::time::sleep(verify).await;
                    service.record_failure(&account, "attacker").await.unwrap();
                }
                true
            });
        }
        let mut checked = 0;
        while let Some(done) = tasks.join_next().await {
            checked += usize::from(done.unwrap());
        }
        checked
    }

    fn service_at_t0() -> LockoutService {
        LockoutService::new(
            LockoutPolicy::default(),
            Arc::new(InMemoryLoginAttemptStore::new()),
            Arc::new(ManualClock::new(t0())),
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_attempts_get_no_more_guesses_than_the_limit() {
        // check() then record_failure() leaves the password check in between: a burst of
        // parallel requests all pass check() before the first failure is recorded.
        let racy = concurrent_guesses(&service_at_t0(), 20, false).await;
        assert!(
            racy > 5,
            "the race this test is about did not show ({racy})"
        );

        // begin() holds the account's turn until the outcome is recorded.
        assert_eq!(concurrent_guesses(&service_at_t0(), 20, true).await, 5);
    }

    #[tokio::test]
    async fn begin_success_forgives_and_turns_are_released() {
        let service = service_at_t0();
        let account = account_key("owner@example.com");
        for _ in 0..4 {
            let attempt = service.begin(&account, "a").await.unwrap();
            assert_eq!(attempt.decision(), LockoutDecision::Allowed);
            attempt.failed().await.unwrap();
        }
        let attempt = service.begin(&account, "a").await.unwrap();
        attempt.succeeded().await.unwrap();
        // The success forgave a's failures; an attempt dropped without an outcome records none.
        for _ in 0..10 {
            let attempt = service.begin(&account, "a").await.unwrap();
            assert_eq!(attempt.decision(), LockoutDecision::Allowed);
        }
        assert!(
            service.turns_in_use() == 0,
            "a finished attempt left its turn behind"
        );
    }

    proptest! {
        /// Against a brute-force model: locked at `now` iff some limit has at least
        /// `max_failures` failures inside the window, and `until` is the first instant (to the
        /// second) at which neither does.
        #[test]
        fn evaluate_matches_a_brute_force_model(
            raw in proptest::collection::vec((0i64..3600, 0usize..3), 0..30),
            now_s in 0i64..4000,
            client in 0usize..3,
        ) {
            let policy = LockoutPolicy {
                per_client: LockoutLimit { max_failures: 3, window_seconds: 600 },
                per_account: LockoutLimit { max_failures: 5, window_seconds: 900 },
            };
            let clients = ["a", "b", "c"];
            let failures: Vec<FailedLogin> = raw
                .iter()
                .filter(|(s, _)| *s <= now_s)
                .map(|(s, c)| FailedLogin { at: t0() + Duration::seconds(*s), client: clients[*c].into() })
                .collect();
            let locked_at = |now: DateTime<Utc>| {
                let count = |client_only: bool, window: i64| failures
                    .iter()
                    .filter(|f| !client_only || f.client == clients[client])
                    .filter(|f| now < f.at + Duration::seconds(window))
                    .count();
                count(true, 600) >= 3 || count(false, 900) >= 5
            };
            let now = t0() + Duration::seconds(now_s);
            match policy.evaluate(&failures, clients[client], now) {
                LockoutDecision::Allowed => prop_assert!(!locked_at(now)),
                LockoutDecision::Locked { until, .. } => {
                    prop_assert!(locked_at(now));
                    prop_assert!(locked_at(until - Duration::seconds(1)));
                    prop_assert!(!locked_at(until));
                }
            }
        }
    }
}
