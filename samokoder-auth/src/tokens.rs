//! JWT access and refresh tokens, signed with a rotating keyring.
//!
//! * **Claims**: `sub` (user id, a UUID — never the e-mail), `jti` (random UUID), `iat`, `exp`
//!   (whole seconds, as RFC 7519 has them), `iat_us` (microseconds into the `iat` second, so a
//!   token issued right after a "log out everywhere" mark is not caught by it), `typ`
//!   (`"access"` or `"refresh"`), on refresh tokens `fam` (the refresh family, see
//!   [`crate::refresh`]), and `iss`/`aud` when configured. A token of one type is never
//!   accepted as the other.
//! * **Keys** have ids. The header's `kid` picks the verifying key, so several keys verify at
//!   once while one signs: to rotate, append a new key (it becomes the signer), keep the old one
//!   until the longest-lived token it signed has expired (the refresh lifetime), then remove it.
//!   A token whose `kid` is missing or unknown is rejected. Secrets are at least 32 bytes.
//! * **Time** comes from an injectable [`Clock`]; expiry allows a configurable clock-skew
//!   leeway, and a token issued further in the future than the leeway is rejected.
//! * Verification here is stateless; revocation is checked by the caller
//!   ([`crate::extract`] does it for access tokens, [`crate::refresh`] for refresh tokens).
//!
//! ```
//! use samokoder_auth::secret::SecretString;
//! use samokoder_auth::tokens::{SigningKeyConfig, TokenConfig, TokenIssuer};
//! use uuid::Uuid;
//!
//! let config = TokenConfig {
//!     keys: vec![SigningKeyConfig {
//!         kid: "2026-01".into(),
//!         secret: SecretString::new("a-signing-secret-of-at-least-32-bytes!"),
//!     }],
//!     ..TokenConfig::default()
//! };
//! let issuer = TokenIssuer::new(&config)?;
//!
//! let user_id = Uuid::new_v4();
//! let access = issuer.issue_access(user_id)?;
//! assert_eq!(access.lifetime_seconds(), 900);
//! let claims = issuer.verify_access(access.token.expose())?;
//! assert_eq!(claims.user_id, user_id);
//!
//! // An access token is not a refresh token.
//! assert!(issuer.verify_refresh(access.token.expose()).is_err());
//! # Ok::<(), samokoder_auth::AuthError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::error::{AuthError, AuthResult, InvalidTokenReason};
use crate::keyring::{pick_active, printable_kid};
use crate::ports::TokenRef;
use crate::secret::SecretString;

/// Shortest signing secret, in bytes: HS256's key should be at least as long as its output.
pub const MIN_SIGNING_KEY_BYTES: usize = 32;
/// Default access-token lifetime: 15 minutes.
pub const DEFAULT_ACCESS_TTL_SECONDS: u64 = 15 * 60;
/// Default refresh-token lifetime: 7 days.
pub const DEFAULT_REFRESH_TTL_SECONDS: u64 = 7 * 24 * 60 * 60;
/// Default clock-skew leeway: 30 seconds.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
/// Default `iss` and `aud`.
pub const DEFAULT_ISSUER: &str = "samokoder";

const MAX_LEEWAY_SECONDS: u64 = 5 * 60;
const MAX_REFRESH_TTL_SECONDS: u64 = 365 * 24 * 60 * 60;

/// One signing key.
#[derive(Debug, Clone, Deserialize)]
pub struct SigningKeyConfig {
    /// Key id, put in each token's `kid` header: 1-32 characters of `A-Z a-z 0-9 _ -`.
    pub kid: String,
    /// The HMAC secret; its UTF-8 bytes are the key. At least 32 bytes.
    pub secret: SecretString,
}

impl SigningKeyConfig {
    /// A key with a fresh random secret (32 random bytes, base64url: 43 characters), for
    /// development set-ups that generate their keys on first start.
    pub fn generate(kid: impl Into<String>) -> Self {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        rand::fill(&mut bytes[..]);
        Self {
            kid: kid.into(),
            secret: SecretString::new(URL_SAFE_NO_PAD.encode(&bytes[..])),
        }
    }
}

/// HMAC algorithm for signing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TokenAlgorithm {
    /// HMAC-SHA256.
    #[default]
    HS256,
    /// HMAC-SHA384.
    HS384,
    /// HMAC-SHA512.
    HS512,
}

impl TokenAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::HS384 => Algorithm::HS384,
            Self::HS512 => Algorithm::HS512,
        }
    }
}

/// Token settings, as the server's configuration holds them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Signing keys, oldest first. All of them verify.
    pub keys: Vec<SigningKeyConfig>,
    /// The key that signs; when absent, the last of `keys`.
    pub active_kid: Option<String>,
    /// The HMAC algorithm (HS256 by default).
    pub algorithm: TokenAlgorithm,
    /// Access-token lifetime in seconds (default 900).
    pub access_ttl_seconds: u64,
    /// Refresh-token lifetime in seconds (default 604800, 7 days); at least the access lifetime.
    pub refresh_ttl_seconds: u64,
    /// Clock-skew leeway in seconds for `exp` and `iat` (default 30, at most 300).
    pub leeway_seconds: u64,
    /// `iss` to put in and require; `None` for neither (default `samokoder`).
    pub issuer: Option<String>,
    /// `aud` to put in and require; `None` for neither (default `samokoder`).
    pub audience: Option<String>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            active_kid: None,
            algorithm: TokenAlgorithm::default(),
            access_ttl_seconds: DEFAULT_ACCESS_TTL_SECONDS,
            refresh_ttl_seconds: DEFAULT_REFRESH_TTL_SECONDS,
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            issuer: Some(DEFAULT_ISSUER.to_owned()),
            audience: Some(DEFAULT_ISSUER.to_owned()),
        }
    }
}

/// Which kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// Short-lived, authenticates API requests.
    Access,
    /// Long-lived, only exchanges for a new pair at the refresh endpoint.
    Refresh,
}

impl TokenType {
    /// The `typ` claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// A freshly signed token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT. A bearer credential: handle as a secret.
    pub token: SecretString,
    /// Its `jti`.
    pub token_id: Uuid,
    /// Its `iat`.
    pub issued_at: DateTime<Utc>,
    /// Its `exp`.
    pub expires_at: DateTime<Utc>,
}

impl IssuedToken {
    /// Seconds from issue to expiry: the `expires_in` of a token response and the cookie's
    /// `Max-Age`.
    pub fn lifetime_seconds(&self) -> i64 {
        (self.expires_at - self.issued_at).num_seconds()
    }
}

/// What a verified access token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessClaims {
    /// `sub`.
    pub user_id: Uuid,
    /// `jti`.
    pub token_id: Uuid,
    /// `iat`.
    pub issued_at: DateTime<Utc>,
    /// `exp`.
    pub expires_at: DateTime<Utc>,
}

impl From<&AccessClaims> for TokenRef {
    fn from(claims: &AccessClaims) -> Self {
        TokenRef {
            jti: claims.token_id,
            user_id: claims.user_id,
            issued_at: claims.issued_at,
        }
    }
}

/// What a verified refresh token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshClaims {
    /// `sub`.
    pub user_id: Uuid,
    /// `jti`.
    pub token_id: Uuid,
    /// `fam`: the refresh family this token belongs to.
    pub family_id: Uuid,
    /// `iat`.
    pub issued_at: DateTime<Utc>,
    /// `exp`.
    pub expires_at: DateTime<Utc>,
}

/// The claims as they are on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct WireClaims {
    sub: Uuid,
    jti: Uuid,
    iat: i64,
    /// Microseconds into the `iat` second (below 1,000,000); tokens without it count from
    /// the whole second.
    #[serde(default)]
    iat_us: u32,
    exp: i64,
    typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fam: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Signs and verifies tokens. Build once at start-up and share behind an `Arc`.
pub struct TokenIssuer {
    keys: Vec<SigningKey>,
    active: usize,
    algorithm: Algorithm,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
    leeway: Duration,
    issuer: Option<String>,
    audience: Option<String>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key material stays out: jsonwebtoken's DecodingKey would print the secret.
        f.debug_struct("TokenIssuer")
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .field("active_kid", &self.active_kid())
            .field("algorithm", &self.algorithm)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("leeway", &self.leeway)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// An issuer on the system clock. Fails with a message naming the setting or key at fault.
    pub fn new(config: &TokenConfig) -> AuthResult<Self> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// An issuer on the given clock.
    pub fn with_clock(config: &TokenConfig, clock: Arc<dyn Clock>) -> AuthResult<Self> {
        let active = pick_active(
            config.keys.iter().map(|k| k.kid.as_str()),
            config.active_kid.as_deref(),
            "token signing keys",
        )?;
        let mut keys = Vec::with_capacity(config.keys.len());
        for key in &config.keys {
            let secret = key.secret.expose().as_bytes();
            if secret.len() < MIN_SIGNING_KEY_BYTES {
                return Err(AuthError::WeakSigningKey {
                    kid: key.kid.clone(),
                    len: secret.len(),
                    min: MIN_SIGNING_KEY_BYTES,
                });
            }
            keys.push(SigningKey {
                kid: key.kid.clone(),
                encoding: EncodingKey::from_secret(secret),
                decoding: DecodingKey::from_secret(secret),
            });
        }
        if config.access_ttl_seconds == 0 {
            return Err(AuthError::InvalidConfig {
                field: "access_ttl_seconds",
                reason: "must be positive".into(),
            });
        }
        if config.refresh_ttl_seconds < config.access_ttl_seconds
            || config.refresh_ttl_seconds > MAX_REFRESH_TTL_SECONDS
        {
            return Err(AuthError::InvalidConfig {
                field: "refresh_ttl_seconds",
                reason: format!(
                    "must be between access_ttl_seconds ({}) and {MAX_REFRESH_TTL_SECONDS}",
                    config.access_ttl_seconds
                ),
            });
        }
        if config.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(AuthError::InvalidConfig {
                field: "leeway_seconds",
                reason: format!("must be at most {MAX_LEEWAY_SECONDS}"),
            });
        }
        for (field, value) in [("issuer", &config.issuer), ("audience", &config.audience)] {
            if value.as_deref().is_some_and(str::is_empty) {
                return Err(AuthError::InvalidConfig {
                    field,
                    reason: "must not be empty; leave it out to disable the claim".into(),
                });
            }
        }

        let algorithm = config.algorithm.jwt();
        // jsonwebtoken checks the algorithm and the signature; the claims (time against our
        // clock, type, issuer, audience) are checked by us, so nothing depends on the system
        // clock or on its defaults.
        let mut validation = Validation::new(algorithm);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();

        Ok(Self {
            keys,
            active,
            algorithm,
            validation,
            access_ttl: seconds(config.access_ttl_seconds),
            refresh_ttl: seconds(config.refresh_ttl_seconds),
            leeway: seconds(config.leeway_seconds),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            clock,
        })
    }

    /// The id of the key that signs new tokens.
    pub fn active_kid(&self) -> &str {
        &self.keys[self.active].kid
    }

    /// Access-token lifetime.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Refresh-token lifetime.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// The clock-skew leeway: a token is still accepted until its `exp` plus this. Anything that
    /// remembers a token until it expires (a revocation) must remember it this much longer.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The clock this issuer reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The current time at token resolution (microseconds, the resolution of `iat` with
    /// `iat_us` and of the stores' revocation marks).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }

    /// Signs a new access token for `user_id`.
    pub fn issue_access(&self, user_id: Uuid) -> AuthResult<IssuedToken> {
        self.issue(user_id, TokenType::Access, None)
    }

    /// Signs a new refresh token of `family_id` for `user_id`. Logins and refreshes go through
    /// [`crate::refresh::RefreshService`], which also records the family.
    pub fn issue_refresh(&self, user_id: Uuid, family_id: Uuid) -> AuthResult<IssuedToken> {
        self.issue(user_id, TokenType::Refresh, Some(family_id))
    }

    fn issue(
        &self,
        user_id: Uuid,
        typ: TokenType,
        family_id: Option<Uuid>,
    ) -> AuthResult<IssuedToken> {
        let issued_at = self.now();
        let ttl = match typ {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        };
        let expires_at = issued_at + ttl;
        let token_id = Uuid::new_v4();
        let claims = WireClaims {
            sub: user_id,
            jti: token_id,
            iat: issued_at.timestamp(),
            iat_us: issued_at.timestamp_subsec_micros(),
            exp: expires_at.timestamp(),
            typ: typ.as_str().to_owned(),
            fam: family_id,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let key = &self.keys[self.active];
        let mut header = Header::new(self.algorithm);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| AuthError::Signing(e.to_string()))?;
        Ok(IssuedToken {
            token: SecretString::new(token),
            token_id,
            issued_at,
            expires_at,
        })
    }

    /// Verifies an access token: key, signature, type, issuer, audience and time. Revocation is
    /// the caller's to check.
    pub fn verify_access(&self, token: &str) -> AuthResult<AccessClaims> {
        let claims = self.decode(token, TokenType::Access, false)?;
        Ok(AccessClaims {
            user_id: claims.sub,
            token_id: claims.jti,
            issued_at: issue_time(&claims)?,
            expires_at: timestamp(claims.exp)?,
        })
    }

    /// Verifies a refresh token the same way. Whether it is still the current token of its
    /// family is [`crate::refresh::RefreshService`]'s to check.
    pub fn verify_refresh(&self, token: &str) -> AuthResult<RefreshClaims> {
        self.verify_refresh_inner(token, false)
    }

    /// Verifies a refresh token but accepts it after expiry; for logout, which should still
    /// revoke the family of an authentic, expired token.
    pub(crate) fn verify_refresh_allowing_expired(&self, token: &str) -> AuthResult<RefreshClaims> {
        self.verify_refresh_inner(token, true)
    }

    fn verify_refresh_inner(&self, token: &str, allow_expired: bool) -> AuthResult<RefreshClaims> {
        let claims = self.decode(token, TokenType::Refresh, allow_expired)?;
        let family_id = claims
            .fam
            .ok_or(AuthError::InvalidToken(InvalidTokenReason::UnknownFamily))?;
        Ok(RefreshClaims {
            user_id: claims.sub,
            token_id: claims.jti,
            family_id,
            issued_at: issue_time(&claims)?,
            expires_at: timestamp(claims.exp)?,
        })
    }

    fn decode(
        &self,
        token: &str,
        expected: TokenType,
        allow_expired: bool,
    ) -> AuthResult<WireClaims> {
        let invalid = |reason| AuthError::InvalidToken(reason);
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid(InvalidTokenReason::Malformed))?;
        let kid = header
            .kid
            .ok_or(invalid(InvalidTokenReason::MissingKeyId))?;
        let key = self
            .keys
            .iter()
            .find(|key| key.kid == kid)
            .ok_or_else(|| invalid(InvalidTokenReason::UnknownKeyId(printable_kid(&kid))))?;
        let claims = jsonwebtoken::decode::<WireClaims>(token, &key.decoding, &self.validation)
            .map_err(|e| {
                invalid(match e.kind() {
                    ErrorKind::InvalidSignature => InvalidTokenReason::BadSignature,
                    ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                        InvalidTokenReason::WrongAlgorithm
                    }
                    _ => InvalidTokenReason::Malformed,
                })
            })?
            .claims;

        if claims.typ != expected.as_str() {
            let found = match claims.typ.as_str() {
                "access" => "access",
                "refresh" => "refresh",
                _ => "unknown",
            };
            return Err(invalid(InvalidTokenReason::WrongType {
                expected: expected.as_str(),
                found,
            }));
        }
        if claims.iss != self.issuer {
            return Err(invalid(InvalidTokenReason::WrongIssuer));
        }
        if claims.aud != self.audience {
            return Err(invalid(InvalidTokenReason::WrongAudience));
        }
        if claims.exp <= claims.iat {
            return Err(invalid(InvalidTokenReason::Malformed));
        }
        let now = self.clock.now().timestamp();
        let leeway = self.leeway.num_seconds();
        if claims.iat > now.saturating_add(leeway) {
            return Err(invalid(InvalidTokenReason::IssuedInFuture));
        }
        // RFC 7519: the token is good *before* `exp`; the leeway extends that by the skew.
        if !allow_expired && now >= claims.exp.saturating_add(leeway) {
            return Err(AuthError::TokenExpired);
        }
        Ok(claims)
    }
}

fn seconds(value: u64) -> Duration {
    Duration::seconds(i64::try_from(value).unwrap_or(i64::MAX))
}

fn timestamp(seconds: i64) -> AuthResult<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
        .ok_or(AuthError::InvalidToken(InvalidTokenReason::Malformed))
}

/// `iat` with its microseconds.
fn issue_time(claims: &WireClaims) -> AuthResult<DateTime<Utc>> {
    if claims.iat_us >= 1_000_000 {
        return Err(AuthError::InvalidToken(InvalidTokenReason::Malformed));
    }
    DateTime::from_timestamp(claims.iat, claims.iat_us * 1_000)
        .ok_or(AuthError::InvalidToken(InvalidTokenReason::Malformed))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::clock::ManualClock;

    const SECRET_A: &str = "test-secret-a-0123456789abcdefghijklmnop";
    const SECRET_B: &str = "test-secret-b-0123456789abcdefghijklmnop";

    fn key(kid: &str, secret: &str) -> SigningKeyConfig {
        SigningKeyConfig {
            kid: kid.into(),
            secret: SecretString::new(secret),
        }
    }

    fn config(keys: Vec<SigningKeyConfig>) -> TokenConfig {
        TokenConfig {
            keys,
            ..TokenConfig::default()
        }
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn issuer_at(config: &TokenConfig) -> (TokenIssuer, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(start()));
        (
            TokenIssuer::with_clock(config, clock.clone()).unwrap(),
            clock,
        )
    }

    fn claims_of(token: &str) -> serde_json::Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    fn header_of(token: &str) -> serde_json::Value {
        let header = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
    }

    #[test]
    fn access_token_round_trip_and_wire_shape() {
        let (issuer, _) = issuer_at(&config(vec![key("k1", SECRET_A)]));
        let user = Uuid::new_v4();
        let issued = issuer.issue_access(user).unwrap();
        let token = issued.token.expose();
        assert_eq!(
            header_of(token),
            serde_json::json!({"typ": "JWT", "alg": "HS256", "kid": "k1"})
        );
        let claims = claims_of(token);
        assert_eq!(claims["sub"], user.to_string());
        assert_eq!(claims["jti"], issued.token_id.to_string());
        assert_eq!(claims["typ"], "access");
        assert_eq!(claims["iat"], start().timestamp());
        assert_eq!(claims["exp"], start().timestamp() + 900);
        assert_eq!(claims["iss"], "samokoder");
        assert_eq!(claims["aud"], "samokoder");
        assert!(claims.get("fam").is_none());

        let verified = issuer.verify_access(token).unwrap();
        assert_eq!(
            verified,
            AccessClaims {
                user_id: user,
                token_id: issued.token_id,
                issued_at: start(),
                expires_at: start() + Duration::minutes(15),
            }
        );
    }

    #[test]
    fn refresh_token_carries_its_family_and_lasts_seven_days() {
        let (issuer, _) = issuer_at(&config(vec![key("k1", SECRET_A)]));
        let (user, family) = (Uuid::new_v4(), Uuid::new_v4());
        let issued = issuer.issue_refresh(user, family).unwrap();
        assert_eq!(issued.lifetime_seconds(), 7 * 24 * 3600);
        assert_eq!(claims_of(issued.token.expose())["fam"], family.to_string());
        let claims = issuer.verify_refresh(issued.token.expose()).unwrap();
        assert_eq!((claims.user_id, claims.family_id), (user, family));
    }

    #[test]
    fn types_are_not_interchangeable() {
        let (issuer, _) = issuer_at(&config(vec![key("k1", SECRET_A)]));
        let access = issuer.issue_access(Uuid::new_v4()).unwrap();
        let refresh = issuer
            .issue_refresh(Uuid::new_v4(), Uuid::new_v4())
            .unwrap();
        assert!(matches!(
            issuer.verify_refresh(access.token.expose()),
            Err(AuthError::InvalidToken(InvalidTokenReason::WrongType {
                expected: "refresh",
                found: "access"
            }))
        ));
        assert!(matches!(
            issuer.verify_access(refresh.token.expose()),
            Err(AuthError::InvalidToken(InvalidTokenReason::WrongType {
                expected: "access",
                found: "refresh"
            }))
        ));
    }

    #[test]
    fn expiry_respects_the_leeway_exactly() {
        let (issuer, clock) = issuer_at(&config(vec![key("k1", SECRET_A)]));
        let token = issuer.issue_access(Uuid::new_v4()).unwrap().token;
        // exp = start + 900; leeway 30: still good at exp + 29, expired at exp + 30.
        clock.set(start() + Duration::seconds(900 + 29));
        issuer.verify_access(token.expose()).unwrap();
        clock.set(start() + Duration::seconds(900 + 30));
        assert!(matches!(
            issuer.verify_access(token.expose()),
            Err(AuthError::TokenExpired)
        ));
    }

    #[test]
    fn zero_leeway_expires_at_exp() {
        let mut cfg = config(vec![key("k1", SECRET_A)]);
        cfg.leeway_seconds = 0;
        let (issuer, clock) = issuer_at(&cfg);
        let token = issuer.issue_access(Uuid::new_v4()).unwrap().token;
        clock.set(start() + Duration::seconds(899));
        issuer.verify_access(token.expose()).unwrap();
        clock.set(start() + Duration::seconds(900));
        assert!(matches!(
            issuer.verify_access(token.expose()),
            Err(AuthError::TokenExpired)
        ));
    }

    #[test]
    fn token_from_the_future_is_rejected_beyond_the_leeway() {
        let cfg = config(vec![key("k1", SECRET_A)]);
        let (issuer, clock) = issuer_at(&cfg);
        let token = issuer.issue_access(Uuid::new_v4()).unwrap().token;
        clock.set(start() - Duration::seconds(30));
        issuer.verify_access(token.expose()).unwrap();
        clock.set(start() - Duration::seconds(31));
        assert!(matches!(
            issuer.verify_access(token.expose()),
            Err(AuthError::InvalidToken(InvalidTokenReason::IssuedInFuture))
        ));
    }

    #[test]
    fn tampered_payload_or_signature_is_rejected() {
        let (issuer, _) = issuer_at(&config(vec![key("k1", SECRET_A)]));
        let token = issuer.issue_access(Uuid::new_v4()).unwrap().token;
        let parts: Vec<&str> = token.expose().split('.').collect();

        // Swap in another user's id, keep the signature.
        let mut claims = claims_of(token.expose());
        claims["sub"] = serde_json::json!(Uuid::new_v4().to_string());
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(matches!(
            issuer.verify_access(&forged),
            Err(AuthError::InvalidToken(InvalidTokenReason::BadSignature))
        ));

        // Flip one bit of the signature.
        let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature[0] ^= 1;
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode(signature)
        );
        assert!(matches!(
            issuer.verify_access(&forged),
            Err(AuthError::InvalidToken(InvalidTokenReason::BadSignature))
        ));

        for garbage in ["", "abc", "a.b.c", &parts[..2].join(".")] {
            assert!(
                matches!(
                    issuer.verify_access(garbage),
                    Err(AuthError::InvalidToken(InvalidTokenReason::Malformed))
                ),
                "{garbage}"
            );
        }
    }

    #[test]
    fn wrong_secret_under_the_same_kid_is_a_bad_signature() {
        let (ours, _) = issuer_at(&config(vec![key("k1", SECRET_A)]));
        let (theirs, _) = issuer_at(&config(vec![key("k1", SECRET_B)]));
        let token = theirs.issue_access(Uuid::new_v4()).unwrap().token;
        assert!(matches!(
            ours.verify_access(token.expose()),
            Err(AuthError::InvalidToken(InvalidTokenReason::BadSignature))
        ));
    }

    #[test]
    fn unknown_or_missing_kid_is_rejected() {
        let (ours, _) = issuer_at(&config(vec![key("k1", SECRET_A)]));
        let (theirs, _) = issuer_at(&config(vec![key("k9", SECRET_A)]));
        let token = theirs.issue_access(Uuid::new_v4()).unwrap().token;
        assert!(matches!(
            ours.verify_access(token.expose()),
            Err(AuthError::InvalidToken(InvalidTokenReason::UnknownKeyId(kid))) if kid == "k9"
        ));

        let no_kid = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims_of(token.expose()),
            &EncodingKey::from_secret(SECRET_A.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            ours.verify_access(&no_kid),
            Err(AuthError::InvalidToken(InvalidTokenReason::MissingKeyId))
        ));
    }

    #[test]
    fn issue_times_keep_their_microseconds() {
        let (issuer, clock) = issuer_at(&config(vec![key("k1", SECRET_A)]));
        // Nanoseconds beyond the microsecond are dropped, as the stores drop them.
        let at = start() + Duration::nanoseconds(123_456_789);
        clock.set(at);
        let issued = issuer.issue_access(Uuid::new_v4()).unwrap();
        let claims = claims_of(issued.token.expose());
        assert_eq!(claims["iat"], start().timestamp());
        assert_eq!(claims["iat_us"], 123_456);
        let micros = start() + Duration::microseconds(123_456);
        assert_eq!(issued.issued_at, micros);
        assert_eq!(
            issuer
                .verify_access(issued.token.expose())
                .unwrap()
                .issued_at,
            micros
        );
        let refresh = issuer
            .issue_refresh(Uuid::new_v4(), Uuid::new_v4())
            .unwrap();
        assert_eq!(
            issuer
                .verify_refresh(refresh.token.expose())
                .unwrap()
                .issued_at,
            micros
        );
        assert_eq!(issued.lifetime_seconds(), 900);

        // A token from before `iat_us` counts from its whole second; an impossible fraction is
        // malformed.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let sign = |claims: &serde_json::Value| {
            jsonwebtoken::encode(
                &header,
                claims,
                &EncodingKey::from_secret(SECRET_A.as_bytes()),
            )
            .unwrap()
        };
        let mut older = claims.clone();
        older.as_object_mut().unwrap().remove("iat_us");
        assert_eq!(
            issuer.verify_access(&sign(&older)).unwrap().issued_at,
            start()
        );
        let mut impossible = claims;
        impossible["iat_us"] = 1_000_000.into();
        assert!(matches!(
            issuer.verify_access(&sign(&impossible)),
            Err(AuthError::InvalidToken(InvalidTokenReason::Malformed))
        ));
    }

    #[test]
    fn other_algorithm_is_rejected_even_with_the_right_key() {
        let (ours, _) = issuer_at(&config(vec![key("k1", SECRET_A)]));
        let token = ours.issue_access(Uuid::new_v4()).unwrap().token;
        let mut header = Header::new(Algorithm::HS512);
        header.kid = Some("k1".into());
        let hs512 = jsonwebtoken::encode(
            &header,
            &claims_of(token.expose()),
            &EncodingKey::from_secret(SECRET_A.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            ours.verify_access(&hs512),
            Err(AuthError::InvalidToken(InvalidTokenReason::WrongAlgorithm))
        ));
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let (ours, _) = issuer_at(&config(vec![key("k1", SECRET_A)]));
        let mut other_aud = config(vec![key("k1", SECRET_A)]);
        other_aud.audience = Some("someone-else".into());
        let (theirs, _) = issuer_at(&other_aud);
        let token = theirs.issue_access(Uuid::new_v4()).unwrap().token;
        assert!(matches!(
            ours.verify_access(token.expose()),
            Err(AuthError::InvalidToken(InvalidTokenReason::WrongAudience))
        ));
        let mut no_iss = config(vec![key("k1", SECRET_A)]);
        no_iss.issuer = None;
        let (theirs, _) = issuer_at(&no_iss);
        let token = theirs.issue_access(Uuid::new_v4()).unwrap().token;
        assert!(matches!(
            ours.verify_access(token.expose()),
            Err(AuthError::InvalidToken(InvalidTokenReason::WrongIssuer))
        ));
    }

    #[test]
    fn rotation_newest_signs_all_verify() {
        let old_only = config(vec![key("2025", SECRET_A)]);
        let (old_issuer, _) = issuer_at(&old_only);
        let old_token = old_issuer.issue_access(Uuid::new_v4()).unwrap().token;

        let rotated = config(vec![key("2025", SECRET_A), key("2026", SECRET_B)]);
        let (issuer, _) = issuer_at(&rotated);
        assert_eq!(issuer.active_kid(), "2026");
        let new_token = issuer.issue_access(Uuid::new_v4()).unwrap().token;
        assert_eq!(header_of(new_token.expose())["kid"], "2026");
        issuer.verify_access(old_token.expose()).unwrap();
        issuer.verify_access(new_token.expose()).unwrap();

        // A designated key signs instead of the newest.
        let mut designated = rotated.clone();
        designated.active_kid = Some("2025".into());
        let (issuer, _) = issuer_at(&designated);
        let token = issuer.issue_access(Uuid::new_v4()).unwrap().token;
        assert_eq!(header_of(token.expose())["kid"], "2025");

        // Once the old key is removed, its tokens stop working.
        let (issuer, _) = issuer_at(&config(vec![key("2026", SECRET_B)]));
        assert!(issuer.verify_access(old_token.expose()).is_err());
    }

    #[test]
    fn configuration_errors_are_specific() {
        let short = TokenIssuer::new(&config(vec![key("k1", "too-short")])).unwrap_err();
        assert!(matches!(
            &short,
            AuthError::WeakSigningKey { kid, len: 9, min: 32 } if kid == "k1"
        ));
        assert_eq!(
            short.to_string(),
            "token signing key \"k1\" is 9 bytes long; at least 32 bytes are required"
        );
        assert!(matches!(
            TokenIssuer::new(&config(vec![])),
            Err(AuthError::NoKeys { .. })
        ));
        assert!(matches!(
            TokenIssuer::new(&config(vec![key("k1", SECRET_A), key("k1", SECRET_B)])),
            Err(AuthError::DuplicateKeyId { .. })
        ));
        assert!(matches!(
            TokenIssuer::new(&config(vec![key("bad kid", SECRET_A)])),
            Err(AuthError::InvalidKeyId { .. })
        ));
        let mut cfg = config(vec![key("k1", SECRET_A)]);
        cfg.refresh_ttl_seconds = 60;
        assert!(matches!(
            TokenIssuer::new(&cfg),
            Err(AuthError::InvalidConfig {
                field: "refresh_ttl_seconds",
                ..
            })
        ));
    }

    #[test]
    fn debug_never_prints_secrets() {
        let cfg = config(vec![key("k1", SECRET_A)]);
        let (issuer, _) = issuer_at(&cfg);
        let shown = format!("{issuer:?} {cfg:?}");
        assert!(!shown.contains("test-secret"), "{shown}");
        assert!(shown.contains("k1"));
    }

    #[test]
    fn generated_keys_are_long_enough_and_distinct() {
        let a = SigningKeyConfig::generate("a");
        let b = SigningKeyConfig::generate("b");
        assert!(a.secret.expose().len() >= MIN_SIGNING_KEY_BYTES);
        assert_ne!(a.secret.expose(), b.secret.expose());
        TokenIssuer::new(&config(vec![a, b])).unwrap();
    }

    #[test]
    fn config_deserializes_with_defaults() {
        let cfg: TokenConfig = serde_json::from_value(serde_json::json!({
            "keys": [{"kid": "k1", "secret": SECRET_A}],
            "algorithm": "HS512"
        }))
        .unwrap();
        assert_eq!(cfg.algorithm, TokenAlgorithm::HS512);
        assert_eq!(cfg.access_ttl_seconds, 900);
        let issuer = TokenIssuer::new(&cfg).unwrap();
        let token = issuer.issue_access(Uuid::new_v4()).unwrap().token;
        assert_eq!(header_of(token.expose())["alg"], "HS512");
    }
}
