//! Wire types of the Samokoder HTTP API.
//!
//! Everything here is plain data (serde). With the `openapi` feature the types also derive
//! `utoipa::ToSchema`, so the server can describe them in its OpenAPI document.

mod error;
mod health;

pub use error::{ErrorBody, FieldError};
pub use health::{Health, HealthStatus, Readiness, ReadinessCheckResult};
