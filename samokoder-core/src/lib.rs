//! # samokoder-core
//!
//! The part of Samokoder every other crate builds on:
//!
//! - [`api`]: the request and response types of the HTTP API, shared by the server and the typed
//!   client so no type is written twice. It does no I/O and compiles without the `engine` feature.
//! - the generation engine (feature `engine`, on by default): the LLM provider layer, the agents and
//!   their orchestrator, the versioned workspace and the sandboxed command runner.
//!
//! ```
//! use samokoder_core::api::ErrorBody;
//!
//! let body = ErrorBody::new("project_not_found", "Project not found");
//! assert_eq!(body.code, "project_not_found");
//! ```

#[cfg(feature = "engine")]
pub mod agents;
pub mod api;
#[cfg(feature = "engine")]
pub mod engine;
#[cfg(feature = "engine")]
pub mod install;
#[cfg(feature = "engine")]
pub mod llm;
#[cfg(feature = "engine")]
pub mod net;
#[cfg(feature = "engine")]
pub mod prompts;
#[cfg(feature = "engine")]
pub mod runner;
#[cfg(feature = "engine")]
pub mod state;
#[cfg(feature = "engine")]
pub mod templates;
#[cfg(feature = "engine")]
pub mod workspace;
