//! What can go wrong talking to a Samokoder server.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use samokoder_core::api::{ErrorBody, FieldError};

/// An error of a client call: the server's answer ([`Error::Api`]) or anything that kept the
/// call from getting one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The base URL could not be parsed or a path could not be joined to it.
    #[error("invalid server URL: {0}")]
    InvalidUrl(#[from] url::ParseError),
    /// The request did not complete: connection refused, TLS, timeout, a body cut short.
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered with an error status; see [`ApiError`].
    #[error(transparent)]
    Api(Box<ApiError>),
    /// The server answered with a success status but a body this client cannot read: a server
    /// of another version, or something else listening at the URL.
    #[error("unexpected answer to {operation} (HTTP {status}): {source}")]
    Decode {
        /// The operation (its OpenAPI `operationId`).
        operation: &'static str,
        /// The HTTP status of the answer.
        status: u16,
        /// Why the body did not decode.
        #[source]
        source: serde_json::Error,
    },
    /// A request could not be built from the arguments (e.g. a query value that is not a
    /// scalar).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A local file could not be read or written (downloads).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The call needs a session and the client has none: log in first.
    #[error("not logged in")]
    NotLoggedIn,
    /// An event stream broke in a way reconnecting cannot fix (a malformed event, or the
    /// reconnection budget is spent).
    #[error("event stream: {0}")]
    EventStream(String),
}

impl Error {
    /// The server's error answer, when this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(error) => Some(error),
            _ => None,
        }
    }

    /// The HTTP status of the server's error answer, when this is one.
    pub fn status(&self) -> Option<StatusCode> {
        self.api().map(ApiError::status)
    }

    /// The stable error `code` of the server's answer (e.g. `invalid_credentials`), when this
    /// is one.
    pub fn code(&self) -> Option<&str> {
        self.api().map(ApiError::code)
    }

    /// Whether the server answered 401: not logged in, or the session is over.
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(StatusCode::UNAUTHORIZED)
    }

    /// Whether the server answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<ApiError> for Error {
    fn from(error: ApiError) -> Self {
        Self::Api(Box::new(error))
    }
}

/// The server's error answer: the HTTP status and the body every Samokoder error carries
/// (`detail`, `code`, `request_id`, and `errors` for validation failures).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// Builds the error of an answer from its parts. The request id falls back to the
    /// `x-request-id` header when the body has none, and a body that is not an [`ErrorBody`]
    /// (a proxy's HTML page) becomes one with code `unexpected_response` and the text as
    /// detail, so every error can be reported the same way.
    pub(crate) fn from_parts(
        status: StatusCode,
        header_request_id: Option<String>,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Self {
        let mut body = serde_json::from_slice::<ErrorBody>(body).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let detail = if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("Unexpected response")
                    .to_owned()
            } else {
                // A whole HTML page is no use in an error message; its start usually names it.
                text.chars().take(300).collect()
            };
            ErrorBody::new("unexpected_response", detail)
        });
        if body.request_id.is_none() {
            body.request_id = header_request_id;
        }
        Self {
            status,
            body,
            retry_after,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable machine-readable code, e.g. `invalid_credentials` or `validation_error`.
    pub fn code(&self) -> &str {
        &self.body.code
    }

    /// The message for people.
    pub fn detail(&self) -> &str {
        &self.body.detail
    }

    /// The id the server gave the request: quote it when reporting a problem, it finds the
    /// server's log lines.
    pub fn request_id(&self) -> Option<&str> {
        self.body.request_id.as_deref()
    }

    /// Per-field problems of a validation error (`validation_error`).
    pub fn field_errors(&self) -> &[FieldError] {
        &self.body.errors
    }

    /// How long the server asked to wait before trying again (`Retry-After`, sent with 429
    /// and 503).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The whole error body.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.status.as_u16())
            .field("code", &self.body.code)
            .field("detail", &self.body.detail)
            .field("request_id", &self.body.request_id)
            .field("errors", &self.body.errors)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (HTTP {}, code {}",
            self.body.detail,
            self.status.as_u16(),
            self.body.code
        )?;
        if let Some(id) = &self.body.request_id {
            write!(f, ", request {id}")?;
        }
        f.write_str(")")?;
        for error in &self.body.errors {
            write!(f, "; {}: {}", error.field, error.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_error_body_and_prints_every_part() {
        let body = br#"{"detail":"Bad","code":"validation_error","request_id":"r-1",
            "errors":[{"field":"password","code":"too_short","message":"Too short"}]}"#;
        let error = ApiError::from_parts(StatusCode::UNPROCESSABLE_ENTITY, None, None, body);
        assert_eq!(error.code(), "validation_error");
        assert_eq!(error.request_id(), Some("r-1"));
        assert_eq!(error.field_errors()[0].code, "too_short");
        assert_eq!(
            error.to_string(),
            "Bad (HTTP 422, code validation_error, request r-1); password: Too short"
        );
    }

    #[test]
    fn a_foreign_body_still_gives_a_usable_error() {
        let error = ApiError::from_parts(
            StatusCode::BAD_GATEWAY,
            Some("hdr-7".into()),
            Some(Duration::from_secs(3)),
            b"<html>Bad gateway</html>",
        );
        assert_eq!(error.code(), "unexpected_response");
        assert_eq!(error.detail(), "<html>Bad gateway</html>");
        assert_eq!(error.request_id(), Some("hdr-7"));
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        let empty = ApiError::from_parts(StatusCode::SERVICE_UNAVAILABLE, None, None, b"");
        assert_eq!(empty.detail(), "Service Unavailable");
    }
}
