//! The integration tests of samokoder-server: one binary (faster to link), one module per
//! concern. Later steps add their modules here.

mod config;
mod cors;
mod errors;
mod health;
mod helpers;
mod logging;
mod metrics;
mod openapi;
mod paths;
mod rate_limit;
mod request_id;
mod security_headers;
mod server;
