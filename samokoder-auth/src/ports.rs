//! The persistence this crate needs, as small traits ("ports") that `samokoder-store` implements.
//!
//! Each method is one atomic operation on the backing store; the decisions (is this refresh token
//! reused? is this login locked?) are made in this crate, over what these traits return.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A failure of the backing store, opaque to this crate.
#[derive(Debug, thiserror::Error)]
#[error("auth storage failed: {0}")]
pub struct PortError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl PortError {
    /// Wraps any error of the backing store.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

/// Result of a port call.
pub type PortResult<T> = Result<T, PortError>;

/// One refresh-token family: the chain of refresh tokens issued from one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamily {
    /// Identifier of the family, carried in every refresh token of the chain.
    pub family_id: Uuid,
    /// The user the family belongs to.
    pub user_id: Uuid,
    /// The `jti` of the only refresh token of this family that may still be used.
    pub current_jti: Uuid,
    /// When the current refresh token expires.
    pub expires_at: DateTime<Utc>,
    /// Set when the family was revoked (logout, reuse detected, password change).
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Storage of refresh-token families, for rotation with reuse detection.
#[async_trait]
pub trait RefreshFamilyStore: Send + Sync {
    /// Stores a new family (at login).
    async fn create_family(&self, family: &RefreshFamily) -> PortResult<()>;

    /// Loads a family by id.
    async fn family(&self, family_id: Uuid) -> PortResult<Option<RefreshFamily>>;

    /// Atomically replaces the family's current token with `next_jti` if, and only if, the family
    /// is not revoked and its current token is still `expected_jti`. Returns whether it did.
    /// Two concurrent refreshes with the same token: exactly one gets `true`.
    async fn rotate(
        &self,
        family_id: Uuid,
        expected_jti: Uuid,
        next_jti: Uuid,
        next_expires_at: DateTime<Utc>,
    ) -> PortResult<bool>;

    /// Revokes one family; revoking a revoked family is not an error.
    async fn revoke_family(&self, family_id: Uuid, at: DateTime<Utc>) -> PortResult<()>;

    /// Revokes every family of a user (logout everywhere, password change). Returns how many.
    async fn revoke_user_families(&self, user_id: Uuid, at: DateTime<Utc>) -> PortResult<u64>;
}

/// What the revocation check knows about a presented access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRef {
    /// The token's `jti`.
    pub jti: Uuid,
    /// The token's subject.
    pub user_id: Uuid,
    /// The token's `iat`.
    pub issued_at: DateTime<Utc>,
}

/// Storage of revoked access tokens and per-user "revoke everything issued before" marks.
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Revokes one token id until `expires_at`, after which the row may be purged. Callers pass
    /// the last instant the token could still verify, i.e. its `exp` plus the verifier's leeway
    /// ([`crate::refresh::RefreshService::revoke_access`] does).
    ///
    /// Returns whether this call revoked it, `false` when it was revoked already (the expiry
    /// then becomes the later of the two). The answer is atomic: of concurrent calls for one
    /// id, exactly one gets `true`, which makes revocation usable as a "use once" record.
    async fn revoke_token(&self, jti: Uuid, expires_at: DateTime<Utc>) -> PortResult<bool>;

    /// Revokes every token of `user_id` issued at or before `at` (logout everywhere).
    async fn revoke_user_tokens_before(&self, user_id: Uuid, at: DateTime<Utc>) -> PortResult<()>;

    /// Whether the token was revoked, one way or the other.
    async fn is_revoked(&self, token: &TokenRef) -> PortResult<bool>;
}

/// One recorded failed login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedLogin {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The client address it came from (as the server resolved it, proxies considered).
    pub client: String,
}

/// Storage of login attempts, for the lockout policy.
#[async_trait]
pub trait LoginAttemptStore: Send + Sync {
    /// Records one attempt for an account key (the normalised e-mail, known user or not).
    async fn record_attempt(
        &self,
        account: &str,
        client: &str,
        succeeded: bool,
        at: DateTime<Utc>,
    ) -> PortResult<()>;

    /// The failed attempts for `account` at or after `since`, newest first, at most `limit` of
    /// them; failures from a client are not returned once that client later logged in successfully
    /// to this account.
    async fn recent_failures(
        &self,
        account: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> PortResult<Vec<FailedLogin>>;
}
