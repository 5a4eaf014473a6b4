//! The client against the real server: one binary, one module per resource.

mod auth;
mod errors;
mod helpers;
mod projects;
mod resources;
