//! Cross-origin requests: an explicit origin list, with credentials (the web app sends its
//! cookies). `*` is refused by configuration validation, never reaches here.

use std::time::Duration;

use http::Method;
use http::header::{self, HeaderName, HeaderValue};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::request_id::REQUEST_ID_HEADER;
use crate::rate_limit::{LIMIT_HEADER, REMAINING_HEADER, RESET_HEADER};

/// The CORS layer for `origins`. An empty list allows no cross-origin caller (preflights are
/// answered without `Access-Control-Allow-Origin`, so browsers refuse).
pub(crate) fn layer(origins: &[String], max_age: Duration) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::ACCEPT,
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            REQUEST_ID_HEADER,
            HeaderName::from_static("last-event-id"),
        ])
        // Without this the browser hides them from the web app's JavaScript.
        .expose_headers([
            REQUEST_ID_HEADER,
            header::RETRY_AFTER,
            LIMIT_HEADER,
            REMAINING_HEADER,
            RESET_HEADER,
        ])
        .max_age(max_age)
}
