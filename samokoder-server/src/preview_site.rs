//! The preview listener: serves each running preview to its owner on the preview origin
//! (`{id}.<suffix>`, one host per project) and nothing else — never the API.
//!
//! An owner enters with a single-use ticket (`POST /v1/projects/{id}/preview/open` returns
//! the link): `GET /__samokoder/enter?ticket=...` checks it and sets a cookie on the preview's
//! own host, sealed by the server and bound to this run of the preview, then redirects to `/`.
//! Every other request needs that cookie and goes to the app through its jail's bridge, with
//! the cookie taken out; the API's cookies belong to another host and never arrive here, so a
//! preview's script cannot act as its owner on the API.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use cookie::{Cookie, SameSite};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::generation::preview::ForwardError;
use crate::generation::ticket::{self, TicketKind};
use crate::state::AppState;

/// Where a ticket is exchanged for the cookie.
pub const ENTER_PATH: &str = "/__samokoder/enter";

/// The cookie that lets an owner's browser into a preview.
pub const COOKIE: &str = "samokoder_preview";

/// Bound into the cookie's ciphertext.
const ASSOCIATED_DATA: &[u8] = b"samokoder:preview-session:v1";

/// The preview listener's router.
pub fn router(state: AppState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

#[derive(Debug, Serialize, Deserialize)]
struct Session {
    sub: Uuid,
    project: Uuid,
    instance: Uuid,
    exp: i64,
}

fn page(status: StatusCode, text: &str) -> Response {
    let mut response = (status, format!("{text}\n")).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn host_of(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
}

async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let previews = state.generation().previews();
    let Some(origin) = previews.origin() else {
        return page(StatusCode::NOT_FOUND, "Previews are not served here.");
    };
    let Some(project) = host_of(&request).and_then(|host| origin.project(host)) else {
        return page(StatusCode::NOT_FOUND, "No such preview.");
    };
    if request.uri().path() == ENTER_PATH {
        let ticket = request
            .uri()
            .query()
            .and_then(|query| url_query_value(query, "ticket"));
        return enter(&state, project, ticket).await;
    }
    let Some(session) = session_of(&state, &request, project) else {
        return page(
            StatusCode::UNAUTHORIZED,
            "Open this preview from Samokoder: its link lets you in once, for a minute.",
        );
    };
    let request = without_our_cookie(request);
    match previews.forward(project, session.instance, request).await {
        Ok(response) => without_our_set_cookie(response),
        Err(ForwardError::NotRunning) => page(
            StatusCode::GONE,
            "This preview has stopped (or was restarted): open it from Samokoder again.",
        ),
        Err(ForwardError::Unreachable(why)) => {
            tracing::info!(%project, %why, "a preview did not answer");
            page(
                StatusCode::BAD_GATEWAY,
                "The app does not answer: it may still be starting, or it stopped listening. Its output is in the preview's status.",
            )
        }
    }
}

/// Exchanges a ticket for the preview cookie.
async fn enter(state: &AppState, project: Uuid, ticket: Option<String>) -> Response {
    let Some(ticket) = ticket else {
        return page(StatusCode::BAD_REQUEST, "This link has no ticket.");
    };
    let user = match ticket::redeem(state, TicketKind::Preview, &ticket, project).await {
        Ok(user) => user,
        Err(_) => {
            return page(
                StatusCode::UNAUTHORIZED,
                "This preview link is used or expired: open the preview from Samokoder again.",
            );
        }
    };
    let previews = state.generation().previews();
    let live = match previews.live(project) {
        Some(live) if live.user_id == user => live,
        _ => {
            return page(
                StatusCode::GONE,
                "This preview is not running: start it from Samokoder.",
            );
        }
    };
    let session = Session {
        sub: user,
        project,
        instance: live.instance,
        exp: live.ends_at.timestamp(),
    };
    let sealed = match serde_json::to_vec(&session)
        .map_err(|e| e.to_string())
        .and_then(|json| {
            state
                .auth()
                .secret_box
                .seal(&json, ASSOCIATED_DATA)
                .map_err(|e| e.to_string())
        }) {
        Ok(sealed) => sealed,
        Err(why) => {
            tracing::error!(%why, "could not seal a preview cookie");
            return page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.");
        }
    };
    let max_age = (live.ends_at - Utc::now()).num_seconds().max(0);
    let secure = previews.origin().is_some_and(|o| o.is_secure());
    let cookie = Cookie::build((COOKIE, sealed))
        .path("/")
        .http_only(true)
        // Lax: the owner arrives by a top-level navigation from the console, another site.
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        headers.insert(header::SET_COOKIE, value);
    }
    response
}

/// The value of `name` in a query string, percent-decoded.
fn url_query_value(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// The request's preview session for `project`, when its cookie opens, is for that project
/// and has not expired.
fn session_of(state: &AppState, request: &Request, project: Uuid) -> Option<Session> {
    let sealed = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)?
        .value()
        .to_owned();
    let opened = state
        .auth()
        .secret_box
        .open(&sealed, ASSOCIATED_DATA)
        .ok()?;
    let session: Session = serde_json::from_slice(&opened).ok()?;
    let expires = DateTime::from_timestamp(session.exp, 0)?;
    (session.project == project && expires > Utc::now()).then_some(session)
}

/// The request as the app gets it: without the preview cookie (the app's own cookies stay).
fn without_our_cookie(mut request: Request) -> Request {
    let kept: Vec<String> = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(COOKIE))
        .map(str::to_owned)
        .collect();
    let headers = request.headers_mut();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, value);
    }
    request
}

/// The app's response without any attempt to set (or clear) the preview cookie.
fn without_our_set_cookie(mut response: Response) -> Response {
    let kept: Vec<HeaderValue> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            v.to_str()
                .ok()
                .and_then(|s| Cookie::parse(s).ok())
                .is_none_or(|c| c.name() != COOKIE)
        })
        .cloned()
        .collect();
    let headers = response.headers_mut();
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_cookie_never_reaches_the_app() {
        let request = Request::builder()
            .header(header::COOKIE, "theme=dark; samokoder_preview=abc")
            .header(header::COOKIE, "app_session=1")
            .body(Body::empty())
            .unwrap();
        let request = without_our_cookie(request);
        assert_eq!(
            request.headers()[header::COOKIE],
            "theme=dark; app_session=1"
        );
        let only_ours = Request::builder()
            .header(header::COOKIE, "samokoder_preview=abc")
            .body(Body::empty())
            .unwrap();
        assert!(
            without_our_cookie(only_ours)
                .headers()
                .get(header::COOKIE)
                .is_none()
        );
    }

    #[test]
    fn the_app_cannot_set_the_preview_cookie() {
        let mut response = Response::new(Body::empty());
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static("samokoder_preview=x; Path=/"),
        );
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static("sid=1; HttpOnly"),
        );
        let response = without_our_set_cookie(response);
        let set: Vec<_> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .collect();
        assert_eq!(set, ["sid=1; HttpOnly"]);
    }

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(
            url_query_value("a=1&ticket=x%2By", "ticket"),
            Some("x+y".into())
        );
        assert_eq!(url_query_value("a=1", "ticket"), None);
    }
}
