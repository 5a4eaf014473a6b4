//! # samokoder-store
//!
//! Everything Samokoder keeps lives behind the traits of this crate: users and their sessions,
//! projects, sealed provider keys, usage, notifications, analytics and the audit log, generation
//! runs with their checkpointed states, files and events, and the job queue workers share.
//!
//! Backends, each behind its own cargo feature and all able to compile together:
//! `sqlx-sqlite` (embedded, the default), `sqlx-postgres`, and `diesel-postgres` (diesel-async).
//! The store also implements the persistence ports of `samokoder-auth` ([`samokoder_auth::ports`]).
//!
//! - [`repo`]: one trait per repository ([`UserRepo`], [`ProjectRepo`], [`JobQueue`], ...),
//!   async and object-safe; consumers hold them as `Arc<dyn Trait>`.
//! - [`Store`]: the bundle of all of them, as public fields an embedder may replace one by one.
//! - [`model`]: the store's own domain types (`User`, `NewProject`, `Job`, ...).
//! - [`StoreError`]: one error enum (`NotFound`, `Conflict`, `MissingReference`, ...).
//! - [`migrations`]: versioned SQL per database family, embedded, applied by an explicit
//!   [`Store::migrate`].

mod common;
pub mod error;
pub mod migrations;
pub mod model;
#[cfg(feature = "sqlx-postgres")]
mod postgres;
pub mod repo;
#[cfg(feature = "sqlx-sqlite")]
mod sqlite;
#[cfg(any(feature = "sqlx-sqlite", feature = "sqlx-postgres"))]
mod sqlx_util;
mod store;

pub use error::{StoreError, StoreResult};
pub use model::*;
pub use repo::*;
pub use store::{Backend, BackendKind, Store, StoreOptions, connect, connect_with, redact_url};
