//! # samokoder-client
//!
//! A typed async client for the Samokoder HTTP API, built on the wire types of
//! `samokoder_core::api` so the client and the server never disagree on a field. With the `cli`
//! feature it also provides the `samokoder` command-line tool.
//!
//! ```no_run
//! # async fn demo() -> Result<(), samokoder_client::Error> {
//! let client = samokoder_client::Client::new("http://127.0.0.1:8000")?;
//! let health = client.health().await?;
//! println!("server {} is {:?}", health.version, health.status);
//! # Ok(()) }
//! ```

use samokoder_core::api::{ErrorBody, Health};
use url::Url;

/// What can go wrong talking to a Samokoder server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL could not be parsed or joined.
    #[error("invalid server URL: {0}")]
    InvalidUrl(#[from] url::ParseError),
    /// The request did not complete (connection, timeout, undecodable body).
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered with an error body.
    #[error("server error {status} ({}): {}", body.code, body.detail)]
    Api {
        /// HTTP status code.
        status: u16,
        /// The server's error body.
        body: ErrorBody,
    },
}

/// A client of one Samokoder server.
#[derive(Debug, Clone)]
pub struct Client {
    base: Url,
    http: reqwest::Client,
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8000`).
    pub fn new(base_url: &str) -> Result<Self, Error> {
        Ok(Self {
            base: Url::parse(base_url)?,
            http: reqwest::Client::new(),
        })
    }

    /// `GET /health`: whether the server is alive, and its version.
    pub async fn health(&self) -> Result<Health, Error> {
        let response = self.http.get(self.base.join("/health")?).send().await?;
        let status = response.status();
        if status.is_success() {
            Ok(response.json().await?)
        } else {
            Err(Error::Api {
                status: status.as_u16(),
                body: response.json().await?,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Json, Router, routing::get};
    use samokoder_core::api::HealthStatus;

    #[tokio::test]
    async fn reads_health_over_real_http() {
        let app = Router::new().route(
            "/health",
            get(|| async {
                Json(Health {
                    status: HealthStatus::Ok,
                    version: "9.9.9".into(),
                })
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let client = Client::new(&format!("http://{address}")).unwrap();
        let health = client.health().await.unwrap();
        assert_eq!(health.version, "9.9.9");
    }
}
