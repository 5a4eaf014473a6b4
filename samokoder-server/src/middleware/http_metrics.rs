//! `http_requests_total`, `http_request_duration_seconds` and `http_requests_in_flight`.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::Method;

use super::trace::route_of;
use crate::observability::metrics as m;

/// Methods outside the standard set share one label, so a client cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Decrements the in-flight gauge however the request ends (including cancellation).
struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::gauge!(m::HTTP_REQUESTS_IN_FLIGHT).increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(m::HTTP_REQUESTS_IN_FLIGHT).decrement(1.0);
    }
}

/// Middleware: counts and times every request by method, route template and status.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let route = route_of(&req).to_owned();
    let started = Instant::now();
    let in_flight = InFlight::start();
    let response = next.run(req).await;
    drop(in_flight);
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!(m::HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(m::HTTP_REQUEST_DURATION_SECONDS, &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
