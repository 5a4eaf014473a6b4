//! # samokoder-store
//!
//! Everything Samokoder keeps lives behind the traits of this crate: users and their sessions,
//! projects, sealed provider keys, usage, notifications, analytics and the audit log, generation
//! runs with their checkpointed states, files and events, and the job queue workers share.
//!
//! Backends, each behind its own cargo feature and all able to compile together:
//! `sqlx-sqlite` (embedded, the default), `sqlx-postgres`, and `diesel-postgres` (diesel-async).
//! The store also implements the persistence ports of `samokoder-auth` and of the engine.
