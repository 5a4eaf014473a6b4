//! The integration tests of samokoder-server: one binary (faster to link), one module per
//! concern. Later steps add their modules here.

mod admin;
mod analytics;
mod app;
mod auth_flows;
mod cli;
mod config;
mod cookies;
mod cors;
mod errors;
mod generating;
mod health;
mod helpers;
mod keys;
mod limits;
mod logging;
mod metrics;
mod models;
mod notifications;
mod openapi;
mod paths;
mod postgres;
mod previews;
mod projects;
mod quota;
mod rate_limit;
mod request_id;
mod run_access;
mod run_events;
mod runs;
mod secrets;
mod security_headers;
mod server;
mod usage;
mod user;
mod workers;
