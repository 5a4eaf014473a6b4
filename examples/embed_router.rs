//! The Samokoder API inside someone else's axum application.
//!
//! The host app has its own state and routes. It mounts the whole Samokoder router (routes,
//! docs and Samokoder's own middleware: request ids, security headers, rate limits, ...) under
//! `/samokoder`, keeps Samokoder's [`AppState`] in its own state so its routes can use the same
//! store, and wraps everything, Samokoder included, in a layer of its own that stamps every
//! response with `x-host-app`.
//!
//! It then talks to itself over HTTP: registers a user and reads `/me` under the prefix, and
//! asks the host's own route how many accounts Samokoder has. Run it with
//! `cargo run --example embed_router`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::get;
use samokoder::server::config::{Config, Environment};
use samokoder::server::{AppState, Secrets};
use serde_json::json;

/// The host application's state, holding Samokoder's next to its own.
#[derive(Clone)]
struct HostState {
    /// The embedded Samokoder: its store, auth services and configuration.
    samokoder: AppState,
    /// Something of the host's own.
    site_name: &'static str,
}

/// A host route that reads Samokoder's store.
async fn stats(State(state): State<HostState>) -> Result<String, String> {
    let accounts = state
        .samokoder
        .store()
        .users
        .count()
        .await
        .map_err(|error| format!("cannot count accounts: {error}"))?;
    Ok(format!(
        "{}: {accounts} Samokoder account(s)",
        state.site_name
    ))
}

/// The host's middleware: runs for its own routes and for everything under `/samokoder`.
async fn stamp(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("x-host-app", HeaderValue::from_static("embed-example"));
    response
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Samokoder keeps its SQLite database in a throw-away directory here; keys live in memory.
    let data = tempfile::tempdir()?;
    let config = Config {
        env: Environment::Development,
        data_dir: data.path().to_path_buf(),
        ..Config::default()
    };
    let samokoder = AppState::builder(config, Secrets::generate())
        .build()
        .await?;
    let host = HostState {
        samokoder: samokoder.clone(),
        site_name: "Example Host",
    };

    let app = Router::new()
        .route("/host/stats", get(stats))
        .with_state(host)
        .nest_service("/samokoder", samokoder::server::router(samokoder))
        .layer(axum::middleware::map_response(stamp));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    // Connection info lets Samokoder see client addresses (rate limits, lockout, audit).
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let client = reqwest::Client::new();
    let registered = client
        .post(format!("{base}/samokoder/v1/auth/register"))
        .json(&json!({"email": "host-user@example.com", "password": "Correct-Horse-7-Battery"}))
        .send()
        .await?;
    let status = registered.status();
    let stamped = registered.headers().get("x-host-app").cloned();
    let body: serde_json::Value = registered.json().await?;
    println!("POST /samokoder/v1/auth/register -> {status}, x-host-app: {stamped:?}");
    println!("  user_id {} ({})", body["user_id"], body["email"]);
    let token = body["access_token"]
        .as_str()
        .ok_or("the registration returned no access token")?;

    let me = client
        .get(format!("{base}/samokoder/v1/auth/me"))
        .bearer_auth(token)
        .send()
        .await?;
    let me_status = me.status();
    let me_stamped = me.headers().get("x-host-app").cloned();
    let me_body: serde_json::Value = me.json().await?;
    println!("GET /samokoder/v1/auth/me -> {me_status}, x-host-app: {me_stamped:?}");
    println!("  {me_body}");

    let stats = client.get(format!("{base}/host/stats")).send().await?;
    let stats_status = stats.status();
    let stats_text = stats.text().await?;
    println!("GET /host/stats -> {stats_status}: {stats_text}");

    server.abort();
    let ok = status == reqwest::StatusCode::CREATED
        && me_status == reqwest::StatusCode::OK
        && stats_status == reqwest::StatusCode::OK
        && stamped.is_some()
        && me_stamped.is_some()
        && me_body["email"] == "host-user@example.com"
        && stats_text.ends_with("1 Samokoder account(s)");
    if ok {
        Ok(())
    } else {
        Err("the embedded API did not answer as expected".into())
    }
}
