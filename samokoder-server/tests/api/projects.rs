//! `/v1/projects/*` over a real socket: CRUD, paging and filters, archive, ownership (404 for
//! someone else's), validation, and the plan's project quota (402).

use reqwest::{Method, StatusCode};
use samokoder_store::Tier;
use serde_json::{Value, json};

use crate::app::{Session, TestApp, send};

async fn create(app: &TestApp, session: &Session, name: &str) -> Value {
    let reply = send(
        app.as_user(Method::POST, "/v1/projects", session)
            .json(&json!({"name": name, "description": "A todo app"})),
    )
    .await;
    reply.ok(StatusCode::CREATED)["project"].clone()
}

async fn upgrade(app: &TestApp, session: &Session, tier: Tier) {
    app.state
        .store()
        .users
        .set_tier(session.user_id, tier)
        .await
        .unwrap();
}

#[tokio::test]
async fn crud_and_archive() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    // Any words are fine in a name (the original refused SQL keywords).
    let project = create(&app, &owner, "  Drop Table Planner ").await;
    assert_eq!(project["name"], "Drop Table Planner");
    assert_eq!(project["description"], "A todo app");
    assert_eq!(project["user_id"], owner.user_id.to_string());
    assert_eq!(project["archived"], false);
    let id = project["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/projects/{id}");

    let got = send(app.as_user(Method::GET, &path, &owner)).await;
    assert_eq!(got.ok(StatusCode::OK)["project"]["id"], id.as_str());

    // PUT: partial, as in the original.
    let put = send(
        app.as_user(Method::PUT, &path, &owner)
            .json(&json!({"name": "Planner"})),
    )
    .await;
    let put = put.ok(StatusCode::OK)["project"].clone();
    assert_eq!(put["name"], "Planner");
    assert_eq!(put["description"], "A todo app", "untouched");
    // PATCH: null clears the description.
    let patched = send(
        app.as_user(Method::PATCH, &path, &owner)
            .json(&json!({"description": null})),
    )
    .await;
    let patched = patched.ok(StatusCode::OK)["project"].clone();
    assert_eq!(patched["description"], Value::Null);
    assert_eq!(patched["name"], "Planner");
    send(app.as_user(Method::PUT, &path, &owner).json(&json!({})))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "no_update");

    let archived = send(app.as_user(Method::POST, &format!("{path}/archive"), &owner)).await;
    assert_eq!(archived.ok(StatusCode::OK)["project"]["archived"], true);
    let listed = send(app.as_user(Method::GET, "/v1/projects", &owner)).await;
    assert_eq!(
        listed.ok(StatusCode::OK)["projects"],
        json!([]),
        "hidden by default"
    );
    let all = send(app.as_user(Method::GET, "/v1/projects?archived=true", &owner)).await;
    assert_eq!(all.ok(StatusCode::OK)["projects"][0]["id"], id.as_str());
    let back = send(app.as_user(Method::POST, &format!("{path}/unarchive"), &owner)).await;
    assert_eq!(back.ok(StatusCode::OK)["project"]["archived"], false);

    let deleted = send(app.as_user(Method::DELETE, &path, &owner)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.text.is_empty());
    send(app.as_user(Method::GET, &path, &owner))
        .await
        .assert_error(StatusCode::NOT_FOUND, "project_not_found");
    // The trailing-slash form of the original works too.
    let slash = send(app.as_user(Method::GET, "/v1/projects/", &owner)).await;
    slash.ok(StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn someone_elses_project_is_not_found_never_forbidden() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let stranger = app.user().await;
    let id = create(&app, &owner, "Mine").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/projects/{id}");
    let attempts = [
        app.as_user(Method::GET, &path, &stranger),
        app.as_user(Method::PUT, &path, &stranger)
            .json(&json!({"name": "Theirs"})),
        app.as_user(Method::PATCH, &path, &stranger)
            .json(&json!({"name": "Theirs"})),
        app.as_user(Method::DELETE, &path, &stranger),
        app.as_user(Method::POST, &format!("{path}/archive"), &stranger),
        app.as_user(Method::POST, &format!("{path}/unarchive"), &stranger),
    ];
    for attempt in attempts {
        let reply = send(attempt).await;
        let body = reply.assert_error(StatusCode::NOT_FOUND, "project_not_found");
        assert_eq!(body["detail"], "Project not found");
    }
    // A project that does not exist looks the same.
    let missing = format!("/v1/projects/{}", uuid::Uuid::new_v4());
    send(app.as_user(Method::GET, &missing, &stranger))
        .await
        .assert_error(StatusCode::NOT_FOUND, "project_not_found");
    // The stranger's list does not show it; the owner's project is intact.
    let theirs = send(app.as_user(Method::GET, "/v1/projects", &stranger)).await;
    assert_eq!(theirs.ok(StatusCode::OK)["total"], 0);
    let mine = send(app.as_user(Method::GET, &path, &owner)).await;
    assert_eq!(mine.ok(StatusCode::OK)["project"]["name"], "Mine");
    app.stop().await;
}

#[tokio::test]
async fn listing_pages_newest_first_and_filters_by_name() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    upgrade(&app, &owner, Tier::Team).await;
    for name in [
        "Alpha shop",
        "Beta blog",
        "Gamma shop",
        "Delta wiki",
        "Эпсилон Shop",
    ] {
        create(&app, &owner, name).await;
    }
    let first = send(app.as_user(Method::GET, "/v1/projects?limit=2", &owner)).await;
    let first = first.ok(StatusCode::OK);
    let names = |page: &Value| -> Vec<String> {
        page["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first), ["Эпсилон Shop", "Delta wiki"]);
    assert_eq!(first["total"], 5);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = send(app.as_user(
        Method::GET,
        &format!("/v1/projects?limit=2&cursor={cursor}"),
        &owner,
    ))
    .await;
    let second = second.ok(StatusCode::OK);
    assert_eq!(names(&second), ["Gamma shop", "Beta blog"]);
    let shops = send(app.as_user(Method::GET, "/v1/projects?q=SHOP", &owner)).await;
    assert_eq!(
        names(&shops.ok(StatusCode::OK)),
        ["Эпсилон Shop", "Gamma shop", "Alpha shop"]
    );

    for (query, field) in [
        ("limit=0", "query.limit"),
        ("limit=101", "query.limit"),
        ("cursor=zzz", "query.cursor"),
        ("limit=abc", "query.limit"),
    ] {
        let reply = send(app.as_user(Method::GET, &format!("/v1/projects?{query}"), &owner)).await;
        let body = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn names_and_descriptions_are_validated() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    for (body, field, code) in [
        (json!({"name": "   "}), "name", "blank"),
        (json!({"name": "x".repeat(101)}), "name", "too_long"),
        (json!({"name": "bell\u{7}"}), "name", "control_characters"),
        (
            json!({"name": "ok", "description": "d".repeat(1001)}),
            "description",
            "too_long",
        ),
        (
            json!({"name": "ok", "description": "nul\u{0}"}),
            "description",
            "control_characters",
        ),
    ] {
        let reply = send(
            app.as_user(Method::POST, "/v1/projects", &owner)
                .json(&body),
        )
        .await;
        let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
        assert_eq!(error["errors"][0]["field"], field, "{body}");
        assert_eq!(error["errors"][0]["code"], code, "{body}");
    }
    send(
        app.as_user(Method::POST, "/v1/projects", &owner)
            .json(&json!({"description": "no name"})),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    send(app.as_user(Method::GET, "/v1/projects/not-a-uuid", &owner))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
    app.stop().await;
}

#[tokio::test]
async fn the_plan_limits_projects_per_month_and_in_total() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    create(&app, &owner, "One").await;
    let second = create(&app, &owner, "Two").await;
    // Free: 2 a month.
    let refused = send(
        app.as_user(Method::POST, "/v1/projects", &owner)
            .json(&json!({"name": "Three"})),
    )
    .await;
    let body = refused.assert_error(StatusCode::PAYMENT_REQUIRED, "quota_exceeded");
    assert_eq!(
        body["detail"],
        "Monthly project limit reached (2 projects). Upgrade to starter for more projects."
    );
    // Deleting one frees its place, as in the original (counts are of existing projects).
    let id = second["id"].as_str().unwrap();
    send(app.as_user(Method::DELETE, &format!("/v1/projects/{id}"), &owner)).await;
    create(&app, &owner, "Three").await;

    // Starter: ten a month (projects made directly in the store count like any other).
    let other = app.user().await;
    upgrade(&app, &other, Tier::Starter).await;
    for i in 0..10 {
        app.state
            .store()
            .projects
            .create(&samokoder_store::NewProject {
                owner_id: other.user_id,
                name: format!("Old {i}"),
                description: None,
            })
            .await
            .unwrap();
    }
    let refused = send(
        app.as_user(Method::POST, "/v1/projects", &other)
            .json(&json!({"name": "One more"})),
    )
    .await;
    let body = refused.assert_error(StatusCode::PAYMENT_REQUIRED, "quota_exceeded");
    assert_eq!(
        body["detail"],
        "Monthly project limit reached (10 projects). Upgrade to pro for more projects."
    );
    // Team has no limits.
    upgrade(&app, &other, Tier::Team).await;
    create(&app, &other, "Unlimited").await;
    app.stop().await;
}

#[tokio::test]
async fn every_project_route_needs_authentication() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4();
    for (method, path) in [
        (Method::POST, "/v1/projects".to_owned()),
        (Method::GET, "/v1/projects".to_owned()),
        (Method::GET, format!("/v1/projects/{id}")),
        (Method::PUT, format!("/v1/projects/{id}")),
        (Method::PATCH, format!("/v1/projects/{id}")),
        (Method::DELETE, format!("/v1/projects/{id}")),
        (Method::POST, format!("/v1/projects/{id}/archive")),
        (Method::POST, format!("/v1/projects/{id}/unarchive")),
    ] {
        let reply = send(
            app.request(method.clone(), &path)
                .json(&json!({"name": "x"})),
        )
        .await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "not_authenticated");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer"),
            "{method} {path}"
        );
    }
    app.stop().await;
}
