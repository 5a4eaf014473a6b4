//! The client against the real server: one binary, one module per resource.

mod auth;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cli")]
mod cli_run;
mod errors;
mod events;
mod helpers;
mod projects;
mod resources;
