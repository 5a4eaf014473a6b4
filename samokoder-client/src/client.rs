//! [`Client`]: the connection to one server, its session, and the request machinery every
//! operation goes through (credentials, one refresh on 401, error decoding).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, COOKIE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use samokoder_core::api::auth::{AuthResponse, RefreshRequest};
use samokoder_core::api::{Health, Readiness};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{ApiError, Error};
use crate::operations::{self as ops, Access, Operation};
use crate::session::{Session, SessionCell, SessionListener};

/// How the client presents its session to the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// `Authorization: Bearer <access token>`; the refresh token goes in the refresh request's
    /// body. What programs should use.
    #[default]
    Bearer,
    /// The access token as the `access_token` cookie, as the web app sends it, and no
    /// `Authorization` header: for proxies that strip or reserve that header. The client
    /// reads the tokens from the answers' bodies (the server sends them in both places), so
    /// a saved [`Session`] restores the same way in both modes and no cookie jar is needed.
    Cookies,
}

/// Builds a [`Client`].
///
/// ```
/// use std::time::Duration;
/// use samokoder_client::{AuthMode, Client};
///
/// let client = Client::builder("https://samokoder.example.com")
///     .auth_mode(AuthMode::Bearer)
///     .timeout(Duration::from_secs(30))
///     .on_session_change(|session| {
///         // Save the rotated tokens here: the old refresh token no longer works.
///         println!("logged in: {}", session.is_some());
///     })
///     .build()?;
/// assert!(client.session().is_none());
/// # Ok::<(), samokoder_client::Error>(())
/// ```
pub struct ClientBuilder {
    base_url: String,
    mode: AuthMode,
    session: Option<Session>,
    listener: Option<SessionListener>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    read_timeout: Duration,
    user_agent: String,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// How the session is presented (default [`AuthMode::Bearer`]).
    pub fn auth_mode(mut self, mode: AuthMode) -> Self {
        self.mode = mode;
        self
    }

    /// Starts with a saved session (see [`Client::session`]).
    pub fn session(mut self, session: Session) -> Self {
        self.session = Some(session);
        self
    }

    /// Called with the new session whenever it changes: login, registration, refresh,
    /// password change, logout (`None`), or a refresh the server refused (`None`), in the
    /// order the changes were made. A program that keeps the session between runs must save
    /// it here, because the refresh token it had is spent once the client refreshes. The
    /// listener may read the client's session but must not change it.
    pub fn on_session_change(
        mut self,
        listener: impl Fn(Option<&Session>) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// A time limit for each whole request (none by default, so event streams and large
    /// downloads are not cut; the connection timeout still applies).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long to wait for a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a response may send nothing at all before the request fails (default 60 s).
    /// Event streams are not cut by it while the server sends its keep-alives (every 15 s by
    /// default), but a connection that silently died (a laptop asleep, a dropped NAT entry)
    /// is noticed and the stream reconnects.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// The `User-Agent` header (default `samokoder-client/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Uses a `reqwest::Client` configured elsewhere (proxies, custom roots). The timeouts and
    /// user agent of this builder are then not applied.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// The client. Fails when the base URL is not an absolute `http`/`https` URL.
    pub fn build(self) -> Result<Client, Error> {
        let base = base_url(&self.base_url)?;
        let http = match self.http {
            Some(http) => http,
            None => {
                let mut builder = reqwest::Client::builder()
                    .user_agent(self.user_agent)
                    .connect_timeout(self.connect_timeout)
                    .read_timeout(self.read_timeout)
                    // Redirects are not followed: a 307/308 would resend a body holding a
                    // password, a refresh token or a provider key to wherever it points. The
                    // API never redirects; a redirect is reported as an unexpected response.
                    .redirect(reqwest::redirect::Policy::none());
                if let Some(timeout) = self.timeout {
                    builder = builder.timeout(timeout);
                }
                builder.build()?
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                base,
                http,
                mode: self.mode,
                session: SessionCell::new(self.session, self.listener),
            }),
        })
    }
}

/// Parses the base URL and gives it a trailing slash, so paths join under any prefix it has
/// (`https://host/samokoder` serves `/v1/...` at `https://host/samokoder/v1/...`).
fn base_url(raw: &str) -> Result<Url, Error> {
    let mut url = Url::parse(raw.trim())?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::InvalidRequest(format!(
            "the server URL must be an http or https URL, not `{raw}`"
        )));
    }
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A client of one Samokoder server. Cheap to clone: clones share the connection pool and the
/// session, so a refresh made by one is used by all.
///
/// Operations are grouped by resource — [`auth`](Self::auth), [`projects`](Self::projects),
/// [`keys`](Self::keys), [`models`](Self::models), [`usage`](Self::usage),
/// [`user`](Self::user), [`notifications`](Self::notifications),
/// [`analytics`](Self::analytics), [`admin`](Self::admin) — each method named after what it
/// does; [`operations::OPERATIONS`](crate::operations::OPERATIONS) maps every API operation
/// to its method.
///
/// ```no_run
/// use samokoder_client::Client;
/// use samokoder_core::api::projects::ProjectCreateRequest;
///
/// # async fn demo() -> Result<(), samokoder_client::Error> {
/// let client = Client::new("http://127.0.0.1:8000")?;
/// client.auth().login("ada@example.com", "Correct-Horse-9").await?;
/// let project = client
///     .projects()
///     .create(&ProjectCreateRequest { name: "Todo app".into(), description: None })
///     .await?;
/// println!("created {}", project.id);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    base: Url,
    pub(crate) http: reqwest::Client,
    mode: AuthMode,
    pub(crate) session: SessionCell,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("mode", &self.inner.mode)
            .field("session", &self.inner.session.get())
            .finish()
    }
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8000`), with the default
    /// settings and no session.
    pub fn new(base_url: &str) -> Result<Self, Error> {
        Self::builder(base_url).build()
    }

    /// A builder for a client of the server at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            mode: AuthMode::default(),
            session: None,
            listener: None,
            timeout: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            user_agent: concat!("samokoder-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            http: None,
        }
    }

    /// The server's base URL (with a trailing slash).
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The current session, to save it (the tokens are inside; keep the copy private).
    pub fn session(&self) -> Option<Session> {
        self.inner.session.get()
    }

    /// Replaces the session, e.g. with one saved earlier; `None` forgets it (without telling
    /// the server: see [`Auth::logout`](crate::resources::Auth::logout) for that).
    pub fn set_session(&self, session: Option<Session>) {
        self.inner.session.set(session);
    }

    /// `GET /health`: whether the server is alive, and its version.
    pub async fn health(&self) -> Result<Health, Error> {
        self.call(&ops::HEALTH, &[]).send_json().await
    }

    /// `GET /health/ready`: whether the server can do useful work (database, queue, ...).
    /// Answers with the checks even when they fail (HTTP 503).
    pub async fn ready(&self) -> Result<Readiness, Error> {
        let response = self.call(&ops::READY, &[]).send().await?;
        let status = response.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // The body lists which check failed: more useful than a bare error.
            let headers = response.headers().clone();
            let bytes = response.bytes().await?;
            if let Ok(readiness) = serde_json::from_slice::<Readiness>(&bytes) {
                return Ok(readiness);
            }
            return Err(api_error(status, &headers, &bytes).into());
        }
        decode_json(ops::READY.operation_id, response).await
    }

    /// `GET /metrics`: the Prometheus text exposition, from a server without a scrape token
    /// (development); see [`Client::metrics_with_token`].
    pub async fn metrics(&self) -> Result<String, Error> {
        let response = self.call(&ops::METRICS, &[]).send().await?;
        Ok(success(response).await?.text().await?)
    }

    /// `GET /metrics` with the server's scrape token (`metrics.token`), sent as the bearer
    /// credential instead of any session token.
    pub async fn metrics_with_token(&self, scrape_token: &str) -> Result<String, Error> {
        let bearer = HeaderValue::try_from(format!("Bearer {scrape_token}"))
            .map_err(|_| Error::InvalidRequest("a scrape token is printable ASCII".into()))?;
        let response = self
            .call(&ops::METRICS, &[])
            .header("authorization", bearer)
            .send()
            .await?;
        Ok(success(response).await?.text().await?)
    }

    /// A request for `operation` with the path parameters filled in, in order.
    pub(crate) fn call(&self, operation: &'static Operation, params: &[&str]) -> Call {
        Call {
            client: self.clone(),
            operation,
            url: self.url_for(operation.path, params),
            body: Body::None,
            headers: HeaderMap::new(),
        }
    }

    /// The URL of a path template with its `{...}` parameters replaced, in order, each
    /// percent-encoded as one path segment (a model id may contain `/`) — except `{path}`, a
    /// file path, whose `/`s separate segments.
    pub(crate) fn url_for(&self, template: &str, params: &[&str]) -> Result<Url, Error> {
        let mut url = self.inner.base.clone();
        let mut params = params.iter();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| Error::InvalidRequest("the server URL cannot take a path".into()))?;
            segments.pop_if_empty();
            for segment in template.trim_start_matches('/').split('/') {
                if segment.starts_with('{') {
                    let value = params.next().ok_or_else(|| {
                        Error::InvalidRequest(format!("no value for {segment} in {template}"))
                    })?;
                    let parts: Vec<&str> = if segment == "{path}" {
                        // A file path spans segments (`src/app.js`); each is encoded alone.
                        value.split('/').filter(|part| !part.is_empty()).collect()
                    } else {
                        vec![value]
                    };
                    // URL path segments `.` and `..` are dropped or resolved, not sent: the
                    // request would silently name another resource.
                    if let Some(dots) = parts.iter().find(|part| matches!(**part, "." | "..")) {
                        return Err(Error::InvalidRequest(format!(
                            "`{dots}` cannot be a path segment of {segment} (got {value:?})"
                        )));
                    }
                    segments.extend(parts);
                } else {
                    segments.push(segment);
                }
            }
        }
        if params.next().is_some() {
            return Err(Error::InvalidRequest(format!(
                "too many path parameters for {template}"
            )));
        }
        Ok(url)
    }

    /// Exchanges the session's refresh token for a new pair, unless the session changed since
    /// `generation` (another request refreshed it already, or someone logged in or out): then
    /// the caller just retries with the current token. One refresh at a time, client-wide.
    pub(crate) async fn refresh_after(&self, generation: u64) -> Result<(), Error> {
        let _turn = self.inner.session.refresh_lock.lock().await;
        let snapshot = self.inner.session.snapshot();
        if snapshot.generation != generation {
            return Ok(());
        }
        let Some(refresh_token) = snapshot.refresh_token else {
            return Ok(());
        };
        match self.exchange_refresh_token(refresh_token, generation).await {
            Ok(_) => Ok(()),
            Err(error) => {
                if error.is_unauthorized() {
                    // The server ended the session (expired, revoked, or a reuse it detected):
                    // keeping it would only make every later call fail the same way.
                    self.inner.session.set_if(generation, None);
                }
                Err(error)
            }
        }
    }

    /// `POST /v1/auth/refresh` with `refresh_token`, storing the new pair unless the session
    /// moved on from `generation` (a login or logout during the exchange stands).
    pub(crate) async fn exchange_refresh_token(
        &self,
        refresh_token: String,
        generation: u64,
    ) -> Result<AuthResponse, Error> {
        // Sent without the 401 handling of other calls: a refresh that answers 401 is final.
        let response = self
            .call(&ops::REFRESH, &[])
            .json(&RefreshRequest {
                refresh_token: Some(refresh_token),
            })
            .send_once()
            .await?;
        let response: AuthResponse = decode_json(ops::REFRESH.operation_id, response).await?;
        self.inner
            .session
            .set_if(generation, Some(Session::from(&response)));
        Ok(response)
    }

    /// Stores the session a login, registration or password change answered with.
    pub(crate) fn start_session(&self, response: &AuthResponse) {
        self.inner.session.set(Some(Session::from(response)));
    }

    pub(crate) fn forget_session(&self) {
        self.inner.session.set(None);
    }
}

/// A request body that can be sent again for the retry after a refresh.
#[derive(Clone)]
enum Body {
    None,
    Json(Vec<u8>),
}

/// One request being prepared. Errors in preparing it (a bad path parameter, a body that
/// does not serialize) surface when it is sent.
pub(crate) struct Call {
    client: Client,
    operation: &'static Operation,
    url: Result<Url, Error>,
    body: Body,
    headers: HeaderMap,
}

impl Call {
    /// Adds the fields of a flat query struct (`None` fields are left out).
    pub(crate) fn query<Q: Serialize>(mut self, query: &Q) -> Self {
        if let Ok(url) = &mut self.url
            && let Err(error) = append_query(url, query)
        {
            self.url = Err(error);
        }
        self
    }

    /// Sends `body` as JSON.
    pub(crate) fn json<B: Serialize>(mut self, body: &B) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.body = Body::Json(bytes),
            Err(error) => {
                self.url = Err(Error::InvalidRequest(format!(
                    "cannot serialize the request body: {error}"
                )));
            }
        }
        self
    }

    fn request(&self, url: &Url, access_token: Option<&str>) -> reqwest::RequestBuilder {
        let client = &self.client.inner;
        let mut request = client
            .http
            .request(self.operation.method.clone(), url.clone())
            .headers(self.headers.clone());
        if self.operation.access != Access::Public
            && let Some(token) = access_token
        {
            request = match client.mode {
                AuthMode::Bearer => request.header(AUTHORIZATION, format!("Bearer {token}")),
                AuthMode::Cookies => request.header(COOKIE, format!("access_token={token}")),
            };
        }
        match &self.body {
            Body::None => request,
            Body::Json(bytes) => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
        }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Sends the request with the session's access token; on 401, refreshes once (or waits
    /// for the refresh another request is making) and sends it again. Returns the answer
    /// whatever its status.
    pub(crate) async fn send(self) -> Result<Response, Error> {
        let url = self.prepared_url()?;
        let session = &self.client.inner.session;
        let snapshot = session.snapshot();
        let response = self
            .request(&url, snapshot.access_token.as_deref())
            .send()
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED
            || self.operation.access != Access::Session
            || snapshot.refresh_token.is_none()
        {
            return Ok(response);
        }
        self.client.refresh_after(snapshot.generation).await?;
        let retry = session.snapshot();
        Ok(self
            .request(&url, retry.access_token.as_deref())
            .send()
            .await?)
    }

    /// Sends the request once with the current access token, whatever the answer.
    async fn send_once(self) -> Result<Response, Error> {
        let url = self.prepared_url()?;
        let token = self.client.inner.session.snapshot().access_token;
        Ok(self.request(&url, token.as_deref()).send().await?)
    }

    fn prepared_url(&self) -> Result<Url, Error> {
        match &self.url {
            Ok(url) => Ok(url.clone()),
            Err(error) => Err(clone_prepare_error(error)),
        }
    }

    /// Sends and decodes a JSON success body, or the error body.
    pub(crate) async fn send_json<T: DeserializeOwned>(self) -> Result<T, Error> {
        let id = self.operation.operation_id;
        decode_json(id, self.send().await?).await
    }

    /// Sends and expects a success without a body worth reading (204).
    pub(crate) async fn send_empty(self) -> Result<(), Error> {
        success(self.send().await?).await.map(drop)
    }
}

/// Errors of preparing a request are kept until it is sent; they are only ever these kinds.
fn clone_prepare_error(error: &Error) -> Error {
    match error {
        Error::InvalidUrl(error) => Error::InvalidUrl(*error),
        other => Error::InvalidRequest(other.to_string()),
    }
}

/// Appends the non-null fields of a flat struct as query parameters.
pub(crate) fn append_query<Q: Serialize>(url: &mut Url, query: &Q) -> Result<(), Error> {
    let value = serde_json::to_value(query)
        .map_err(|error| Error::InvalidRequest(format!("cannot serialize the query: {error}")))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(Error::InvalidRequest(
            "a query must serialize as a struct".into(),
        ));
    };
    let mut pairs = url.query_pairs_mut();
    for (name, value) in fields {
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(text) => text,
            serde_json::Value::Bool(flag) => flag.to_string(),
            serde_json::Value::Number(number) => number.to_string(),
            other => {
                return Err(Error::InvalidRequest(format!(
                    "query parameter `{name}` must be a scalar, not {other}"
                )));
            }
        };
        pairs.append_pair(&name, &text);
    }
    drop(pairs);
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(())
}

/// The response when its status is a success, else its error body as [`Error::Api`].
pub(crate) async fn success(response: Response) -> Result<Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let bytes = response.bytes().await?;
    Err(api_error(status, &headers, &bytes).into())
}

fn api_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    ApiError::from_parts(status, request_id, retry_after, body)
}

async fn decode_json<T: DeserializeOwned>(
    operation: &'static str,
    response: Response,
) -> Result<T, Error> {
    let response = success(response).await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
        operation,
        status,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_under_a_prefix_and_encode_parameters() {
        let client = Client::new("https://host.example/samokoder").unwrap();
        let url = client
            .url_for(
                "/v1/usage/token/provider/{provider}/model/{model}",
                &["openrouter", "meta/llama 3"],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://host.example/samokoder/v1/usage/token/provider/openrouter/model/meta%2Fllama%203"
        );
        let root = Client::new("http://127.0.0.1:8000/").unwrap();
        assert_eq!(
            root.url_for("/health", &[]).unwrap().as_str(),
            "http://127.0.0.1:8000/health"
        );
        assert_eq!(
            root.url_for(
                "/v1/projects/{project_id}/files/{path}",
                &["p", "src/a b.js"]
            )
            .unwrap()
            .path(),
            "/v1/projects/p/files/src/a%20b.js"
        );
        assert!(root.url_for("/v1/projects/{project_id}", &[]).is_err());
        assert!(root.url_for("/health", &["extra"]).is_err());
        // Dot segments would name another resource once the URL is normalised.
        for (template, value) in [
            (
                "/v1/projects/{project_id}/files/{path}",
                "src/../package.json",
            ),
            ("/v1/projects/{project_id}/files/{path}", "./a.js"),
            ("/v1/keys/{provider}", ".."),
        ] {
            let params: &[&str] = if template.contains("{path}") {
                &["p", value]
            } else {
                &[value]
            };
            assert!(
                matches!(
                    root.url_for(template, params),
                    Err(Error::InvalidRequest(_))
                ),
                "{value}"
            );
        }
        // Dots inside a name are fine.
        assert!(
            root.url_for(
                "/v1/projects/{project_id}/files/{path}",
                &["p", ".env.example"]
            )
            .is_ok()
        );
    }

    #[test]
    fn refuses_urls_that_are_not_http() {
        assert!(Client::new("ftp://host").is_err());
        assert!(Client::new("not a url").is_err());
        assert!(Client::new("mailto:a@b.c").is_err());
    }

    #[test]
    fn queries_leave_out_absent_fields_and_refuse_nested_ones() {
        #[derive(Serialize)]
        struct Q {
            limit: Option<u32>,
            cursor: Option<String>,
            archived: bool,
        }
        let mut url = Url::parse("http://h/v1/projects").unwrap();
        append_query(
            &mut url,
            &Q {
                limit: Some(5),
                cursor: None,
                archived: true,
            },
        )
        .unwrap();
        // Field order is not kept (serde_json sorts object keys); servers do not care.
        assert_eq!(url.query(), Some("archived=true&limit=5"));

        #[derive(Serialize)]
        struct Empty {
            cursor: Option<String>,
        }
        let mut url = Url::parse("http://h/x").unwrap();
        append_query(&mut url, &Empty { cursor: None }).unwrap();
        assert_eq!(url.as_str(), "http://h/x");

        let mut url = Url::parse("http://h/x").unwrap();
        assert!(append_query(&mut url, &serde_json::json!({"a": [1]})).is_err());
    }
}
