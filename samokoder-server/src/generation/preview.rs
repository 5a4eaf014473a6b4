//! Previews: the generated app's own start command (its starter template's), run by the
//! sandboxed runner, stopped after an idle time or a maximum lifetime.
//!
//! The runner builds the app's environment from scratch (`PATH`, `HOME`, `PORT`, `HOST`, ...),
//! never from the server's, and applies its command policy: a preview can never see a server
//! secret or run outside the sandbox's rules. In the jail a preview has a network namespace of
//! its own, like every command: it listens on no host port and cannot reach the host's
//! loopback (its database, Redis, this server). This process reaches it through the jail's
//! ingress bridge, a Unix socket only it can open ([`PreviewManager::forward`]). Previews live
//! in the server process that started them; the per-user limit counts this process's
//! previews.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::body::Body;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use samokoder_core::api::preview::{PreviewInfo, PreviewOpenResponse, PreviewState};
use samokoder_core::engine::{
    CancellationToken, CommandResult, InstallObserver, PrepareError, prepare_dependencies,
};
use samokoder_core::install::Wanted;
use samokoder_core::runner::{
    ExitReason, Invocation, RunnerError, ServiceHandle, ServiceSpec, ServiceStatus,
};
use samokoder_core::state::{MAIN_BRANCH, OutputStream, RunState};
use samokoder_core::templates::Template;
use samokoder_store::{QuotaKind, StoreError, User};
use uuid::Uuid;

use super::preview_origin::PreviewOrigin;
use super::ticket::{self, TicketKind};
use crate::error::ApiError;
use crate::preview_site::ENTER_PATH;
use crate::quota;
use crate::state::AppState;

/// Output lines a status shows.
const OUTPUT_LINES: usize = 20;

struct Preview {
    user_id: Uuid,
    /// This run of the preview: owners' preview cookies name it, so a restart voids them.
    instance: Uuid,
    handle: ServiceHandle,
    command: Vec<String>,
    state_id: Uuid,
    started_at: DateTime<Utc>,
    idle_timeout: Duration,
    max_lifetime: Duration,
}

/// The previews of this process, the starts in progress and the starts that failed, by
/// project.
#[derive(Default)]
struct Previews {
    running: HashMap<Uuid, Preview>,
    /// Starts that passed the per-user limit and have not finished (installing, building,
    /// starting): they count against the limit, and a second start of the same project waits
    /// for none.
    starting: HashMap<Uuid, Starting>,
    /// The last start of a project that failed before the app ran, until the next start or
    /// stop.
    failed: HashMap<Uuid, FailedStart>,
}

/// A start in progress.
struct Starting {
    user_id: Uuid,
    state_id: Uuid,
    command: Vec<String>,
    started_at: DateTime<Utc>,
    /// What it did so far: each install and build command, then the tail of its output.
    output: Arc<Mutex<Vec<String>>>,
    cancel: CancellationToken,
}

/// A start that failed: what ran last and how.
struct FailedStart {
    state_id: Uuid,
    command: Vec<String>,
    exit_code: Option<i32>,
    output: Vec<String>,
}

/// The previews of this process, by project.
#[derive(Clone)]
pub struct PreviewManager {
    dir: PathBuf,
    previews: Arc<Mutex<Previews>>,
    /// Where owners reach previews, once the preview listener is bound.
    origin: Arc<OnceLock<PreviewOrigin>>,
}

/// A running preview, as the preview listener needs it.
#[derive(Debug, Clone)]
pub struct LivePreview {
    /// Its owner.
    pub user_id: Uuid,
    /// This run of it.
    pub instance: Uuid,
    /// When it stops at the latest.
    pub ends_at: DateTime<Utc>,
}

/// Why a request could not be forwarded to a preview.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No preview of the project runs in this process (or another run of it does).
    #[error("the preview is not running")]
    NotRunning,
    /// The app does not answer through the bridge.
    #[error("the app does not answer: {0}")]
    Unreachable(String),
}

/// A place held under the per-user limit while a preview starts; given back when dropped.
struct Reservation {
    manager: PreviewManager,
    project: Uuid,
    output: Arc<Mutex<Vec<String>>>,
    cancel: CancellationToken,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.manager.lock().starting.remove(&self.project);
    }
}

impl Reservation {
    fn say(&self, line: impl Into<String>) {
        let mut output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        output.push(line.into());
        let excess = output.len().saturating_sub(OUTPUT_LINES);
        output.drain(..excess);
    }
}

/// Keeps an install's progress in the start's output.
struct StartObserver<'a>(&'a Reservation);

impl InstallObserver for StartObserver<'_> {
    fn started(&mut self, argv: &[String], purpose: &str) {
        self.0.say(format!("$ {}  # {purpose}", argv.join(" ")));
    }

    fn output(&mut self, _: OutputStream, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.0.say(line.to_owned());
        }
    }

    fn finished(&mut self, _: &[String], _: &CommandResult) {}
}

impl std::fmt::Debug for PreviewManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewManager")
            .field("dir", &self.dir)
            .field("previews", &self.lock().running.len())
            .finish()
    }
}

fn is_alive(preview: &Preview) -> bool {
    matches!(preview.handle.status(), ServiceStatus::Running)
}

/// An upgrade request (a WebSocket handshake): `Connection: upgrade` and an `Upgrade` header.
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE)
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

impl PreviewManager {
    /// Previews whose files go under `dir/<project id>`.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            previews: Arc::new(Mutex::new(Previews::default())),
            origin: Arc::new(OnceLock::new()),
        }
    }

    /// Sets where owners reach previews (when the preview listener is bound); the first
    /// setting stays.
    pub fn set_origin(&self, origin: PreviewOrigin) {
        let _ = self.origin.set(origin);
    }

    /// Where owners reach previews, when the preview listener serves them.
    pub fn origin(&self) -> Option<&PreviewOrigin> {
        self.origin.get()
    }

    /// `project`'s running preview, if this process runs one.
    pub fn live(&self, project: Uuid) -> Option<LivePreview> {
        let previews = self.lock();
        let preview = previews.running.get(&project).filter(|p| is_alive(p))?;
        Some(LivePreview {
            user_id: preview.user_id,
            instance: preview.instance,
            ends_at: preview.started_at
                + chrono::Duration::from_std(preview.max_lifetime).unwrap_or_default(),
        })
    }

    /// Sends `request` to run `instance` of `project`'s preview through its bridge (one
    /// HTTP/1.1 connection per request; an upgrade, such as a WebSocket, is relayed both ways)
    /// and returns the app's response. Counts as activity.
    pub async fn forward(
        &self,
        project: Uuid,
        instance: Uuid,
        mut request: Request<Body>,
    ) -> Result<Response<Body>, ForwardError> {
        let upstream = {
            let previews = self.lock();
            let preview = previews
                .running
                .get(&project)
                .filter(|p| p.instance == instance && is_alive(p))
                .ok_or(ForwardError::NotRunning)?;
            preview.handle.touch();
            preview.handle.upstream().clone()
        };
        let unreachable = |e: &dyn std::fmt::Display| ForwardError::Unreachable(e.to_string());
        let stream = upstream.connect().await.map_err(|e| unreachable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(connection.with_upgrades());
        let client_upgrade =
            wants_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
        let mut response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(&e))?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client) = client_upgrade
        {
            let app = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                if let (Ok(client), Ok(app)) = tokio::join!(client, app) {
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(client),
                        &mut TokioIo::new(app),
                    )
                    .await;
                }
            });
        }
        Ok(response.map(Body::new))
    }

    fn lock(&self) -> MutexGuard<'_, Previews> {
        self.previews.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds a place for `user`'s preview of `project` while it starts: 409 `preview_starting`
    /// when that project's preview is starting already, 429 `too_many_previews` when `user`'s
    /// live and starting previews on other projects reach `max_per_user`. Checked and taken
    /// under one lock, so concurrent starts cannot all pass the limit.
    fn reserve(
        &self,
        user: Uuid,
        project: Uuid,
        max_per_user: usize,
        state_id: Uuid,
        command: &[String],
    ) -> Result<Reservation, ApiError> {
        let mut previews = self.lock();
        if previews.starting.contains_key(&project) {
            return Err(ApiError::conflict(
                "preview_starting",
                "The project's preview is starting; ask for its status",
            ));
        }
        let live = previews
            .running
            .iter()
            .filter(|(id, preview)| **id != project && preview.user_id == user && is_alive(preview))
            .count();
        let starting = previews
            .starting
            .iter()
            .filter(|(id, start)| **id != project && start.user_id == user)
            .count();
        if live + starting >= max_per_user {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_previews",
                format!(
                    "You already run {max_per_user} preview(s), the most at once; stop one first"
                ),
            ));
        }
        let output = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        previews.failed.remove(&project);
        previews.starting.insert(
            project,
            Starting {
                user_id: user,
                state_id,
                command: command.to_vec(),
                started_at: Utc::now(),
                output: output.clone(),
                cancel: cancel.clone(),
            },
        );
        Ok(Reservation {
            manager: self.clone(),
            project,
            output,
            cancel,
        })
    }

    /// What a status request shows for `project` (and it counts as activity).
    pub async fn info(&self, project: Uuid) -> PreviewInfo {
        let snapshot = {
            let previews = self.lock();
            previews.running.get(&project).map(|preview| {
                preview.handle.touch();
                (
                    preview.handle.status(),
                    preview.handle.upstream().clone(),
                    preview.command.clone(),
                    preview.state_id,
                    preview.started_at,
                    preview.idle_timeout,
                    preview
                        .handle
                        .recent_output(OUTPUT_LINES)
                        .into_iter()
                        .map(|line| line.text)
                        .collect::<Vec<_>>(),
                )
            })
        };
        let Some((status, upstream, command, state_id, started_at, idle, output)) = snapshot else {
            return self.not_running(project);
        };
        let (state, exit_code) = match status {
            ServiceStatus::Running => {
                let state = if upstream.is_listening().await {
                    PreviewState::Running
                } else {
                    PreviewState::Starting
                };
                (state, None)
            }
            ServiceStatus::Exited(exit) if exit.reason == ExitReason::Exited => {
                (PreviewState::Exited, exit.exit_code)
            }
            ServiceStatus::Exited(_) => return stopped(project, output, None),
        };
        let live = matches!(state, PreviewState::Running | PreviewState::Starting);
        PreviewInfo {
            status: state,
            url: self
                .origin()
                .filter(|_| live)
                .map(|origin| origin.url(project)),
            process_id: project.to_string(),
            command,
            state_id: Some(state_id),
            started_at: Some(started_at),
            uptime_seconds: Some(
                u64::try_from((Utc::now() - started_at).num_seconds()).unwrap_or(0),
            ),
            idle_timeout_secs: Some(idle.as_secs()),
            exit_code,
            output,
        }
    }

    /// The status of a project whose app does not run: starting, failed to start, or
    /// stopped.
    fn not_running(&self, project: Uuid) -> PreviewInfo {
        let previews = self.lock();
        if let Some(start) = previews.starting.get(&project) {
            return PreviewInfo {
                status: PreviewState::Starting,
                url: self.origin().map(|origin| origin.url(project)),
                process_id: project.to_string(),
                command: start.command.clone(),
                state_id: Some(start.state_id),
                started_at: Some(start.started_at),
                uptime_seconds: None,
                idle_timeout_secs: None,
                exit_code: None,
                output: start
                    .output
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            };
        }
        if let Some(failed) = previews.failed.get(&project) {
            return PreviewInfo {
                status: PreviewState::Exited,
                url: None,
                process_id: project.to_string(),
                command: failed.command.clone(),
                state_id: Some(failed.state_id),
                started_at: None,
                uptime_seconds: None,
                idle_timeout_secs: None,
                exit_code: failed.exit_code,
                output: failed.output.clone(),
            };
        }
        stopped(project, Vec::new(), None)
    }

    /// Stops every preview (server shutdown).
    pub async fn stop_all(&self) {
        let projects: Vec<Uuid> = {
            let previews = self.lock();
            previews
                .running
                .keys()
                .chain(previews.starting.keys())
                .copied()
                .collect()
        };
        for project in projects {
            self.stop(project).await;
        }
    }

    /// Stops `project`'s preview; when it was there, the instant it stopped.
    pub async fn stop(&self, project: Uuid) -> Option<DateTime<Utc>> {
        {
            let mut previews = self.lock();
            previews.failed.remove(&project);
            if let Some(start) = previews.starting.get(&project) {
                // Its task sees the token and ends without starting the app.
                start.cancel.cancel();
            }
        }
        self.stop_app(project).await
    }

    /// Stops `project`'s running app (not a start in progress) and removes its files.
    async fn stop_app(&self, project: Uuid) -> Option<DateTime<Utc>> {
        let preview = self.lock().running.remove(&project)?;
        preview.handle.stop().await;
        let dir = self.dir.join(project.to_string());
        if let Err(error) = tokio::fs::remove_dir_all(&dir).await
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%project, %error, "could not remove a preview's files");
        }
        Some(Utc::now())
    }
}

fn stopped(project: Uuid, output: Vec<String>, exit_code: Option<i32>) -> PreviewInfo {
    PreviewInfo {
        status: PreviewState::Stopped,
        url: None,
        process_id: project.to_string(),
        command: Vec::new(),
        state_id: None,
        started_at: None,
        uptime_seconds: None,
        idle_timeout_secs: None,
        exit_code,
        output,
    }
}

/// The project's head state and its starter template (whose start command runs it).
async fn head_template(
    state: &AppState,
    project: Uuid,
) -> Result<(Uuid, &'static Template), ApiError> {
    let nothing = || {
        ApiError::conflict(
            "nothing_to_preview",
            "The project has no generated files yet; start a run first",
        )
    };
    let head = match state.store().states.head(project, MAIN_BRANCH).await {
        Ok(Some(head)) => head,
        Ok(None) | Err(StoreError::NotFound { .. }) => return Err(nothing()),
        Err(error) => return Err(error.into()),
    };
    let template = serde_json::from_value::<RunState>(head.state)
        .ok()
        .and_then(|run| run.architecture)
        .and_then(|architecture| samokoder_core::templates::get(&architecture.template))
        .ok_or_else(|| {
            ApiError::conflict(
                "no_start_command",
                "The project's latest state has no architecture with a start command yet",
            )
        })?;
    Ok((head.id, template))
}

/// A one-use link into `project`'s running preview for its owner `user`.
pub fn open(state: &AppState, user: Uuid, project: Uuid) -> Result<PreviewOpenResponse, ApiError> {
    let previews = state.generation().previews();
    let origin = previews.origin().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "previews_not_served",
            "This server serves no previews to browsers (preview.enabled is off)",
        )
    })?;
    if previews
        .live(project)
        .is_none_or(|live| live.user_id != user)
    {
        return Err(ApiError::conflict(
            "preview_not_running",
            "The preview is not running; start it first",
        ));
    }
    let ticket = ticket::issue(&state.auth().secret_box, TicketKind::Preview, user, project)?;
    let base = origin.url(project);
    let query =
        serde_urlencoded::to_string([("ticket", ticket.as_str())]).map_err(ApiError::internal)?;
    Ok(PreviewOpenResponse {
        url: format!("{base}{ENTER_PATH}?{query}"),
        expires_in: TicketKind::Preview.ttl().as_secs(),
        origin: base,
    })
}

/// Starts (or restarts) `project`'s preview for `user`: checks what it would run, the per-user
/// limit and the plan's preview quota, then, in the background, materialises the head
/// state's files, installs their dependencies from the lockfiles, builds what the template
/// builds, and starts the app in the sandbox. Answers when the app listens, or after
/// `preview.start_timeout_secs` with `starting` (the status follows the rest).
pub async fn start(state: &AppState, user: &User, project: Uuid) -> Result<PreviewInfo, ApiError> {
    let config = &state.config().preview;
    let (state_id, template) = head_template(state, project).await?;
    let command: Vec<String> = template
        .start_command
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let previews = state.generation().previews();
    let reservation =
        previews.reserve(user.id, project, config.max_per_user, state_id, &command)?;
    quota::consume(state.store(), user, QuotaKind::Preview).await?;
    previews.stop_app(project).await;

    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let task_state = state.clone();
    let owner = user.id;
    tokio::spawn(async move {
        let outcome = launch(
            &task_state,
            &reservation,
            owner,
            project,
            state_id,
            template,
        )
        .await;
        if let Err(failed) = outcome
            && !reservation.cancel.is_cancelled()
        {
            tracing::info!(%project, why = %failed.why, "a preview did not start");
            let mut output = reservation
                .output
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            output.push(failed.why);
            reservation.manager.lock().failed.insert(
                project,
                FailedStart {
                    state_id,
                    command: failed.command,
                    exit_code: failed.exit_code,
                    output,
                },
            );
        }
        drop(reservation);
        let _ = done_tx.send(());
    });
    let timeout = Duration::from_secs(config.start_timeout_secs);
    // Not started in time is not an error of the request: the status says what happened.
    let _ = tokio::time::timeout(timeout, done_rx).await;
    Ok(previews.info(project).await)
}

/// Why a start failed.
struct LaunchFailure {
    command: Vec<String>,
    exit_code: Option<i32>,
    why: String,
}

impl LaunchFailure {
    fn internal(e: impl std::fmt::Display) -> Self {
        Self {
            command: Vec::new(),
            exit_code: None,
            why: format!("the preview could not be prepared: {e}"),
        }
    }
}

/// Files, dependencies, build, app: the slow part of a start.
async fn launch(
    state: &AppState,
    reservation: &Reservation,
    user: Uuid,
    project: Uuid,
    state_id: Uuid,
    template: &'static Template,
) -> Result<(), LaunchFailure> {
    let config = &state.config().preview;
    let previews = state.generation().previews();
    let runner = state.generation().runner();
    let cancel = &reservation.cancel;
    let dir = previews.dir.join(project.to_string());
    state
        .generation()
        .engine()
        .materialize(state_id, &dir)
        .await
        .map_err(LaunchFailure::internal)?;
    if runner.can_install() {
        let mut observer = StartObserver(reservation);
        match prepare_dependencies(
            runner.as_ref(),
            &dir,
            &Wanted::default(),
            &mut observer,
            cancel,
        )
        .await
        {
            Ok(()) => {}
            Err(PrepareError::Failed(failed)) => {
                return Err(LaunchFailure {
                    exit_code: failed.result.exit_code,
                    why: format!(
                        "installing the dependencies failed: `{}` exited with {:?}",
                        failed.argv.join(" "),
                        failed.result.exit_code
                    ),
                    command: failed.argv,
                });
            }
            Err(PrepareError::Cancelled) => return Ok(()),
            Err(other) => return Err(LaunchFailure::internal(other)),
        }
    }
    if let Some(build) = template.build_spec() {
        let argv = build.invocation.to_argv();
        reservation.say(format!("$ {}  # build the app", argv.join(" ")));
        let out = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            out = runner.run(&dir, &build, None) => out.map_err(LaunchFailure::internal)?,
        };
        for line in out
            .stdout
            .text
            .lines()
            .chain(out.stderr.text.lines())
            .filter(|l| !l.trim().is_empty())
        {
            reservation.say(line.to_owned());
        }
        if !out.success() {
            return Err(LaunchFailure {
                command: argv,
                exit_code: out.exit_code,
                why: "building the app failed".into(),
            });
        }
    }
    if cancel.is_cancelled() {
        return Ok(());
    }
    let spec = ServiceSpec {
        max_lifetime: Duration::from_secs(config.max_lifetime_secs),
        idle_timeout: Some(Duration::from_secs(config.idle_timeout_secs)),
        keep_lines: 200,
        ..ServiceSpec::new(Invocation::Argv {
            args: template
                .start_command
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        })
    };
    let command = template
        .start_command
        .iter()
        .map(|s| (*s).to_owned())
        .collect::<Vec<_>>();
    let handle = runner
        .start_service(&dir, &spec)
        .await
        .map_err(|error| LaunchFailure {
            command: command.clone(),
            exit_code: None,
            why: match error {
                RunnerError::Denied { .. } | RunnerError::NeedsApproval { .. } => {
                    "the sandbox's policy does not allow the app's start command".into()
                }
                RunnerError::Unsupported { reason, .. } => {
                    format!("previews cannot run on this server: {reason}")
                }
                other => format!("the app could not be started: {other}"),
            },
        })?;
    // Listening is what the status reports; waiting here only lets a quick app be `running`
    // when the start request answers.
    let _ = handle
        .wait_until_listening(Duration::from_secs(config.start_timeout_secs))
        .await;
    let mut previews = previews.lock();
    if cancel.is_cancelled() {
        return Ok(());
    }
    previews.running.insert(
        project,
        Preview {
            user_id: user,
            instance: Uuid::new_v4(),
            handle,
            command,
            state_id,
            started_at: Utc::now(),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            max_lifetime: spec.max_lifetime,
        },
    );
    Ok(())
}
