//! Wire types of the Samokoder HTTP API.
//!
//! Everything here is plain data (serde). With the `openapi` feature the types also derive
//! `utoipa::ToSchema` (and query types `utoipa::IntoParams`), so the server can describe them in
//! its OpenAPI document. Request types holding secrets print without them (`Debug`).
//!
//! One module per resource; times are RFC 3339 UTC instants, ids UUIDs.

pub mod admin;
pub mod analytics;
pub mod auth;
mod common;
mod error;
pub mod events;
pub mod files;
mod health;
pub mod keys;
pub mod models;
pub mod notifications;
pub mod preview;
pub mod projects;
pub mod runs;
pub mod usage;
pub mod user;
pub mod workspace;

pub use common::{MessageResponse, SuccessResponse, Tier};
pub use error::{ErrorBody, FieldError};
pub use health::{Health, HealthStatus, Readiness, ReadinessCheckResult, SandboxFeatureStatus};
