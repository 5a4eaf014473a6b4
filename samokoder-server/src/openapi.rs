//! The OpenAPI document: generated from the handlers' `#[utoipa::path]` annotations as routes
//! are registered (utoipa-axum), completed here with the security schemes and the error
//! responses every operation can give.
//!
//! The document is committed as `samokoder-server/openapi.json`; a test fails when it drifts.
//! Regenerate with `cargo run -p samokoder-server -- openapi > samokoder-server/openapi.json`.

use samokoder_core::api::events::{RunEvent, WsClientFrame, WsServerFrame};
use samokoder_core::api::{ErrorBody, FieldError};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, Object, OpenApi as Document, Ref, RefOr, ResponseBuilder, Type,
};
use utoipa::{Modify, OpenApi};

/// Security scheme name for `Authorization: Bearer <access token>`.
pub const BEARER_SCHEME: &str = "bearer";
/// Security scheme name for the `access_token` cookie the web app uses.
pub const COOKIE_SCHEME: &str = "cookie";
/// Security scheme name for the scrape token `/metrics` may require.
pub const METRICS_SCHEME: &str = "metrics_token";

/// The parts of the document not tied to a route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Samokoder API",
        description = "Turns a plain-language app description into a working codebase.\n\n\
            Every path under `/v1` is also served under `/api/v1`, and paths answer with or \
            without a trailing slash. Every response carries `x-request-id`; every error has \
            the body `ErrorBody`. Rate-limited routes send `X-RateLimit-Limit`, \
            `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    // The event and frame shapes travel inside SSE and WebSocket messages, which no response
    // schema references: listed so clients find them.
    components(schemas(ErrorBody, FieldError, RunEvent, WsServerFrame, WsClientFrame)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "operations", description = "Metrics for operators"),
        (name = "runs", description = "Generation runs: start, follow (SSE, WebSocket), answer, cancel, resume"),
        (name = "files", description = "Generated files, their history, rollback and export"),
        (name = "preview", description = "Running the generated app in the sandbox"),
    )
)]
struct BaseDoc;

/// Adds the two ways to present an access token.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from /v1/auth/login"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            METRICS_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The scrape token of `metrics.token`, for GET /metrics only",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            COOKIE_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "access_token",
                "The access token cookie set by /v1/auth/login (the web app's way)",
            ))),
        );
    }
}

/// The document the routes are registered into.
pub(crate) fn base() -> Document {
    BaseDoc::openapi()
}

/// A shared error response, by component name.
struct CommonResponse {
    name: &'static str,
    status: &'static str,
    description: &'static str,
}

const BAD_REQUEST: CommonResponse = CommonResponse {
    name: "BadRequest",
    status: "400",
    description: "The body is not valid JSON or could not be read",
};
const PAYLOAD_TOO_LARGE: CommonResponse = CommonResponse {
    name: "PayloadTooLarge",
    status: "413",
    description: "The body is larger than the route's limit",
};
const UNSUPPORTED_MEDIA_TYPE: CommonResponse = CommonResponse {
    name: "UnsupportedMediaType",
    status: "415",
    description: "The body is not in the format the route reads",
};
const VALIDATION_ERROR: CommonResponse = CommonResponse {
    name: "ValidationError",
    status: "422",
    description: "A field, query or path parameter is invalid; `errors` lists each problem",
};
const CROSS_ORIGIN_REFUSED: CommonResponse = CommonResponse {
    name: "CrossOriginRefused",
    status: "403",
    description: "`cross_origin_refused`: a browser sent this state-changing request for another \
        origin (its `Origin` is neither the server's nor a configured one, or `Sec-Fetch-Site` \
        is `same-site` or `cross-site`)",
};
const TOO_MANY_REQUESTS: CommonResponse = CommonResponse {
    name: "TooManyRequests",
    status: "429",
    description: "Rate limit exceeded; retry after `Retry-After` seconds",
};
const INTERNAL_ERROR: CommonResponse = CommonResponse {
    name: "InternalError",
    status: "500",
    description: "An unexpected error; the `request_id` finds it in the server's log",
};
const SERVICE_UNAVAILABLE: CommonResponse = CommonResponse {
    name: "ServiceUnavailable",
    status: "503",
    description: "The request took too long or a dependency is down",
};

const ALL: [&CommonResponse; 8] = [
    &BAD_REQUEST,
    &CROSS_ORIGIN_REFUSED,
    &PAYLOAD_TOO_LARGE,
    &UNSUPPORTED_MEDIA_TYPE,
    &VALIDATION_ERROR,
    &TOO_MANY_REQUESTS,
    &INTERNAL_ERROR,
    &SERVICE_UNAVAILABLE,
];

/// Adds the shared error responses as components and references them from each operation
/// that can give them (unless the operation documents that status itself):
/// - every operation: 500 and 503;
/// - rate-limited operations (under `/v1`): 429;
/// - state-changing operations (not `GET`): 403 `cross_origin_refused`;
/// - operations with a body: 400, 413, 415, 422;
/// - operations with parameters: 422.
pub(crate) fn finish(doc: &mut Document) {
    let integer_header = |description: &str| {
        HeaderBuilder::new()
            .schema(Some(Object::with_type(Type::Integer)))
            .description(Some(description))
            .build()
    };
    let components = doc.components.get_or_insert_with(Default::default);
    for common in ALL {
        let mut response = ResponseBuilder::new()
            .description(common.description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            );
        if common.status == TOO_MANY_REQUESTS.status {
            response = response
                .header(
                    "Retry-After",
                    integer_header("Seconds until a retry can succeed"),
                )
                .header(
                    "X-RateLimit-Limit",
                    integer_header("Requests allowed per minute"),
                )
                .header(
                    "X-RateLimit-Remaining",
                    integer_header("Requests left now (0)"),
                )
                .header(
                    "X-RateLimit-Reset",
                    integer_header("Seconds until the allowance is whole"),
                );
        }
        components
            .responses
            .insert(common.name.to_owned(), RefOr::T(response.build()));
    }
    // axum's catch-all segments (`{*path}`) are plain parameters in OpenAPI (which has no
    // wildcard): the parameter's description says it may contain `/`.
    let wildcard: Vec<String> = doc
        .paths
        .paths
        .keys()
        .filter(|path| path.contains("{*"))
        .cloned()
        .collect();
    for path in wildcard {
        if let Some(item) = doc.paths.paths.remove(&path) {
            doc.paths.paths.insert(path.replace("{*", "{"), item);
        }
    }
    for (path, item) in &mut doc.paths.paths {
        let limited = path.starts_with("/v1");
        if let Some(operation) = &mut item.get {
            add_common_responses(operation, limited, false);
        }
        for operation in [
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            add_common_responses(operation, limited, true);
        }
    }
}

fn add_common_responses(operation: &mut Operation, limited: bool, changes_state: bool) {
    let has_body = operation.request_body.is_some();
    let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let mut wanted = vec![&INTERNAL_ERROR, &SERVICE_UNAVAILABLE];
    if limited {
        wanted.push(&TOO_MANY_REQUESTS);
    }
    if changes_state {
        wanted.push(&CROSS_ORIGIN_REFUSED);
    }
    if has_body {
        wanted.extend([&BAD_REQUEST, &PAYLOAD_TOO_LARGE, &UNSUPPORTED_MEDIA_TYPE]);
    }
    if has_body || has_params {
        wanted.push(&VALIDATION_ERROR);
    }
    for common in wanted {
        operation
            .responses
            .responses
            .entry(common.status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(common.name)));
    }
}

/// The document as committed: pretty JSON with a final newline.
pub fn to_json(doc: &Document) -> String {
    // Serializing plain data to a string cannot fail.
    let mut json = doc
        .to_pretty_json()
        .unwrap_or_else(|e| unreachable!("OpenAPI document serializes: {e}"));
    json.push('\n');
    json
}
