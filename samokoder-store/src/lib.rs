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
//! - [`testing`]: scratch databases (a temporary SQLite file, a throw-away PostgreSQL schema)
//!   for tests and benchmarks.
//!
//! Opening a store, migrating it, and one call on a repository:
//!
//! ```
//! use samokoder_store::{NewProject, NewUser, ProjectQuery, StoreError, connect};
//!
//! # #[cfg(feature = "sqlx-sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), StoreError> {
//! // The backend comes from the URL. A server derives its SQLite path from its data directory;
//! // an in-memory database suits an example.
//! let store = connect("sqlite::memory:").await?;
//! let report = store.migrate().await?; // explicit, and safe to run again
//! assert!(!report.applied.is_empty());
//!
//! let ada = store
//!     .users
//!     .create(&NewUser::new("ada@example.com", "$argon2id$v=19$..."))
//!     .await?;
//! let project = store
//!     .projects
//!     .create(&NewProject { owner_id: ada.id, name: "Todo app".into(), description: None })
//!     .await?;
//! let page = store.projects.list(&ProjectQuery::first_page(ada.id, 20)).await?;
//! assert_eq!(page.items, [project]);
//!
//! // A second account with the same e-mail, whatever its case, is a typed conflict.
//! let again = store.users.create(&NewUser::new("ADA@example.com", "x")).await;
//! assert!(matches!(again, Err(StoreError::Conflict { .. })));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "sqlx-sqlite"))]
//! # fn main() {}
//! ```
//!
//! Implementing a repository yourself uses the same [`async_trait`] macro the traits are declared
//! with (re-exported here); see `examples/custom_store.rs` in the workspace.

mod common;
#[cfg(feature = "diesel-postgres")]
pub mod diesel_pg;
pub mod engine;
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
pub mod testing;

/// The attribute macro the repository traits are declared with; implement them with it too.
pub use async_trait::async_trait;

pub use error::{StoreError, StoreResult};
pub use model::*;
pub use repo::*;
pub use store::{Backend, BackendKind, Store, StoreOptions, connect, connect_with, redact_url};
