//! The binary's log output: structured `tracing` events, JSON in production.
//!
//! Embedders install their own subscriber; the server only emits events. What the server logs
//! never includes headers, query strings, bodies, tokens or passwords: request spans carry the
//! method, route template and request id only (see `middleware::trace`).

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `log.filter` is not a valid filter directive.
    #[error("log.filter (SAMOKODER_LOG__FILTER) is not a valid filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// A global subscriber is already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Installs the global subscriber for `config`: its filter and its format (JSON in production,
/// compact elsewhere, unless `log.format` says otherwise).
pub fn init(config: &Config) -> Result<(), LoggingError> {
    let filter = EnvFilter::try_new(&config.log.filter)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match config.log_format() {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.pretty().try_init(),
        LogFormat::Compact => builder.compact().try_init(),
    };
    installed.map_err(|_| LoggingError::AlreadyInstalled)
}
