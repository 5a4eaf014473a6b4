//! [`ApiError`]: every failing response of the server, one JSON shape.
//!
//! The body is [`ErrorBody`] `{"detail", "code", "request_id"}` (plus `errors` on validation
//! failures). `detail` is safe to show to anyone: internal causes go into the log through
//! [`ApiError::with_source`] and never into the response.

mod domain;
mod rejection;

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::header::{HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, StatusCode};
use samokoder_core::api::{ErrorBody, FieldError};

use crate::middleware::request_id;

/// A boxed error kept for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An HTTP error: status, stable code, safe message, optional field errors and headers, and
/// optionally the internal cause (logged, never sent).
///
/// Handlers return `Result<_, ApiError>`; later steps add `From` impls for the domain errors of
/// `samokoder-auth`, `samokoder-store` and the engine so `?` works.
///
/// ```
/// use samokoder_server::ApiError;
///
/// let err = ApiError::not_found("Project not found");
/// assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
/// assert_eq!(err.code(), "not_found");
/// ```
pub struct ApiError {
    /// Boxed so `Result<T, ApiError>` stays small on the success path.
    inner: Box<Inner>,
}

struct Inner {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: Cow<'static, str>,
    errors: Vec<FieldError>,
    headers: HeaderMap,
    source: Option<BoxError>,
}

impl ApiError {
    /// An error with any status, code and message.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            inner: Box::new(Inner {
                status,
                code: code.into(),
                detail: detail.into(),
                errors: Vec::new(),
                headers: HeaderMap::new(),
                source: None,
            }),
        }
    }

    /// 400: the request is wrong in a way a client can fix.
    pub fn bad_request(
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401 with `WWW-Authenticate: Bearer`, as the original answered any authentication failure.
    pub fn unauthorized(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "not_authenticated", detail)
            .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404 with code `not_found`.
    pub fn not_found(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 405: the path exists but not with this method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
        )
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 413: the body is over the limit of its route.
    pub fn payload_too_large(limit: Option<usize>) -> Self {
        let detail = match limit {
            Some(limit) => format!("The request body is larger than the limit of {limit} bytes"),
            None => "The request body is too large".to_owned(),
        };
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
    }

    /// 415: the body is not in the format the route reads.
    pub fn unsupported_media_type(expected: &'static str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Expected a request with `Content-Type: {expected}`"),
        )
    }

    /// 422 with one entry per problem, `detail` = `Validation error` as in the original.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut err = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "Validation error",
        );
        err.inner.errors = errors;
        err
    }

    /// 429 with `Retry-After` in whole seconds (at least 1).
    pub fn too_many_requests(retry_after: Duration) -> Self {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let seconds = seconds.max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("Too many requests; retry in {seconds} s"),
        )
        .with_header(RETRY_AFTER, HeaderValue::from(seconds))
    }

    /// 500 with a fixed message; `source` is logged with the request id, never sent.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "An internal server error occurred",
        )
        .with_source(source)
    }

    /// 503: a dependency is down or the server is overloaded.
    pub fn service_unavailable(
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)
    }

    /// 503 for a request that ran past the configured time limit.
    pub fn timeout() -> Self {
        Self::service_unavailable("request_timeout", "The request took too long to process")
    }

    /// Adds a response header (`Retry-After`, `WWW-Authenticate`, ...).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.inner.headers.insert(name, value);
        self
    }

    /// Replaces the stable code (keeping status, detail and headers).
    #[must_use]
    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.inner.code = code.into();
        self
    }

    /// Adds field errors (the `errors` array of the body).
    #[must_use]
    pub fn with_field_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.inner.errors = errors;
        self
    }

    /// Keeps the internal cause for the log line. Never part of the response.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.inner.status
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &str {
        &self.inner.code
    }

    /// The message sent to the client.
    pub fn detail(&self) -> &str {
        &self.inner.detail
    }

    /// The field errors of a validation failure.
    pub fn field_errors(&self) -> &[FieldError] {
        &self.inner.errors
    }

    /// The response headers this error adds.
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.headers
    }

    /// The body this error is sent as, stamped with the current request's id.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            detail: self.inner.detail.clone().into_owned(),
            code: self.inner.code.clone().into_owned(),
            request_id: request_id::current().map(|id| id.as_str().to_owned()),
            errors: self.inner.errors.clone(),
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.inner.status.as_u16())
            .field("code", &self.inner.code)
            .field("detail", &self.inner.detail)
            .field("errors", &self.inner.errors)
            .field("source", &self.inner.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.inner.status.as_u16(),
            self.inner.code,
            self.inner.detail
        )
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// The cause and its own causes, `: `-separated, for one log field.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let cause = self.inner.source.as_deref().map(|s| chain(s));
        if self.inner.status.is_server_error() {
            tracing::error!(
                status = self.inner.status.as_u16(),
                code = %self.inner.code,
                cause = cause.as_deref().unwrap_or("-"),
                "request failed"
            );
        } else {
            tracing::debug!(
                status = self.inner.status.as_u16(),
                code = %self.inner.code,
                cause = cause.as_deref().unwrap_or("-"),
                "request refused"
            );
        }
        let body = self.body();
        let mut response = (self.inner.status, Json(body)).into_response();
        response.headers_mut().extend(self.inner.headers);
        response
    }
}
