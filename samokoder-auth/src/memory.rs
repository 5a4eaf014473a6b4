//! In-memory implementations of the [`crate::ports`], for tests and for embedders that run a
//! single process without a database.
//!
//! Each store keeps its state behind one mutex, so every trait method is atomic exactly as the
//! port requires (in particular [`RefreshFamilyStore::rotate`] is a true compare-and-swap).
//! The lock is never held across an `.await`. Nothing survives a restart: after one, every
//! refresh token fails with an unknown family, revocations are forgotten (access tokens live
//! 15 minutes), and lockout counters start from zero.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::ports::{
    FailedLogin, LoginAttemptStore, PortResult, RefreshFamily, RefreshFamilyStore, RevocationStore,
    TokenRef,
};

/// A poisoned lock means a panic while holding it; every critical section here leaves the
/// data consistent at each step, so the data is still good to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Refresh families in a hash map.
#[derive(Debug, Default)]
pub struct InMemoryRefreshFamilyStore {
    families: Mutex<HashMap<Uuid, RefreshFamily>>,
}

impl InMemoryRefreshFamilyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops families whose current token expired before `now`, so a long-running process
    /// does not grow without bound. Returns how many were dropped.
    pub fn purge_expired(&self, now: DateTime<Utc>) -> usize {
        let mut families = lock(&self.families);
        let before = families.len();
        families.retain(|_, family| family.expires_at >= now);
        before - families.len()
    }
}

#[async_trait]
impl RefreshFamilyStore for InMemoryRefreshFamilyStore {
    async fn create_family(&self, family: &RefreshFamily) -> PortResult<()> {
        lock(&self.families).insert(family.family_id, family.clone());
        Ok(())
    }

    async fn family(&self, family_id: Uuid) -> PortResult<Option<RefreshFamily>> {
        Ok(lock(&self.families).get(&family_id).cloned())
    }

    async fn rotate(
        &self,
        family_id: Uuid,
        expected_jti: Uuid,
        next_jti: Uuid,
        next_expires_at: DateTime<Utc>,
    ) -> PortResult<bool> {
        let mut families = lock(&self.families);
        match families.get_mut(&family_id) {
            Some(family) if family.revoked_at.is_none() && family.current_jti == expected_jti => {
                family.current_jti = next_jti;
                family.expires_at = next_expires_at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_family(&self, family_id: Uuid, at: DateTime<Utc>) -> PortResult<()> {
        if let Some(family) = lock(&self.families).get_mut(&family_id) {
            // Keep the first revocation time: it is the one an audit wants.
            family.revoked_at.get_or_insert(at);
        }
        Ok(())
    }

    async fn revoke_user_families(&self, user_id: Uuid, at: DateTime<Utc>) -> PortResult<u64> {
        let mut revoked = 0;
        for family in lock(&self.families).values_mut() {
            if family.user_id == user_id && family.revoked_at.is_none() {
                family.revoked_at = Some(at);
                revoked += 1;
            }
        }
        Ok(revoked)
    }
}

#[derive(Debug, Default)]
struct Revocations {
    /// Revoked token ids, with the time after which the entry is useless.
    tokens: HashMap<Uuid, DateTime<Utc>>,
    /// Per user: tokens issued at or before this instant are revoked.
    users: HashMap<Uuid, DateTime<Utc>>,
}

/// Revoked access tokens and per-user revocation marks in hash maps.
#[derive(Debug, Default)]
pub struct InMemoryRevocationStore {
    state: Mutex<Revocations>,
}

impl InMemoryRevocationStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops revoked-token entries whose token expired before `now` (a check against them
    /// would fail on expiry anyway). Returns how many were dropped.
    pub fn purge_expired(&self, now: DateTime<Utc>) -> usize {
        let mut state = lock(&self.state);
        let before = state.tokens.len();
        state.tokens.retain(|_, expires_at| *expires_at >= now);
        before - state.tokens.len()
    }
}

#[async_trait]
impl RevocationStore for InMemoryRevocationStore {
    async fn revoke_token(&self, jti: Uuid, expires_at: DateTime<Utc>) -> PortResult<bool> {
        let mut state = lock(&self.state);
        match state.tokens.entry(jti) {
            Entry::Occupied(mut existing) => {
                let later = (*existing.get()).max(expires_at);
                existing.insert(later);
                Ok(false)
            }
            Entry::Vacant(slot) => {
                slot.insert(expires_at);
                Ok(true)
            }
        }
    }

    async fn revoke_user_tokens_before(&self, user_id: Uuid, at: DateTime<Utc>) -> PortResult<()> {
        // Marks only move forward: an older "logout everywhere" replayed late must not
        // un-revoke tokens a newer one covered.
        lock(&self.state)
            .users
            .entry(user_id)
            .and_modify(|existing| *existing = (*existing).max(at))
            .or_insert(at);
        Ok(())
    }

    async fn is_revoked(&self, token: &TokenRef) -> PortResult<bool> {
        let state = lock(&self.state);
        Ok(state.tokens.contains_key(&token.jti)
            || state
                .users
                .get(&token.user_id)
                .is_some_and(|before| token.issued_at <= *before))
    }
}

#[derive(Debug, Clone)]
struct Attempt {
    at: DateTime<Utc>,
    client: String,
    succeeded: bool,
}

#[derive(Debug, Default)]
struct Attempts {
    by_account: HashMap<String, Vec<Attempt>>,
    /// When the map reaches this many accounts, accounts with nothing inside the retention
    /// are dropped (and the mark doubles the size that remains), so the cost is amortised.
    sweep_at: usize,
}

/// Accounts held before the first sweep for stale ones.
const FIRST_SWEEP_AT: usize = 1024;

/// Login attempts per account in a hash map.
///
/// Attempts are recorded for any e-mail a client types, existing or not, so the accounts whose
/// attempts have all aged out of the retention are dropped as the map grows; otherwise a stream
/// of logins for made-up addresses would grow it without bound.
#[derive(Debug)]
pub struct InMemoryLoginAttemptStore {
    attempts: Mutex<Attempts>,
    retention: Duration,
}

impl Default for InMemoryLoginAttemptStore {
    fn default() -> Self {
        Self::with_retention(Duration::days(1))
    }
}

impl InMemoryLoginAttemptStore {
    /// A store that forgets attempts older than one day (well beyond any lockout window).
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that forgets attempts older than `retention`, measured from the newest attempt
    /// recorded for the same account. Keep it at least as long as the longest lockout window.
    pub fn with_retention(retention: Duration) -> Self {
        Self {
            attempts: Mutex::new(Attempts {
                by_account: HashMap::new(),
                sweep_at: FIRST_SWEEP_AT,
            }),
            retention,
        }
    }

    /// How many accounts have attempts held.
    #[cfg(test)]
    fn accounts(&self) -> usize {
        lock(&self.attempts).by_account.len()
    }
}

#[async_trait]
impl LoginAttemptStore for InMemoryLoginAttemptStore {
    async fn record_attempt(
        &self,
        account: &str,
        client: &str,
        succeeded: bool,
        at: DateTime<Utc>,
    ) -> PortResult<()> {
        let mut attempts = lock(&self.attempts);
        let horizon = at - self.retention;
        let list = attempts.by_account.entry(account.to_owned()).or_default();
        list.push(Attempt {
            at,
            client: client.to_owned(),
            succeeded,
        });
        list.retain(|attempt| attempt.at >= horizon);
        if attempts.by_account.len() >= attempts.sweep_at {
            attempts
                .by_account
                .retain(|_, list| list.iter().any(|attempt| attempt.at >= horizon));
            attempts.sweep_at = (attempts.by_account.len() * 2).max(FIRST_SWEEP_AT);
        }
        Ok(())
    }

    async fn recent_failures(
        &self,
        account: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> PortResult<Vec<FailedLogin>> {
        let attempts = lock(&self.attempts);
        let Some(list) = attempts.by_account.get(account) else {
            return Ok(Vec::new());
        };
        // A success forgives the same client's failures before it: earlier in time, or at the
        // same instant but recorded earlier (as the SQL backends order by time, then row id).
        let mut latest_success: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for attempt in list.iter().filter(|a| a.succeeded) {
            let entry = latest_success
                .entry(attempt.client.as_str())
                .or_insert(attempt.at);
            *entry = (*entry).max(attempt.at);
        }
        // Walking newest-recorded first, the latest success recorded after each attempt.
        let mut success_after: HashMap<&str, DateTime<Utc>> = HashMap::new();
        let mut failures = Vec::new();
        for attempt in list.iter().rev() {
            let client = attempt.client.as_str();
            if attempt.succeeded {
                let entry = success_after.entry(client).or_insert(attempt.at);
                *entry = (*entry).max(attempt.at);
                continue;
            }
            let forgiven = latest_success
                .get(client)
                .is_some_and(|success| *success > attempt.at)
                || success_after
                    .get(client)
                    .is_some_and(|success| *success >= attempt.at);
            if !forgiven && attempt.at >= since {
                failures.push(FailedLogin {
                    at: attempt.at,
                    client: attempt.client.clone(),
                });
            }
        }
        // Newest first; among equal times the later recorded first (the list is in that order
        // already and the sort is stable).
        failures.sort_by_key(|failure| std::cmp::Reverse(failure.at));
        failures.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(failures)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(seconds)
    }

    fn family(user_id: Uuid) -> RefreshFamily {
        RefreshFamily {
            family_id: Uuid::new_v4(),
            user_id,
            current_jti: Uuid::new_v4(),
            expires_at: t(1000),
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn rotate_is_a_compare_and_swap() {
        let store = InMemoryRefreshFamilyStore::new();
        let f = family(Uuid::new_v4());
        store.create_family(&f).await.unwrap();
        let next = Uuid::new_v4();
        assert!(
            store
                .rotate(f.family_id, f.current_jti, next, t(2000))
                .await
                .unwrap()
        );
        // The old jti no longer matches.
        assert!(
            !store
                .rotate(f.family_id, f.current_jti, Uuid::new_v4(), t(3000))
                .await
                .unwrap()
        );
        let stored = store.family(f.family_id).await.unwrap().unwrap();
        assert_eq!((stored.current_jti, stored.expires_at), (next, t(2000)));
        // Revoked families do not rotate; unknown ones neither.
        store.revoke_family(f.family_id, t(10)).await.unwrap();
        assert!(
            !store
                .rotate(f.family_id, next, Uuid::new_v4(), t(3000))
                .await
                .unwrap()
        );
        assert!(
            !store
                .rotate(Uuid::new_v4(), next, Uuid::new_v4(), t(3000))
                .await
                .unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_rotations_exactly_one_wins() {
        let store = Arc::new(InMemoryRefreshFamilyStore::new());
        let f = family(Uuid::new_v4());
        store.create_family(&f).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let store = store.clone();
            let (id, jti) = (f.family_id, f.current_jti);
            tasks.spawn(async move { store.rotate(id, jti, Uuid::new_v4(), t(5)).await });
        }
        let mut wins = 0;
        while let Some(result) = tasks.join_next().await {
            wins += usize::from(result.unwrap().unwrap());
        }
        assert_eq!(wins, 1);
    }

    #[tokio::test]
    async fn revocation_keeps_the_first_time_and_counts_per_user() {
        let store = InMemoryRefreshFamilyStore::new();
        let user = Uuid::new_v4();
        let (a, b, other) = (family(user), family(user), family(Uuid::new_v4()));
        for f in [&a, &b, &other] {
            store.create_family(f).await.unwrap();
        }
        store.revoke_family(a.family_id, t(1)).await.unwrap();
        store.revoke_family(a.family_id, t(2)).await.unwrap();
        assert_eq!(
            store.family(a.family_id).await.unwrap().unwrap().revoked_at,
            Some(t(1))
        );
        // Only b was still live.
        assert_eq!(store.revoke_user_families(user, t(3)).await.unwrap(), 1);
        assert!(
            store
                .family(other.family_id)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none()
        );
        store.revoke_family(Uuid::new_v4(), t(4)).await.unwrap();
        assert_eq!(store.purge_expired(t(1001)), 3);
    }

    #[tokio::test]
    async fn revocation_by_id_and_by_user_mark() {
        let store = InMemoryRevocationStore::new();
        let user = Uuid::new_v4();
        let token = |issued_at| TokenRef {
            jti: Uuid::new_v4(),
            user_id: user,
            issued_at,
        };
        let one = token(t(0));
        assert!(!store.is_revoked(&one).await.unwrap());
        assert!(store.revoke_token(one.jti, t(900)).await.unwrap());
        assert!(store.is_revoked(&one).await.unwrap());
        assert!(
            !store.revoke_token(one.jti, t(600)).await.unwrap(),
            "revoked already"
        );

        store.revoke_user_tokens_before(user, t(100)).await.unwrap();
        assert!(store.is_revoked(&token(t(100))).await.unwrap());
        assert!(!store.is_revoked(&token(t(101))).await.unwrap());
        // An older mark does not move the line back.
        store.revoke_user_tokens_before(user, t(50)).await.unwrap();
        assert!(store.is_revoked(&token(t(99))).await.unwrap());
        // Other users are unaffected.
        let stranger = TokenRef {
            jti: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            issued_at: t(0),
        };
        assert!(!store.is_revoked(&stranger).await.unwrap());

        assert_eq!(store.purge_expired(t(901)), 1);
        assert!(
            !store
                .is_revoked(&TokenRef {
                    issued_at: t(200),
                    ..one
                })
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn failures_newest_first_limited_and_forgiven_per_client_on_success() {
        let store = InMemoryLoginAttemptStore::new();
        let acct = "owner@example.com";
        store
            .record_attempt(acct, "1.1.1.1", false, t(1))
            .await
            .unwrap();
        store
            .record_attempt(acct, "2.2.2.2", false, t(2))
            .await
            .unwrap();
        store
            .record_attempt(acct, "1.1.1.1", false, t(3))
            .await
            .unwrap();
        store
            .record_attempt(acct, "1.1.1.1", true, t(4))
            .await
            .unwrap();
        store
            .record_attempt(acct, "1.1.1.1", false, t(5))
            .await
            .unwrap();
        store
            .record_attempt("other", "1.1.1.1", false, t(6))
            .await
            .unwrap();

        let failures = store.recent_failures(acct, t(0), 10).await.unwrap();
        let seen: Vec<_> = failures.iter().map(|f| (f.at, f.client.as_str())).collect();
        assert_eq!(seen, vec![(t(5), "1.1.1.1"), (t(2), "2.2.2.2")]);

        assert_eq!(
            store.recent_failures(acct, t(3), 10).await.unwrap().len(),
            1
        );
        assert_eq!(
            store.recent_failures(acct, t(0), 1).await.unwrap()[0].at,
            t(5)
        );
        assert!(
            store
                .recent_failures("nobody", t(0), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn accounts_with_only_stale_attempts_are_dropped_as_the_map_grows() {
        let store = InMemoryLoginAttemptStore::with_retention(Duration::seconds(100));
        // Logins for 3000 made-up addresses, then, much later, for 3000 others.
        for i in 0..3000 {
            let account = format!("nobody-{i}@example.com");
            store
                .record_attempt(&account, "c", false, t(0))
                .await
                .unwrap();
        }
        for i in 0..3000 {
            let account = format!("someone-{i}@example.com");
            store
                .record_attempt(&account, "c", false, t(1000))
                .await
                .unwrap();
        }
        assert_eq!(store.accounts(), 3000, "the stale accounts are still held");
        let kept = store
            .recent_failures("someone-0@example.com", t(0), 10)
            .await
            .unwrap();
        assert_eq!(kept.len(), 1);
    }

    #[tokio::test]
    async fn a_success_forgives_only_what_was_recorded_before_it_at_the_same_instant() {
        // A stopped clock (or a coarse one) records several attempts at one instant; as in the
        // SQL backends, insertion order then decides what a success forgives.
        let store = InMemoryLoginAttemptStore::new();
        store.record_attempt("a", "c", false, t(0)).await.unwrap();
        store.record_attempt("a", "c", true, t(0)).await.unwrap();
        store.record_attempt("a", "c", false, t(0)).await.unwrap();
        store.record_attempt("a", "c", false, t(0)).await.unwrap();
        let failures = store.recent_failures("a", t(0), 10).await.unwrap();
        assert_eq!(
            failures.len(),
            2,
            "failures after the success were forgiven"
        );
    }

    #[tokio::test]
    async fn old_attempts_are_forgotten_after_the_retention() {
        let store = InMemoryLoginAttemptStore::with_retention(Duration::seconds(100));
        store.record_attempt("a", "c", false, t(0)).await.unwrap();
        store.record_attempt("a", "c", false, t(150)).await.unwrap();
        let failures = store.recent_failures("a", t(-1000), 10).await.unwrap();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].at, t(150));
    }
}
