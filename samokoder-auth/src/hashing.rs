//! Password hashing: argon2id for new hashes, argon2 and legacy bcrypt for verification.
//!
//! * New hashes are argon2id PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$...`) with the
//!   configured [`HashParams`], never weaker than the OWASP minimum.
//! * Verification also accepts the original's bcrypt hashes (`$2b$`, `$2a$`, `$2y$`, cost 12)
//!   and then always reports [`Verification::Valid`] with `needs_rehash: true`, so the server
//!   re-hashes the password with argon2id right after a successful login. Argon2 hashes made
//!   with weaker parameters than the current ones need a rehash too.
//! * **bcrypt's 72-byte limit.** bcrypt only looks at the first 72 bytes of a password, and its
//!   key schedule repeats the key cyclically, so a NUL byte makes different passwords collide.
//!   A password longer than 72 bytes, or containing NUL, therefore **never** verifies against a
//!   bcrypt hash: we reject rather than accept a prefix. (The original allowed 128 characters
//!   and silently truncated; an affected user has to reset the password once.) The rejection
//!   still runs bcrypt on the hash, so it takes as long as a real check.
//! * **No user-enumeration oracle** for accounts hashed with the current parameters. For an
//!   e-mail that has no account, call [`PasswordHasher::verify_unknown_user`]: it verifies
//!   against a dummy argon2id hash made once with the current parameters, so it costs what
//!   verifying such an account costs. A verification costs what the *stored* hash's parameters
//!   say, though: an account still on the original's bcrypt (cost 12, several times slower than
//!   argon2id at the OWASP minimum) or on older argon2 parameters answers measurably slower or
//!   faster than an unknown e-mail until its owner logs in once and it is re-hashed. Servers
//!   that must hide those accounts too can pad every login response to a fixed minimum time.
//! * Hashing is CPU- and memory-heavy: the async methods run it on tokio's blocking pool so it
//!   never stalls the runtime's worker threads.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), samokoder_auth::AuthError> {
//! use samokoder_auth::hashing::{HashParams, PasswordHasher, Verification};
//!
//! let hasher = PasswordHasher::new(HashParams::default())?; // OWASP: 19 MiB, t=2, p=1
//! let stored = hasher.hash("Tr1cky-Lemur-Parade").await?;
//! assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
//!
//! let outcome = hasher.verify("Tr1cky-Lemur-Parade", &stored).await?;
//! assert_eq!(outcome, Verification::Valid { needs_rehash: false });
//! assert_eq!(hasher.verify("wrong", &stored).await?, Verification::Invalid);
//!
//! // Unknown e-mail: same cost, always invalid.
//! assert_eq!(hasher.verify_unknown_user("anything").await?, Verification::Invalid);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{self, PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::Deserialize;

use crate::error::{AuthError, AuthResult};
use crate::secret::SecretString;

/// Longest password, in bytes, the hasher accepts. Far above the policy's 128 characters; it
/// exists so a request cannot make us hash megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// How many bytes of a password bcrypt uses.
pub const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

/// OWASP's equivalent argon2id minimums (memory in KiB, iterations), all at parallelism 1:
/// a configuration is acceptable when it reaches one of them in both dimensions.
const OWASP_MINIMUMS: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

/// Upper bounds that catch a misplaced digit in the configuration before it takes the server
/// down: 1 GiB of memory per hash, 64 passes, 64 lanes.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;
const MAX_PARALLELISM: u32 = 64;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashParams {
    /// Memory per hash, in KiB (`m`).
    pub memory_kib: u32,
    /// Number of passes (`t`).
    pub iterations: u32,
    /// Degree of parallelism (`p`).
    pub parallelism: u32,
}

impl HashParams {
    /// OWASP's recommended minimum for argon2id: 19 MiB, 2 passes, 1 lane. The default.
    pub const OWASP_MINIMUM: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// Whether these parameters reach one of OWASP's equivalent minimum configurations.
    pub fn meets_owasp_minimum(&self) -> bool {
        OWASP_MINIMUMS
            .iter()
            .any(|&(memory, iterations)| self.memory_kib >= memory && self.iterations >= iterations)
    }

    /// Checks that argon2 accepts the parameters, that they are within sane upper bounds, and
    /// that they meet the OWASP minimum.
    pub fn validate(&self) -> AuthResult<()> {
        self.to_argon2()?;
        if !self.meets_owasp_minimum() {
            return Err(AuthError::InvalidHashParams(format!(
                "m={} KiB, t={} is below the OWASP minimum for argon2id \
                 (e.g. m=19456 KiB with t=2, or m=47104 KiB with t=1)",
                self.memory_kib, self.iterations
            )));
        }
        Ok(())
    }

    /// The argon2 form, checking everything except the OWASP minimum.
    fn to_argon2(self) -> AuthResult<Params> {
        if self.memory_kib > MAX_MEMORY_KIB {
            return Err(AuthError::InvalidHashParams(format!(
                "memory_kib {} exceeds the limit of {MAX_MEMORY_KIB} (1 GiB)",
                self.memory_kib
            )));
        }
        if self.iterations > MAX_ITERATIONS {
            return Err(AuthError::InvalidHashParams(format!(
                "iterations {} exceeds the limit of {MAX_ITERATIONS}",
                self.iterations
            )));
        }
        if self.parallelism > MAX_PARALLELISM {
            return Err(AuthError::InvalidHashParams(format!(
                "parallelism {} exceeds the limit of {MAX_PARALLELISM}",
                self.parallelism
            )));
        }
        Params::new(self.memory_kib, self.iterations, self.parallelism, None).map_err(|e| {
            AuthError::InvalidHashParams(format!(
                "m={}, t={}, p={}: {e}",
                self.memory_kib, self.iterations, self.parallelism
            ))
        })
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::OWASP_MINIMUM
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verification {
    /// The password matches.
    Valid {
        /// The stored hash is bcrypt, or argon2 weaker than the current parameters: hash the
        /// password again with [`PasswordHasher::hash`] and store the result.
        needs_rehash: bool,
    },
    /// The password does not match.
    Invalid,
}

impl Verification {
    /// Whether the password matched.
    pub fn is_valid(self) -> bool {
        matches!(self, Self::Valid { .. })
    }

    /// Whether the password matched and the stored hash should be replaced.
    pub fn needs_rehash(self) -> bool {
        matches!(self, Self::Valid { needs_rehash: true })
    }
}

/// Hashes and verifies passwords. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: HashParams,
    argon2_params: Params,
    /// argon2id hash of a random password with the current parameters, for unknown users.
    dummy_hash: OnceLock<String>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with `params`, which must meet the OWASP minimum.
    pub fn new(params: HashParams) -> AuthResult<Self> {
        params.validate()?;
        Self::build(params)
    }

    /// A hasher that accepts parameters below the OWASP minimum (still rejecting ones argon2
    /// itself refuses). **For tests only**: it makes hashing fast by making it weak.
    pub fn dangerous_with_weak_params(params: HashParams) -> AuthResult<Self> {
        if !params.meets_owasp_minimum() {
            tracing::warn!(
                memory_kib = params.memory_kib,
                iterations = params.iterations,
                "password hasher built with parameters below the OWASP minimum"
            );
        }
        Self::build(params)
    }

    fn build(params: HashParams) -> AuthResult<Self> {
        let argon2_params = params.to_argon2()?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                argon2_params,
                dummy_hash: OnceLock::new(),
            }),
        })
    }

    /// The parameters new hashes are made with.
    pub fn params(&self) -> HashParams {
        self.inner.params
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.inner.argon2_params.clone(),
        )
    }

    /// Hashes a password into an argon2id PHC string, off the async runtime.
    pub async fn hash(&self, password: &str) -> AuthResult<String> {
        let this = self.clone();
        let password = SecretString::new(password);
        run_blocking(move || this.hash_blocking(password.expose())).await
    }

    /// Verifies a password against a stored argon2 or bcrypt hash, off the async runtime.
    pub async fn verify(&self, password: &str, stored_hash: &str) -> AuthResult<Verification> {
        let this = self.clone();
        let password = SecretString::new(password);
        let stored_hash = stored_hash.to_owned();
        run_blocking(move || this.verify_blocking(password.expose(), &stored_hash)).await
    }

    /// Spends what a real verification costs and answers [`Verification::Invalid`]; call it
    /// when the account does not exist, so response times do not reveal which e-mails do.
    pub async fn verify_unknown_user(&self, password: &str) -> AuthResult<Verification> {
        let this = self.clone();
        let password = SecretString::new(password);
        run_blocking(move || this.verify_unknown_user_blocking(password.expose())).await
    }

    /// Computes the dummy hash now instead of at the first unknown-user login, whose response
    /// would otherwise take twice as long. Call once at start-up.
    pub async fn warm_up(&self) -> AuthResult<()> {
        let this = self.clone();
        run_blocking(move || this.dummy_hash().map(drop)).await
    }

    /// [`PasswordHasher::hash`] on the calling thread, for synchronous callers and benches.
    pub fn hash_blocking(&self, password: &str) -> AuthResult<String> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::PasswordTooLong {
                max: MAX_PASSWORD_BYTES,
            });
        }
        self.argon2()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| AuthError::Hashing(e.to_string()))
    }

    /// [`PasswordHasher::verify`] on the calling thread, for synchronous callers and benches.
    pub fn verify_blocking(&self, password: &str, stored_hash: &str) -> AuthResult<Verification> {
        if password.len() > MAX_PASSWORD_BYTES {
            // Independent of the account, so answering early reveals nothing.
            return Ok(Verification::Invalid);
        }
        if stored_hash.starts_with("$argon2") {
            self.verify_argon2(password, stored_hash)
        } else if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|prefix| stored_hash.starts_with(prefix))
        {
            verify_bcrypt(password, stored_hash)
        } else {
            Err(AuthError::UnsupportedHash(
                "neither an argon2 PHC string nor a $2a$/$2b$/$2y$ bcrypt hash",
            ))
        }
    }

    /// [`PasswordHasher::verify_unknown_user`] on the calling thread.
    pub fn verify_unknown_user_blocking(&self, password: &str) -> AuthResult<Verification> {
        let dummy = self.dummy_hash()?;
        // The result is irrelevant (the dummy password is random); the work is the point.
        let _ = self.verify_blocking(password, dummy)?;
        Ok(Verification::Invalid)
    }

    fn dummy_hash(&self) -> AuthResult<&str> {
        if let Some(hash) = self.inner.dummy_hash.get() {
            return Ok(hash);
        }
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let hash = self.hash_blocking(&STANDARD_NO_PAD.encode(random))?;
        // Two threads may race to here; both hashes are equally good and one wins.
        Ok(self.inner.dummy_hash.get_or_init(|| hash))
    }

    fn verify_argon2(&self, password: &str, stored_hash: &str) -> AuthResult<Verification> {
        let parsed = PasswordHash::new(stored_hash)
            .map_err(|_| AuthError::UnsupportedHash("malformed argon2 PHC string"))?;
        match self.argon2().verify_password(password.as_bytes(), &parsed) {
            Ok(()) => Ok(Verification::Valid {
                needs_rehash: self.argon2_needs_rehash(&parsed),
            }),
            Err(password_hash::Error::PasswordInvalid) => Ok(Verification::Invalid),
            Err(
                password_hash::Error::Algorithm
                | password_hash::Error::EncodingInvalid
                | password_hash::Error::ParamInvalid { .. }
                | password_hash::Error::ParamsInvalid
                | password_hash::Error::SaltInvalid
                | password_hash::Error::OutputSize
                | password_hash::Error::Version,
            ) => Err(AuthError::UnsupportedHash(
                "argon2 hash with unsupported algorithm, version or parameters",
            )),
            Err(e) => Err(AuthError::Hashing(e.to_string())),
        }
    }

    /// A stored argon2 hash is due for replacement when it is not argon2id v1.3 or any cost is
    /// below the current one. Stronger stored parameters are kept: rehashing would weaken them.
    fn argon2_needs_rehash(&self, parsed: &PasswordHash) -> bool {
        let Ok(stored) = Params::try_from(parsed) else {
            return true;
        };
        let current = &self.inner.params;
        parsed.algorithm.as_str() != Algorithm::Argon2id.ident().as_str()
            || parsed.version != Some(Version::V0x13.into())
            || stored.m_cost() < current.memory_kib
            || stored.t_cost() < current.iterations
            || stored.p_cost() < current.parallelism
    }
}

fn verify_bcrypt(password: &str, stored_hash: &str) -> AuthResult<Verification> {
    let bytes = password.as_bytes();
    let unsafe_for_bcrypt = bytes.len() > BCRYPT_MAX_PASSWORD_BYTES || bytes.contains(&0);
    let checked = &bytes[..bytes.len().min(BCRYPT_MAX_PASSWORD_BYTES)];
    let matches = bcrypt::verify(checked, stored_hash)
        .map_err(|_| AuthError::UnsupportedHash("malformed bcrypt hash"))?;
    if matches && !unsafe_for_bcrypt {
        Ok(Verification::Valid { needs_rehash: true })
    } else {
        Ok(Verification::Invalid)
    }
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> AuthResult<T> + Send + 'static,
) -> AuthResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AuthError::Task(format!("password hashing task: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fast parameters for tests that are not about the parameters.
    fn weak() -> HashParams {
        HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn fast_hasher() -> PasswordHasher {
        PasswordHasher::dangerous_with_weak_params(weak()).unwrap()
    }

    #[test]
    fn default_is_the_owasp_minimum() {
        let params = HashParams::default();
        assert_eq!(
            (params.memory_kib, params.iterations, params.parallelism),
            (19_456, 2, 1)
        );
        params.validate().unwrap();
    }

    #[test]
    fn owasp_equivalents_pass_and_weaker_fail() {
        for (m, t) in OWASP_MINIMUMS {
            let ok = HashParams {
                memory_kib: m,
                iterations: t,
                parallelism: 1,
            };
            ok.validate().unwrap();
            let less_memory = HashParams {
                memory_kib: m - 1,
                ..ok
            };
            let fewer_passes = HashParams {
                iterations: t - 1,
                ..ok
            };
            assert!(!less_memory.meets_owasp_minimum(), "{less_memory:?}");
            assert!(!fewer_passes.meets_owasp_minimum(), "{fewer_passes:?}");
        }
        assert!(matches!(
            HashParams {
                memory_kib: 19_455,
                iterations: 2,
                parallelism: 1
            }
            .validate(),
            Err(AuthError::InvalidHashParams(_))
        ));
        assert!(PasswordHasher::new(weak()).is_err());
    }

    #[test]
    fn structural_limits_are_checked_even_for_weak_hashers() {
        for params in [
            HashParams {
                parallelism: 0,
                ..weak()
            },
            HashParams {
                iterations: 0,
                ..weak()
            },
            HashParams {
                memory_kib: 4,
                ..weak()
            },
            HashParams {
                memory_kib: MAX_MEMORY_KIB + 1,
                ..weak()
            },
        ] {
            assert!(
                matches!(
                    PasswordHasher::dangerous_with_weak_params(params),
                    Err(AuthError::InvalidHashParams(_))
                ),
                "{params:?}"
            );
        }
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = fast_hasher();
        let stored = hasher.hash("Tr1cky-Lemur-Parade").await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{stored}"
        );
        assert_eq!(
            hasher.verify("Tr1cky-Lemur-Parade", &stored).await.unwrap(),
            Verification::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher.verify("Tr1cky-Lemur-Parad", &stored).await.unwrap(),
            Verification::Invalid
        );
        // A second hash of the same password differs (random salt).
        assert_ne!(stored, hasher.hash("Tr1cky-Lemur-Parade").await.unwrap());
    }

    #[tokio::test]
    async fn weaker_argon2_hash_needs_rehash_stronger_does_not() {
        let old = fast_hasher();
        let stored = old.hash("pw").await.unwrap();
        let current = PasswordHasher::dangerous_with_weak_params(HashParams {
            memory_kib: 128,
            ..weak()
        })
        .unwrap();
        assert_eq!(
            current.verify("pw", &stored).await.unwrap(),
            Verification::Valid { needs_rehash: true }
        );
        let stronger = current.hash("pw").await.unwrap();
        assert_eq!(
            old.verify("pw", &stronger).await.unwrap(),
            Verification::Valid {
                needs_rehash: false
            }
        );
    }

    #[tokio::test]
    async fn argon2i_hash_verifies_and_needs_rehash() {
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            weak().to_argon2().unwrap(),
        );
        let stored = argon2i.hash_password(b"pw").unwrap().to_string();
        assert!(stored.starts_with("$argon2i$"));
        assert!(
            fast_hasher()
                .verify("pw", &stored)
                .await
                .unwrap()
                .needs_rehash()
        );
    }

    /// Known answer: bcrypt("hunter2", cost 12, all-zero salt), the `$2b$12$` form the
    /// original's passlib stored.
    const HUNTER2_COST_12: &str = "$2b$12$......................21jzCB1r6pN6rp5O2Ev0ejjTAboskKm";

    #[test]
    fn legacy_bcrypt_cost_12_verifies_and_needs_rehash() {
        let hasher = fast_hasher();
        assert_eq!(
            hasher.verify_blocking("hunter2", HUNTER2_COST_12).unwrap(),
            Verification::Valid { needs_rehash: true }
        );
        assert_eq!(
            hasher.verify_blocking("hunter3", HUNTER2_COST_12).unwrap(),
            Verification::Invalid
        );
        // And one made the way the original made them: random salt, cost 12.
        let stored = bcrypt::hash("Legacy-Pa55word!", 12).unwrap();
        assert!(stored.starts_with("$2b$12$"));
        assert!(
            hasher
                .verify_blocking("Legacy-Pa55word!", &stored)
                .unwrap()
                .needs_rehash()
        );
    }

    #[test]
    fn all_bcrypt_prefixes_verify() {
        let hasher = fast_hasher();
        let parts = bcrypt::hash_with_result("pw", 4).unwrap();
        for version in [
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoY,
        ] {
            let stored = parts.format_for_version(version);
            assert!(
                hasher
                    .verify_blocking("pw", &stored)
                    .unwrap()
                    .needs_rehash(),
                "{stored}"
            );
        }
        let two_x = parts.format_for_version(bcrypt::Version::TwoX);
        assert!(matches!(
            hasher.verify_blocking("pw", &two_x),
            Err(AuthError::UnsupportedHash(_))
        ));
    }

    #[test]
    fn bcrypt_never_matches_by_a_72_byte_prefix() {
        let hasher = fast_hasher();
        // Python's bcrypt (the original's) hashing b"x" * 100: it silently used 72 bytes.
        let python = "$2a$05$......................YgIDy4hFBdVlc/6LHnD9mX488r9cLd2";
        let long = "x".repeat(100);
        assert!(bcrypt::verify(&long, python).unwrap());
        // Neither the long password itself nor another one sharing its prefix verifies here.
        assert_eq!(
            hasher.verify_blocking(&long, python).unwrap(),
            Verification::Invalid
        );
        let other = format!("{}different-tail", &long[..72]);
        assert_eq!(
            hasher.verify_blocking(&other, python).unwrap(),
            Verification::Invalid
        );
        // Exactly 72 bytes is the whole key bcrypt used, so it verifies.
        assert!(
            hasher
                .verify_blocking(&long[..72], python)
                .unwrap()
                .is_valid()
        );
    }

    #[test]
    fn bcrypt_rejects_nul_bytes() {
        let hasher = fast_hasher();
        // bcrypt cycles the key "ab\0" -> "ab\0ab\0..." so "ab\0ab" collides with "ab".
        let stored = bcrypt::hash("ab", 4).unwrap();
        assert!(bcrypt::verify("ab\0ab", &stored).unwrap());
        assert_eq!(
            hasher.verify_blocking("ab\0ab", &stored).unwrap(),
            Verification::Invalid
        );
        assert!(hasher.verify_blocking("ab", &stored).unwrap().is_valid());
    }

    #[test]
    fn unknown_formats_and_garbage_are_errors_not_mismatches() {
        let hasher = fast_hasher();
        for stored in [
            "",
            "plaintext",
            "$argon2id$garbage",
            "$2b$12$short",
            "$5$rounds",
        ] {
            assert!(
                matches!(
                    hasher.verify_blocking("pw", stored),
                    Err(AuthError::UnsupportedHash(_))
                ),
                "{stored}"
            );
        }
    }

    #[test]
    fn overlong_passwords() {
        let hasher = fast_hasher();
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(
            hasher.hash_blocking(&long),
            Err(AuthError::PasswordTooLong {
                max: MAX_PASSWORD_BYTES
            })
        ));
        let stored = hasher.hash_blocking("pw").unwrap();
        assert_eq!(
            hasher.verify_blocking(&long, &stored).unwrap(),
            Verification::Invalid
        );
    }

    #[tokio::test]
    async fn unknown_user_uses_a_cached_dummy_with_current_params() {
        let hasher = fast_hasher();
        hasher.warm_up().await.unwrap();
        let dummy = hasher.inner.dummy_hash.get().unwrap().clone();
        assert!(dummy.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            hasher.verify_unknown_user("anything").await.unwrap(),
            Verification::Invalid
        );
        // Computed once.
        assert_eq!(hasher.inner.dummy_hash.get().unwrap(), &dummy);
    }

    #[test]
    fn debug_shows_no_internals() {
        let shown = format!("{:?}", fast_hasher());
        assert!(shown.contains("memory_kib: 64"), "{shown}");
    }
}
