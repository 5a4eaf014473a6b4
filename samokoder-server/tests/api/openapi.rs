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
    assert_eq!(schemes["metrics_token"]["scheme"], "bearer");
    assert_eq!(
        doc["paths"]["/v1/auth/logout-all"]["post"]["responses"]["403"]["$ref"],
        "#/components/responses/CrossOriginRefused"
    );
    assert!(
        doc["paths"]["/v1/auth/me"]["get"]["responses"]["403"].is_null(),
        "reads are never refused for their origin"
    );
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

/// Every /v1 operation is documented: summary, description, responses with descriptions, the
/// security it needs and the errors it can give.
#[test]
fn every_operation_is_fully_documented() {
    let doc = serde_json::to_value(samokoder_server::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths.iter().filter(|(path, _)| path.starts_with("/v1")) {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let name = format!("{} {path}", method.to_uppercase());
            for field in ["summary", "description", "operationId"] {
                assert!(
                    operation[field].as_str().is_some_and(|s| !s.is_empty()),
                    "{name}: no {field}"
                );
            }
            let responses = operation["responses"].as_object().unwrap();
            // A WebSocket route succeeds by switching protocols.
            assert!(
                responses.keys().any(|s| s.starts_with('2') || s == "101"),
                "{name}: no success"
            );
            for status in ["429", "500", "503"] {
                assert!(responses.contains_key(status), "{name}: no {status}");
            }
            for (status, response) in responses {
                if response.get("$ref").is_none() {
                    assert!(
                        response["description"]
                            .as_str()
                            .is_some_and(|d| !d.is_empty()),
                        "{name} {status}: no description"
                    );
                }
            }
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            if secured {
                assert!(
                    responses.contains_key("401"),
                    "{name}: secured without a 401"
                );
                let schemes: Vec<&str> = operation["security"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|s| s.as_object().unwrap().keys().map(String::as_str))
                    .collect();
                assert_eq!(schemes, ["bearer", "cookie"], "{name}");
            }
            if operation.get("requestBody").is_some() {
                assert!(
                    responses.contains_key("422"),
                    "{name}: a body without a 422"
                );
            }
        }
    }
    // Spot checks of the contract.
    for (method, path) in [
        ("post", "/v1/auth/register"),
        ("post", "/v1/auth/login"),
        ("post", "/v1/auth/refresh"),
        ("post", "/v1/auth/logout"),
        ("post", "/v1/auth/logout-all"),
        ("get", "/v1/auth/me"),
        ("post", "/v1/auth/change-password"),
        ("post", "/v1/projects"),
        ("get", "/v1/projects"),
        ("get", "/v1/projects/{project_id}"),
        ("put", "/v1/projects/{project_id}"),
        ("patch", "/v1/projects/{project_id}"),
        ("delete", "/v1/projects/{project_id}"),
        ("post", "/v1/projects/{project_id}/archive"),
        ("post", "/v1/projects/{project_id}/unarchive"),
        ("post", "/v1/keys"),
        ("get", "/v1/keys"),
        ("delete", "/v1/keys/{provider}"),
        ("put", "/v1/keys/{provider}/settings"),
        ("get", "/v1/keys/{provider}/usage"),
        ("get", "/v1/keys/usage"),
        ("get", "/v1/models"),
        ("get", "/v1/models/{provider}"),
        ("get", "/v1/usage/token"),
        ("get", "/v1/usage/token/provider/{provider}"),
        ("get", "/v1/usage/token/provider/{provider}/model/{model}"),
        ("get", "/v1/usage/token/summary"),
        ("get", "/v1/usage/token/periods"),
        ("get", "/v1/user/profile"),
        ("get", "/v1/user/tier"),
        ("post", "/v1/user/github-token"),
        ("post", "/v1/user/gitverse-token"),
        ("get", "/v1/notifications"),
        ("post", "/v1/notifications/{notification_id}/read"),
        ("post", "/v1/notifications/read-all"),
        ("delete", "/v1/notifications/{notification_id}"),
        ("post", "/v1/notifications/test"),
        ("post", "/v1/analytics/record"),
        ("get", "/v1/analytics/user"),
        ("get", "/v1/analytics/user/actions"),
        ("get", "/v1/analytics/system"),
        ("get", "/v1/analytics/export"),
        ("put", "/v1/admin/users/{user_id}/tier"),
        ("post", "/v1/projects/{project_id}/runs"),
        ("get", "/v1/projects/{project_id}/runs"),
        ("get", "/v1/projects/{project_id}/runs/{run_id}"),
        ("post", "/v1/projects/{project_id}/runs/{run_id}/cancel"),
        ("post", "/v1/projects/{project_id}/runs/{run_id}/resume"),
        ("get", "/v1/projects/{project_id}/runs/{run_id}/events"),
        ("get", "/v1/projects/{project_id}/runs/{run_id}/questions"),
        (
            "post",
            "/v1/projects/{project_id}/runs/{run_id}/questions/{question_id}/answer",
        ),
        ("get", "/v1/projects/{project_id}/files"),
        ("get", "/v1/projects/{project_id}/files/{path}"),
        ("get", "/v1/projects/{project_id}/states"),
        (
            "post",
            "/v1/projects/{project_id}/states/{state_id}/rollback",
        ),
        ("get", "/v1/projects/{project_id}/export"),
        ("get", "/v1/projects/{project_id}/archive"),
        ("post", "/v1/projects/{project_id}/preview/start"),
        ("post", "/v1/projects/{project_id}/preview/stop"),
        ("get", "/v1/projects/{project_id}/preview/status"),
        ("post", "/v1/projects/{project_id}/preview/open"),
        ("post", "/v1/workspace/token"),
        ("get", "/v1/ws/{project_id}"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    assert_eq!(operations, 63);
    // Streams and archives say what they are.
    let events = &doc["paths"]["/v1/projects/{project_id}/runs/{run_id}/events"]["get"];
    assert!(events["responses"]["200"]["content"]["text/event-stream"].is_object());
    let export = &doc["paths"]["/v1/projects/{project_id}/export"]["get"];
    assert!(export["responses"]["200"]["content"]["application/zip"].is_object());
    let socket = &doc["paths"]["/v1/ws/{project_id}"]["get"];
    assert!(socket["responses"]["101"].is_object());
    for schema in ["RunEvent", "WsServerFrame", "WsClientFrame"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    let projects = &doc["paths"]["/v1/projects"]["post"]["responses"];
    assert!(projects["402"].is_object(), "quota documented");
    let system = &doc["paths"]["/v1/analytics/system"]["get"]["responses"];
    assert!(system["403"].is_object(), "admin_required documented");
    assert!(
        doc["paths"]["/v1/models"]["get"]["security"].is_null(),
        "public"
    );
}
