//! The OpenAPI document: committed, served, documented security and errors; the docs page.

use http::StatusCode;

use crate::helpers;

const REGENERATE: &str = "cargo run -p samokoder-server -- openapi > samokoder-server/openapi.json";

#[test]
fn committed_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let generated = samokoder_server::openapi::to_json(&samokoder_server::openapi());
    let committed = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {path} ({e}); create it with `{REGENERATE}`"));
    if committed != generated {
        let (line, (want, have)) = generated
            .lines()
            .zip(committed.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map_or(
                (
                    generated.lines().count().min(committed.lines().count()),
                    ("(end)", "(end)"),
                ),
                |(i, pair)| (i, pair),
            );
        panic!(
            "samokoder-server/openapi.json is out of date with the code (first difference at line {}:\n  code: {want}\n  file: {have}).\nRegenerate it with:\n  {REGENERATE}",
            line + 1
        );
    }
}

#[test]
fn document_describes_security_and_errors() {
    let doc = serde_json::to_value(samokoder_server::openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    assert_eq!(schemes["cookie"]["in"], "cookie");
    assert_eq!(schemes["cookie"]["name"], "access_token");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(
        doc["components"]["responses"]["TooManyRequests"]["headers"]["Retry-After"].is_object()
    );
    let health = &doc["paths"]["/health"]["get"]["responses"];
    assert_eq!(
        health["500"]["$ref"],
        "#/components/responses/InternalError"
    );
    assert!(doc["paths"]["/health/ready"]["get"].is_object());
    assert!(doc["paths"]["/metrics"]["get"].is_object());
}

#[tokio::test]
async fn served_document_and_docs_page_work_offline() {
    let (_dir, config) = helpers::config();
    let router = samokoder_server::router(helpers::state(config).await);

    let served = helpers::get_path(&router, "/openapi.json").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(
        served.json(),
        serde_json::to_value(samokoder_server::openapi()).unwrap()
    );

    // The bare path leads to the page with a relative redirect (so a prefix is kept).
    let bare = helpers::get_path(&router, "/docs").await;
    assert!(bare.status.is_redirection());
    assert_eq!(bare.header("location"), Some("docs/"));

    let page = helpers::get_path(&router, "/docs/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("swagger-ui"), "{}", page.text());
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    helpers::assert_security_headers(&page.headers);

    // Assets ship in the binary; the initializer points at the document relatively.
    for asset in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"] {
        let answer = helpers::get_path(&router, asset).await;
        assert_eq!(answer.status, StatusCode::OK, "{asset}");
        assert!(answer.body.len() > 1000, "{asset}");
    }
    let init = helpers::get_path(&router, "/docs/swagger-initializer.js")
        .await
        .text();
    assert!(init.contains("../openapi.json"), "{init}");
    assert_eq!(
        helpers::get_path(&router, "/docs/nothing.js").await.status,
        StatusCode::NOT_FOUND
    );
}
