//! `GET /openapi.json` and the Swagger UI at `/docs/`, which ships inside the binary and
//! works without internet access.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use utoipa_swagger_ui::Config as SwaggerConfig;

use crate::error::ApiError;
use crate::state::AppState;

/// The routes serving `document` (already rendered as JSON) and the docs page.
///
/// Every link is relative (`docs/`, `../openapi.json`), so the page also works when an embedder
/// mounts the router under a prefix.
pub(crate) fn router(document: String) -> Router<AppState> {
    let document = Arc::new(document);
    let swagger = Arc::new(SwaggerConfig::new(["../openapi.json"]));
    let index = swagger.clone();
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { ([(CONTENT_TYPE, "application/json")], document.to_string()) }
            }),
        )
        // The page's assets are relative to `/docs/`, so `/docs` must lead there. A relative
        // target keeps any prefix a proxy or an embedder put in front.
        .route("/docs", get(|| async { Redirect::permanent("docs/") }))
        .route("/docs/", get(move || serve(String::new(), index.clone())))
        .route(
            "/docs/{*file}",
            get(move |Path(file): Path<String>| serve(file, swagger.clone())),
        )
}

/// One file of the Swagger UI.
async fn serve(file: String, config: Arc<SwaggerConfig<'static>>) -> Response {
    match utoipa_swagger_ui::serve(&file, config) {
        Ok(Some(file)) => {
            let mut response =
                ([(CONTENT_TYPE, file.content_type)], file.bytes.into_owned()).into_response();
            if file.gzpipped {
                response
                    .headers_mut()
                    .insert(CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(None) => ApiError::not_found("Not found").into_response(),
        Err(error) => ApiError::internal(error.to_string()).into_response(),
    }
}
