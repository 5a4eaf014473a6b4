//! # samokoder-auth
//!
//! Samokoder's security core. Everything here is HTTP-agnostic except the axum layer in
//! [`extract`]; persistence goes through the small traits in [`ports`], which
//! `samokoder-store` implements (and [`memory`] implements in memory).
//!
//! ## Modules, one job each
//!
//! | module | job |
//! |---|---|
//! | [`policy`] | the password policy for new passwords: every violation at once, stable codes |
//! | [`hashing`] | argon2id hashing off the async runtime; verifies legacy bcrypt; rehash signal; unknown-user path without a timing oracle |
//! | [`tokens`] | JWT access (15 min) and refresh (7 days) tokens; keyring with key ids for rotation; typed claims; injectable clock |
//! | [`refresh`] | login, refresh with rotation and reuse detection, logout, logout everywhere |
//! | [`lockout`] | sliding-window login lockout per (account, client) with an account-wide ceiling |
//! | [`secret_box`] | AES-256-GCM for users' provider keys and VCS tokens, bound to owner and purpose, with key rotation |
//! | [`cookies`] | the `access_token` / `refresh_token` cookies, set and cleared |
//! | [`extract`] | the axum extractor and middleware: bearer header or cookie, revocation check, JSON 401s |
//! | [`ports`] | the storage traits this crate needs |
//! | [`memory`] | in-memory implementations of the ports |
//! | [`clock`] | the time source, replaceable in tests |
//! | [`secret`] | [`SecretString`](secret::SecretString), which never prints its value |
//! | [`error`] | [`AuthError`], the crate's one error type, with stable codes |
//!
//! ## How the server wires it
//!
//! At start-up, from configuration (any error names the setting or key id at fault; refuse to
//! start on one):
//!
//! ```text
//! issuer      = Arc::new(TokenIssuer::new(&config.tokens)?)          // signing keyring
//! hasher      = PasswordHasher::new(config.password_hashing)?;  hasher.warm_up().await?
//! secret_box  = Arc::new(SecretBox::new(&config.secret_box)?)
//! refresh     = RefreshService::new(issuer.clone(), store.refresh_families(), store.revocations())
//! lockout     = LockoutService::new(config.lockout, store.login_attempts(), Arc::new(SystemClock))?
//! auth_state  = AuthState::new(issuer.clone(), store.revocations())  // + impl FromRef<AppState>
//! cookies     = config.cookies  // CookieConfig; CookieConfig::development() locally
//! ```
//!
//! The routes then read:
//!
//! * **register**: [`policy::check_password`] → 422 with one field error per violation;
//!   [`PasswordHasher::hash`](hashing::PasswordHasher::hash); store the user; then as login.
//! * **login**: `account = lockout::account_key(email)`; `attempt = lockout.begin(account,
//!   client)` → 429 with `Retry-After` when `attempt.decision()` is locked (before looking at
//!   the password); load the user; `hasher.verify(password, hash)` or, for an unknown e-mail,
//!   `hasher.verify_unknown_user(password)`; `attempt.failed()` or `attempt.succeeded()`; on
//!   success re-hash when `needs_rehash()`, `refresh.login(user_id)`, set both cookies and
//!   return the tokens.
//! * **refresh**: refresh token from the cookie or the body; `refresh.refresh(token)`; on
//!   `RefreshTokenReused` write the audit event; set both cookies again.
//! * **logout**: `refresh.logout(refresh_token)` and `refresh.revoke_access(claims)`; clear
//!   both cookies. **Logout everywhere** / password change: `refresh.logout_all(user_id)`.
//! * **authenticated routes**: take an [`AuthenticatedUser`](extract::AuthenticatedUser)
//!   argument, or put [`require_authentication`](extract::require_authentication) on the group.
//! * **BYOK keys, VCS tokens**: `secret_box.seal_str(key, &associated_data(user_id,
//!   "provider:openai"))` on write, `open_string` with the same associated data on use; a
//!   maintenance job calls `reseal` after adding a key.
//!
//! [`AuthError::code`] gives each failure a stable code for the JSON error body, and
//! [`AuthError::is_credential_error`] tells 401s from 5xx.

pub mod clock;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod hashing;
mod keyring;
pub mod lockout;
pub mod memory;
pub mod policy;
pub mod ports;
pub mod refresh;
pub mod secret;
pub mod secret_box;
pub mod tokens;

pub use error::{AuthError, AuthResult, InvalidTokenReason};
