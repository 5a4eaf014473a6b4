//! Login, refresh with rotation and reuse detection, logout, logout everywhere.
//!
//! Every login starts a *refresh family*: the chain of refresh tokens that descend from it. The
//! store remembers, per family, the one refresh token that may still be used. A refresh
//! exchanges that token for a new pair and moves the family on (an atomic compare-and-swap).
//! Presenting a token of the family that is no longer current means a copy of it exists
//! somewhere — a stolen token, or an attacker racing the owner — so the **whole family is
//! revoked** and the error is [`AuthError::RefreshTokenReused`], which the server audit-logs.
//! The legitimate user then has to log in again; the thief's copy is dead too.
//!
//! Two concurrent refreshes with the same token are indistinguishable from theft, so the loser
//! counts as reuse as well: exactly one gets a new pair, and the family is then revoked.
//! Clients should serialise their refreshes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), samokoder_auth::AuthError> {
//! use std::sync::Arc;
//!
//! use samokoder_auth::AuthError;
//! use samokoder_auth::memory::{InMemoryRefreshFamilyStore, InMemoryRevocationStore};
//! use samokoder_auth::refresh::RefreshService;
//! use samokoder_auth::tokens::{SigningKeyConfig, TokenConfig, TokenIssuer};
//! use uuid::Uuid;
//!
//! let issuer = Arc::new(TokenIssuer::new(&TokenConfig {
//!     keys: vec![SigningKeyConfig::generate("k1")],
//!     ..TokenConfig::default()
//! })?);
//! let service = RefreshService::new(
//!     issuer,
//!     Arc::new(InMemoryRefreshFamilyStore::new()),
//!     Arc::new(InMemoryRevocationStore::new()),
//! );
//!
//! let login = service.login(Uuid::new_v4()).await?;
//! let rotated = service.refresh(login.refresh.token.expose()).await?;
//!
//! // The first refresh token was used up: presenting it again revokes the family...
//! let reuse = service.refresh(login.refresh.token.expose()).await;
//! assert!(matches!(reuse, Err(AuthError::RefreshTokenReused { .. })));
//! // ...so the newest token of the family is dead as well.
//! let newest = service.refresh(rotated.refresh.token.expose()).await;
//! assert!(matches!(newest, Err(AuthError::RefreshFamilyRevoked { .. })));
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use uuid::Uuid;

use crate::error::{AuthError, AuthResult, InvalidTokenReason};
use crate::ports::{RefreshFamily, RefreshFamilyStore, RevocationStore};
use crate::tokens::{AccessClaims, IssuedToken, TokenIssuer};

/// A new access and refresh token.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The access token.
    pub access: IssuedToken,
    /// The refresh token.
    pub refresh: IssuedToken,
    /// The refresh family both belong to (the session).
    pub family_id: Uuid,
    /// The user.
    pub user_id: Uuid,
}

/// The session flows over the token issuer and the stores.
#[derive(Clone)]
pub struct RefreshService {
    issuer: Arc<TokenIssuer>,
    families: Arc<dyn RefreshFamilyStore>,
    revocations: Arc<dyn RevocationStore>,
}

impl std::fmt::Debug for RefreshService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshService")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl RefreshService {
    /// Ties the issuer to the stores.
    pub fn new(
        issuer: Arc<TokenIssuer>,
        families: Arc<dyn RefreshFamilyStore>,
        revocations: Arc<dyn RevocationStore>,
    ) -> Self {
        Self {
            issuer,
            families,
            revocations,
        }
    }

    /// The token issuer.
    pub fn issuer(&self) -> &Arc<TokenIssuer> {
        &self.issuer
    }

    /// Starts a session for an authenticated user: a new family and its first token pair.
    pub async fn login(&self, user_id: Uuid) -> AuthResult<TokenPair> {
        let family_id = Uuid::new_v4();
        let refresh = self.issuer.issue_refresh(user_id, family_id)?;
        self.families
            .create_family(&RefreshFamily {
                family_id,
                user_id,
                current_jti: refresh.token_id,
                expires_at: refresh.expires_at,
                revoked_at: None,
            })
            .await?;
        let access = self.issuer.issue_access(user_id)?;
        Ok(TokenPair {
            access,
            refresh,
            family_id,
            user_id,
        })
    }

    /// Exchanges a refresh token for a new pair, rotating the family.
    ///
    /// Errors: [`AuthError::InvalidToken`] / [`AuthError::TokenExpired`] for a bad token,
    /// [`AuthError::RefreshFamilyRevoked`] when the session was ended, and
    /// [`AuthError::RefreshTokenReused`] when the token was already used (the family is now
    /// revoked). All of them mean "log in again"; only the last one needs an audit entry.
    pub async fn refresh(&self, refresh_token: &str) -> AuthResult<TokenPair> {
        let claims = self.issuer.verify_refresh(refresh_token)?;
        let family = self
            .families
            .family(claims.family_id)
            .await?
            .filter(|family| family.user_id == claims.user_id)
            .ok_or(AuthError::InvalidToken(InvalidTokenReason::UnknownFamily))?;
        if family.revoked_at.is_some() {
            return Err(AuthError::RefreshFamilyRevoked {
                family_id: family.family_id,
            });
        }
        if family.current_jti != claims.token_id {
            return Err(self.reuse_detected(&family).await);
        }

        let refresh = self
            .issuer
            .issue_refresh(claims.user_id, claims.family_id)?;
        let rotated = self
            .families
            .rotate(
                claims.family_id,
                claims.token_id,
                refresh.token_id,
                refresh.expires_at,
            )
            .await?;
        if !rotated {
            // The family changed since we read it. Revoked meanwhile (a logout racing this
            // refresh): the session is over, nothing was stolen. Moved on: the same token was
            // presented twice.
            let now = self.families.family(claims.family_id).await?;
            if let Some(revoked) = now.filter(|family| family.revoked_at.is_some()) {
                return Err(AuthError::RefreshFamilyRevoked {
                    family_id: revoked.family_id,
                });
            }
            return Err(self.reuse_detected(&family).await);
        }
        let access = self.issuer.issue_access(claims.user_id)?;
        Ok(TokenPair {
            access,
            refresh,
            family_id: claims.family_id,
            user_id: claims.user_id,
        })
    }

    async fn reuse_detected(&self, family: &RefreshFamily) -> AuthError {
        tracing::warn!(
            family_id = %family.family_id,
            user_id = %family.user_id,
            "refresh token reuse detected; revoking the family"
        );
        match self
            .families
            .revoke_family(family.family_id, self.issuer.now())
            .await
        {
            Ok(()) => AuthError::RefreshTokenReused {
                family_id: family.family_id,
                user_id: family.user_id,
            },
            // The family could not be revoked: report the outage, which the server turns into a
            // 5xx, rather than pretend the session is safe.
            Err(e) => AuthError::Store(e),
        }
    }

    /// Ends the session a refresh token belongs to: its family is revoked, so neither it nor
    /// any token rotated from it can refresh again. An expired but authentic token still ends
    /// its session. Pair with [`RefreshService::revoke_access`] for the access token in hand.
    pub async fn logout(&self, refresh_token: &str) -> AuthResult<()> {
        let claims = self.issuer.verify_refresh_allowing_expired(refresh_token)?;
        let family = self.families.family(claims.family_id).await?;
        // Only the family's owner can end it; a token naming another user's family is forged
        // (or signed with a leaked key), and must not become a way to log others out.
        if family.is_some_and(|family| family.user_id == claims.user_id) {
            self.families
                .revoke_family(claims.family_id, self.issuer.now())
                .await?;
        }
        Ok(())
    }

    /// Revokes one access token until it expires (logout of the current device).
    ///
    /// The revocation is kept until `exp` *plus the verifier's leeway*, the last instant the
    /// token still verifies: a purge of expired revocations at `exp` would otherwise bring the
    /// token back to life for the length of the leeway.
    pub async fn revoke_access(&self, claims: &AccessClaims) -> AuthResult<()> {
        self.revocations
            .revoke_token(claims.token_id, claims.expires_at + self.issuer.leeway())
            .await?;
        Ok(())
    }

    /// Logs a user out everywhere (also after a password change): every refresh family is
    /// revoked, and every access token issued up to now stops working. Returns how many
    /// families were revoked.
    ///
    /// The mark has the tokens' resolution (microseconds): a token issued after this call
    /// lives, however soon after.
    pub async fn logout_all(&self, user_id: Uuid) -> AuthResult<u64> {
        let now = self.issuer.now();
        let revoked = self.families.revoke_user_families(user_id, now).await?;
        self.revocations
            .revoke_user_tokens_before(user_id, now)
            .await?;
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::memory::{InMemoryRefreshFamilyStore, InMemoryRevocationStore};
    use crate::ports::{RefreshFamily, TokenRef};
    use crate::secret::SecretString;
    use crate::tokens::{SigningKeyConfig, TokenConfig};

    struct Fixture {
        service: RefreshService,
        families: Arc<InMemoryRefreshFamilyStore>,
        revocations: Arc<InMemoryRevocationStore>,
        clock: Arc<ManualClock>,
    }

    fn fixture() -> Fixture {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
        ));
        let issuer = TokenIssuer::with_clock(
            &TokenConfig {
                keys: vec![SigningKeyConfig {
                    kid: "k1".into(),
                    secret: SecretString::new("refresh-tests-secret-0123456789abcdef"),
                }],
                ..TokenConfig::default()
            },
            clock.clone(),
        )
        .unwrap();
        let families = Arc::new(InMemoryRefreshFamilyStore::new());
        let revocations = Arc::new(InMemoryRevocationStore::new());
        Fixture {
            service: RefreshService::new(Arc::new(issuer), families.clone(), revocations.clone()),
            families,
            revocations,
            clock,
        }
    }

    #[tokio::test]
    async fn login_creates_a_family_pointing_at_the_refresh_token() {
        let f = fixture();
        let user = Uuid::new_v4();
        let pair = f.service.login(user).await.unwrap();
        let family = f.families.family(pair.family_id).await.unwrap().unwrap();
        assert_eq!(family.user_id, user);
        assert_eq!(family.current_jti, pair.refresh.token_id);
        assert_eq!(family.expires_at, pair.refresh.expires_at);
        let access = f
            .service
            .issuer()
            .verify_access(pair.access.token.expose())
            .unwrap();
        assert_eq!(access.user_id, user);
    }

    #[tokio::test]
    async fn rotation_chain_works_and_moves_the_family() {
        let f = fixture();
        let user = Uuid::new_v4();
        let mut pair = f.service.login(user).await.unwrap();
        for _ in 0..3 {
            f.clock.advance(Duration::minutes(10));
            let next = f
                .service
                .refresh(pair.refresh.token.expose())
                .await
                .unwrap();
            assert_eq!(next.family_id, pair.family_id);
            assert_eq!(next.user_id, user);
            assert_ne!(next.refresh.token_id, pair.refresh.token_id);
            let family = f.families.family(pair.family_id).await.unwrap().unwrap();
            assert_eq!(family.current_jti, next.refresh.token_id);
            pair = next;
        }
    }

    #[tokio::test]
    async fn reuse_of_a_rotated_token_revokes_the_family() {
        let f = fixture();
        let user = Uuid::new_v4();
        let first = f.service.login(user).await.unwrap();
        let second = f
            .service
            .refresh(first.refresh.token.expose())
            .await
            .unwrap();

        let reuse = f.service.refresh(first.refresh.token.expose()).await;
        assert!(matches!(
            reuse,
            Err(AuthError::RefreshTokenReused { family_id, user_id })
                if family_id == first.family_id && user_id == user
        ));
        let family = f.families.family(first.family_id).await.unwrap().unwrap();
        assert!(family.revoked_at.is_some());
        // The newest token of the family fails too.
        assert!(matches!(
            f.service.refresh(second.refresh.token.expose()).await,
            Err(AuthError::RefreshFamilyRevoked { .. })
        ));
        // Other sessions of the same user are untouched.
        let other = f.service.login(user).await.unwrap();
        f.service
            .refresh(other.refresh.token.expose())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_refreshes_with_one_token_exactly_one_wins() {
        for _ in 0..20 {
            let f = fixture();
            let pair = f.service.login(Uuid::new_v4()).await.unwrap();
            let token = pair.refresh.token.expose().to_owned();
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..8 {
                let service = f.service.clone();
                let token = token.clone();
                tasks.spawn(async move { service.refresh(&token).await });
            }
            let mut wins = 0;
            while let Some(result) = tasks.join_next().await {
                match result.unwrap() {
                    Ok(_) => wins += 1,
                    // Late losers find the family already revoked by an earlier loser.
                    Err(
                        AuthError::RefreshTokenReused { .. }
                        | AuthError::RefreshFamilyRevoked { .. },
                    ) => {}
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
            assert_eq!(wins, 1);
        }
    }

    /// A family store where a logout lands between the refresh's read and its rotation.
    struct LogoutDuringRefresh(Arc<InMemoryRefreshFamilyStore>);

    #[async_trait::async_trait]
    impl RefreshFamilyStore for LogoutDuringRefresh {
        async fn create_family(&self, family: &RefreshFamily) -> crate::ports::PortResult<()> {
            self.0.create_family(family).await
        }
        async fn family(&self, id: Uuid) -> crate::ports::PortResult<Option<RefreshFamily>> {
            self.0.family(id).await
        }
        async fn rotate(
            &self,
            family_id: Uuid,
            expected_jti: Uuid,
            next_jti: Uuid,
            next_expires_at: chrono::DateTime<Utc>,
        ) -> crate::ports::PortResult<bool> {
            let at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
            self.0.revoke_family(family_id, at).await?;
            self.0
                .rotate(family_id, expected_jti, next_jti, next_expires_at)
                .await
        }
        async fn revoke_family(
            &self,
            family_id: Uuid,
            at: chrono::DateTime<Utc>,
        ) -> crate::ports::PortResult<()> {
            self.0.revoke_family(family_id, at).await
        }
        async fn revoke_user_families(
            &self,
            user_id: Uuid,
            at: chrono::DateTime<Utc>,
        ) -> crate::ports::PortResult<u64> {
            self.0.revoke_user_families(user_id, at).await
        }
    }

    #[tokio::test]
    async fn a_logout_racing_a_refresh_is_not_reported_as_token_theft() {
        let f = fixture();
        let service = RefreshService::new(
            f.service.issuer().clone(),
            Arc::new(LogoutDuringRefresh(f.families.clone())),
            f.revocations.clone(),
        );
        let pair = service.login(Uuid::new_v4()).await.unwrap();
        let result = service.refresh(pair.refresh.token.expose()).await;
        assert!(
            matches!(result, Err(AuthError::RefreshFamilyRevoked { .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn access_token_cannot_refresh_and_expired_refresh_fails() {
        let f = fixture();
        let pair = f.service.login(Uuid::new_v4()).await.unwrap();
        assert!(matches!(
            f.service.refresh(pair.access.token.expose()).await,
            Err(AuthError::InvalidToken(
                InvalidTokenReason::WrongType { .. }
            ))
        ));
        f.clock.advance(Duration::days(8));
        assert!(matches!(
            f.service.refresh(pair.refresh.token.expose()).await,
            Err(AuthError::TokenExpired)
        ));
    }

    #[tokio::test]
    async fn refresh_token_of_an_unknown_family_is_invalid() {
        let f = fixture();
        let stray = f
            .service
            .issuer()
            .issue_refresh(Uuid::new_v4(), Uuid::new_v4())
            .unwrap();
        assert!(matches!(
            f.service.refresh(stray.token.expose()).await,
            Err(AuthError::InvalidToken(InvalidTokenReason::UnknownFamily))
        ));
    }

    #[tokio::test]
    async fn logout_revokes_the_family_even_with_an_expired_token() {
        let f = fixture();
        let pair = f.service.login(Uuid::new_v4()).await.unwrap();
        f.service.logout(pair.refresh.token.expose()).await.unwrap();
        assert!(matches!(
            f.service.refresh(pair.refresh.token.expose()).await,
            Err(AuthError::RefreshFamilyRevoked { .. })
        ));

        let pair = f.service.login(Uuid::new_v4()).await.unwrap();
        f.clock.advance(Duration::days(30));
        f.service.logout(pair.refresh.token.expose()).await.unwrap();
        let family = f.families.family(pair.family_id).await.unwrap().unwrap();
        assert!(family.revoked_at.is_some());
    }

    #[tokio::test]
    async fn revoke_access_marks_the_token() {
        let f = fixture();
        let pair = f.service.login(Uuid::new_v4()).await.unwrap();
        let claims = f
            .service
            .issuer()
            .verify_access(pair.access.token.expose())
            .unwrap();
        f.service.revoke_access(&claims).await.unwrap();
        assert!(
            f.revocations
                .is_revoked(&TokenRef::from(&claims))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn revoked_access_token_stays_revoked_through_the_leeway_after_a_purge() {
        let f = fixture();
        let pair = f.service.login(Uuid::new_v4()).await.unwrap();
        let token = pair.access.token.expose();
        let claims = f.service.issuer().verify_access(token).unwrap();
        f.service.revoke_access(&claims).await.unwrap();

        // Past `exp` but inside the 30 s leeway the token still verifies...
        f.clock.set(claims.expires_at + Duration::seconds(10));
        let claims = f.service.issuer().verify_access(token).unwrap();
        // ...so the routine purge of expired revocations must not forget it yet.
        f.revocations.purge_expired(f.clock.now());
        assert!(
            f.revocations
                .is_revoked(&TokenRef::from(&claims))
                .await
                .unwrap(),
            "a purge at exp + 10 s resurrected a revoked access token"
        );

        // Once the leeway is over the token is dead by itself and the row may go.
        f.clock.set(claims.expires_at + Duration::seconds(31));
        assert!(matches!(
            f.service.issuer().verify_access(token),
            Err(AuthError::TokenExpired)
        ));
        assert_eq!(f.revocations.purge_expired(f.clock.now()), 1);
    }

    #[tokio::test]
    async fn logout_all_revokes_every_family_and_earlier_access_tokens() {
        let f = fixture();
        let user = Uuid::new_v4();
        let a = f.service.login(user).await.unwrap();
        let b = f.service.login(user).await.unwrap();
        let bystander = f.service.login(Uuid::new_v4()).await.unwrap();
        f.clock.advance(Duration::seconds(5));

        assert_eq!(f.service.logout_all(user).await.unwrap(), 2);

        for pair in [&a, &b] {
            assert!(matches!(
                f.service.refresh(pair.refresh.token.expose()).await,
                Err(AuthError::RefreshFamilyRevoked { .. })
            ));
            let claims = f
                .service
                .issuer()
                .verify_access(pair.access.token.expose())
                .unwrap();
            assert!(
                f.revocations
                    .is_revoked(&TokenRef::from(&claims))
                    .await
                    .unwrap()
            );
        }
        f.service
            .refresh(bystander.refresh.token.expose())
            .await
            .unwrap();

        // A login right after the logout, in the same second, works: marks and tokens are
        // precise to the microsecond.
        f.clock.advance(Duration::microseconds(1));
        let fresh = f.service.login(user).await.unwrap();
        let claims = f
            .service
            .issuer()
            .verify_access(fresh.access.token.expose())
            .unwrap();
        assert!(
            !f.revocations
                .is_revoked(&TokenRef::from(&claims))
                .await
                .unwrap()
        );
        f.service
            .refresh(fresh.refresh.token.expose())
            .await
            .unwrap();
    }
}
