//! # samokoder-auth
//!
//! Samokoder's security core, HTTP-agnostic except for the axum layer at the edge: password policy
//! and hashing, JWT access and refresh tokens with rotation and reuse detection, the login lockout
//! policy, the secret box that seals provider keys, cookie builders, and the authentication
//! extractor. Persistence goes through the small traits in [`ports`], which `samokoder-store`
//! implements.

pub mod clock;
pub mod cookies;
pub mod error;
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
