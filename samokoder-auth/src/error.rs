//! The crate's one error type.
//!
//! HTTP-agnostic: each variant has a stable snake_case [`AuthError::code`] that the server maps to
//! a status; only the axum layer in [`crate::extract`] speaks HTTP itself. No variant carries a
//! secret (key bytes, passwords, token strings), so errors can be logged as they are.

use std::fmt;

use uuid::Uuid;

use crate::ports::PortError;

/// Result of this crate's operations.
pub type AuthResult<T> = Result<T, AuthError>;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    // --- configuration: raised at start-up, the server should refuse to start -----------------
    /// A configuration value is out of range or inconsistent.
    #[error("invalid auth configuration: {field}: {reason}")]
    InvalidConfig {
        /// The offending setting, e.g. `tokens.access_ttl_seconds`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A key id is empty, too long, or contains characters other than `A-Z a-z 0-9 _ -`.
    #[error("invalid key id {kid:?}: use 1 to 32 characters from A-Z, a-z, 0-9, '_' and '-'")]
    InvalidKeyId {
        /// The rejected key id.
        kid: String,
    },
    /// Two keys of one keyring share a key id.
    #[error("key id {kid:?} is configured twice")]
    DuplicateKeyId {
        /// The repeated key id.
        kid: String,
    },
    /// A keyring has no keys at all.
    #[error("no {what} configured")]
    NoKeys {
        /// Which keyring, e.g. `token signing keys`.
        what: &'static str,
    },
    /// The designated active key id is not one of the configured keys.
    #[error("active key id {kid:?} is not among the configured {what}")]
    UnknownActiveKey {
        /// The designated key id.
        kid: String,
        /// Which keyring.
        what: &'static str,
    },
    /// A token signing secret is shorter than 32 bytes.
    #[error("token signing key {kid:?} is {len} bytes long; at least {min} bytes are required")]
    WeakSigningKey {
        /// The key's id.
        kid: String,
        /// Its length in bytes.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// A secret-box key is not base64 of exactly 32 bytes, or is obviously not random.
    #[error("secret box key {kid:?} is invalid: {reason}")]
    InvalidSecretBoxKey {
        /// The key's id.
        kid: String,
        /// What is wrong with it (never the key itself).
        reason: String,
    },
    /// The argon2 parameters are invalid or weaker than the OWASP minimum.
    #[error("invalid password hashing parameters: {0}")]
    InvalidHashParams(String),

    // --- passwords ---------------------------------------------------------------------------
    /// The password is longer than the hasher accepts.
    #[error("password is longer than {max} bytes")]
    PasswordTooLong {
        /// The maximum in bytes.
        max: usize,
    },
    /// A stored password hash is neither an argon2 PHC string nor a supported bcrypt hash.
    #[error("stored password hash is not a supported argon2 or bcrypt hash: {0}")]
    UnsupportedHash(&'static str),
    /// The hashing primitive failed (out of memory, internal error).
    #[error("password hashing failed: {0}")]
    Hashing(String),

    // --- tokens ------------------------------------------------------------------------------
    /// The token is not acceptable; the reason is for logs, clients only see `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(InvalidTokenReason),
    /// The token's `exp` (plus leeway) has passed.
    #[error("token has expired")]
    TokenExpired,
    /// The token was revoked (logout, logout everywhere).
    #[error("token has been revoked")]
    TokenRevoked,
    /// Signing a token failed.
    #[error("could not sign token: {0}")]
    Signing(String),

    // --- refresh rotation --------------------------------------------------------------------
    /// A refresh token that was already rotated was presented again: its whole family has been
    /// revoked. Audit-log this: either the token was stolen or a client raced itself.
    #[error("refresh token reuse detected; family {family_id} of user {user_id} revoked")]
    RefreshTokenReused {
        /// The revoked family.
        family_id: Uuid,
        /// Its user.
        user_id: Uuid,
    },
    /// The refresh token's family was revoked earlier (logout, reuse, logout everywhere).
    #[error("refresh token family {family_id} has been revoked")]
    RefreshFamilyRevoked {
        /// The revoked family.
        family_id: Uuid,
    },

    // --- secret box --------------------------------------------------------------------------
    /// The sealed value is not in the `v1.<kid>.<base64url>` format.
    #[error("sealed value is malformed: {0}")]
    MalformedSealedValue(&'static str),
    /// The sealed value names a key id that is not configured (any more).
    #[error("sealed value uses unknown secret box key {kid:?}")]
    UnknownSecretBoxKey {
        /// The key id the value names.
        kid: String,
    },
    /// Authentication of the sealed value failed: it was tampered with, or opened with other
    /// associated data (another owner or purpose) than it was sealed with.
    #[error(
        "sealed value could not be opened: tampered with, or bound to another owner or purpose"
    )]
    OpenFailed,
    /// Encryption failed (the plaintext or associated data exceed AES-GCM's limits).
    #[error("could not seal value")]
    SealFailed,
    /// The opened plaintext was expected to be UTF-8 and is not.
    #[error("opened secret is not valid UTF-8")]
    NotUtf8,

    // --- infrastructure ----------------------------------------------------------------------
    /// The backing store failed.
    #[error(transparent)]
    Store(#[from] PortError),
    /// A blocking task (password hashing) panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl AuthError {
    /// Stable snake_case code for API responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidConfig { .. }
            | Self::InvalidKeyId { .. }
            | Self::DuplicateKeyId { .. }
            | Self::NoKeys { .. }
            | Self::UnknownActiveKey { .. }
            | Self::WeakSigningKey { .. }
            | Self::InvalidSecretBoxKey { .. }
            | Self::InvalidHashParams(_) => "auth_misconfigured",
            Self::PasswordTooLong { .. } => "password_too_long",
            Self::UnsupportedHash(_) => "unsupported_password_hash",
            Self::Hashing(_) => "password_hashing_failed",
            Self::InvalidToken(_) => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::Signing(_) => "token_signing_failed",
            Self::RefreshTokenReused { .. } => "refresh_token_reused",
            Self::RefreshFamilyRevoked { .. } => "token_revoked",
            Self::MalformedSealedValue(_)
            | Self::UnknownSecretBoxKey { .. }
            | Self::OpenFailed
            | Self::NotUtf8 => "secret_unreadable",
            Self::SealFailed => "secret_seal_failed",
            Self::Store(_) => "auth_store_unavailable",
            Self::Task(_) => "internal_error",
        }
    }

    /// Whether the error is the client's doing (a bad or stale credential) rather than a
    /// misconfiguration or an outage. The server answers 401 for these and 5xx otherwise.
    pub fn is_credential_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidToken(_)
                | Self::TokenExpired
                | Self::TokenRevoked
                | Self::RefreshTokenReused { .. }
                | Self::RefreshFamilyRevoked { .. }
        )
    }
}

/// Why a token was rejected as invalid. For logs and tests; clients only see `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTokenReason {
    /// Not a well-formed JWT, or its claims do not have the expected shape.
    Malformed,
    /// The header has no `kid`.
    MissingKeyId,
    /// The header's `kid` is not in the keyring.
    UnknownKeyId(String),
    /// The header's `alg` is not the configured algorithm.
    WrongAlgorithm,
    /// The signature does not match.
    BadSignature,
    /// An access token was presented where a refresh token was expected, or vice versa.
    WrongType {
        /// What the caller expected.
        expected: &'static str,
        /// What the token says it is.
        found: &'static str,
    },
    /// `iss` is missing or not the configured issuer.
    WrongIssuer,
    /// `aud` is missing or not the configured audience.
    WrongAudience,
    /// `iat` lies further in the future than the clock-skew leeway allows.
    IssuedInFuture,
    /// A refresh token without its family claim, or naming a family that does not exist or
    /// belongs to another user.
    UnknownFamily,
}

impl fmt::Display for InvalidTokenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed token"),
            Self::MissingKeyId => f.write_str("no key id in header"),
            Self::UnknownKeyId(kid) => write!(f, "unknown key id {kid:?}"),
            Self::WrongAlgorithm => f.write_str("unexpected signing algorithm"),
            Self::BadSignature => f.write_str("signature mismatch"),
            Self::WrongType { expected, found } => {
                write!(f, "expected a {expected} token, got a {found} token")
            }
            Self::WrongIssuer => f.write_str("wrong or missing issuer"),
            Self::WrongAudience => f.write_str("wrong or missing audience"),
            Self::IssuedInFuture => f.write_str("issued in the future"),
            Self::UnknownFamily => f.write_str("unknown refresh token family"),
        }
    }
}
