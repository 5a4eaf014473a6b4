//! `x-request-id`: accept a sane incoming id or make one, echo it, and make it available to
//! the log span and to every error body.

use std::fmt;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use http::header::HeaderName;

/// The header carrying the request id, in both directions.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id accepted.
const MAX_LEN: usize = 128;

tokio::task_local! {
    /// The id of the request whose future is running; read by `ApiError` when it renders.
    static CURRENT: RequestId;
}

/// The id of one request: a request extension, the `x-request-id` response header, the
/// `request_id` of the log span and of every error body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh random id (a UUID).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// Accepts an id from a client or proxy if it is 1-128 characters of letters, digits and
    /// `-_.:+=/@`: enough for UUIDs, ULIDs and the ids proxies make, and nothing that could break
    /// a log line or a header.
    pub fn parse(candidate: &str) -> Option<Self> {
        let sane = !candidate.is_empty()
            && candidate.len() <= MAX_LEN
            && candidate
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:+=/@".contains(&b));
        sane.then(|| Self(candidate.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of the request being handled, if called from within one.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Middleware: settles the id, stores it in the request (extension and header), runs the rest
/// of the stack with it as the task's current id, and echoes it in the response.
pub(crate) async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    // Validated above (or a UUID), so always a valid header value.
    let value =
        HeaderValue::from_str(id.as_str()).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    req.headers_mut().insert(REQUEST_ID_HEADER, value.clone());
    req.extensions_mut().insert(id.clone());
    let mut response = CURRENT.scope(id, next.run(req)).await;
    response.headers_mut().insert(REQUEST_ID_HEADER, value);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sane_ids_only() {
        assert!(RequestId::parse("6f1c2e9a-1b2c-4d3e-8f90-123456789abc").is_some());
        assert!(RequestId::parse("01HZX3J9K2M4N5P6Q7R8S9T0VW").is_some());
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse(&"a".repeat(129)).is_none());
        assert!(RequestId::parse("abc\r\nx-evil: 1").is_none());
        assert!(RequestId::parse("<script>").is_none());
        assert!(RequestId::parse("id with spaces").is_none());
    }

    #[tokio::test]
    async fn current_is_scoped_to_the_request() {
        assert!(current().is_none());
        let id = RequestId::generate();
        let seen = CURRENT.scope(id.clone(), async { current() }).await;
        assert_eq!(seen, Some(id));
    }
}
