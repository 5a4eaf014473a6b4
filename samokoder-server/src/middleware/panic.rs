//! A panic in a handler becomes a 500 with the standard body instead of a dropped connection.

use std::any::Any;

use axum::body::Body;
use axum::response::IntoResponse;
use http::Response;
use tower_http::catch_panic::ResponseForPanic;

use crate::error::ApiError;

/// Builds the response for a caught panic; the panic message goes to the log only.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PanicResponse;

impl ResponseForPanic for PanicResponse {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("non-text panic payload");
        ApiError::internal(format!("handler panicked: {message}")).into_response()
    }
}
