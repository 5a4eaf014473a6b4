//! Long-running services for previews: the generated app's own start command, in its jail,
//! reached through the ingress bridge, with a bounded lifetime.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Notify, watch};

use super::bridge::{BridgeStream, ServiceUpstream};
use super::command::{Invocation, Network};
use super::limits::{self, LimitHit};
use super::output::OutputStream;
use super::sandbox::{self, SandboxKind};
use super::{GroupGuard, Launched, Role, Runner, RunnerError, Verdict};
use crate::workspace::WorkspacePath;

/// The longest output line kept; longer ones are cut (a minified bundle printed by mistake must
/// not fill the buffer).
const MAX_LINE_CHARS: usize = 2_000;

/// A service to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// The start command (e.g. the template's `start` argv).
    pub invocation: Invocation,
    /// Working directory relative to the workspace root.
    pub cwd: Option<WorkspacePath>,
    /// Extra environment (allowlisted names only). `PORT` and `HOST` are set by the runner.
    pub env: BTreeMap<String, String>,
    /// Stopped after this long whatever happens.
    #[serde(with = "super::command::duration_ms")]
    pub max_lifetime: Duration,
    /// Stopped when [`ServiceHandle::touch`] was not called for this long (the server touches
    /// on each proxied request). `None`: no idle stop.
    pub idle_timeout: Option<Duration>,
    /// How many output lines to keep.
    pub keep_lines: usize,
    /// A human approved the command after an `AskHuman` verdict.
    pub approved: bool,
}

impl ServiceSpec {
    /// A service with defaults: root directory, 30 minutes at most, 5 minutes idle, 200 lines.
    pub fn new(invocation: Invocation) -> Self {
        Self {
            invocation,
            cwd: None,
            env: BTreeMap::new(),
            max_lifetime: Duration::from_secs(30 * 60),
            idle_timeout: Some(Duration::from_secs(5 * 60)),
            keep_lines: 200,
            approved: false,
        }
    }
}

/// One line of a service's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLine {
    /// Which stream.
    pub stream: OutputStream,
    /// The line, without its newline.
    pub text: String,
}

/// Why a service is no longer running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// It exited by itself.
    Exited,
    /// [`ServiceHandle::stop`] (or dropping the handle).
    Stopped,
    /// [`ServiceSpec::max_lifetime`] passed.
    MaxLifetime,
    /// [`ServiceSpec::idle_timeout`] passed without a touch.
    Idle,
    /// Its workspace went over the disk quota
    /// ([`ResourceLimits::workspace_bytes`](super::ResourceLimits::workspace_bytes)).
    DiskQuota,
}

/// How a service ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceExit {
    /// Why.
    pub reason: ExitReason,
    /// Its exit code, if it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if known.
    pub signal: Option<i32>,
}

/// A service's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ServiceStatus {
    /// Its process is alive.
    Running,
    /// It ended.
    Exited(ServiceExit),
}

/// A running service. Dropping the handle stops it (its whole process tree).
#[derive(Debug)]
pub struct ServiceHandle {
    upstream: ServiceUpstream,
    sandbox: SandboxKind,
    leader: u32,
    lines: Arc<Mutex<VecDeque<OutputLine>>>,
    status: watch::Receiver<ServiceStatus>,
    stop: Arc<Notify>,
    /// Milliseconds since `started` of the last touch.
    last_touch: Arc<AtomicU64>,
    started: Instant,
}

impl ServiceHandle {
    /// Where the runner reaches it: the jail's ingress socket (never a host port), or a
    /// loopback port when it runs without the jail.
    pub fn upstream(&self) -> &ServiceUpstream {
        &self.upstream
    }

    /// Opens a connection to it (through its jail's bridge).
    pub async fn connect(&self) -> std::io::Result<BridgeStream> {
        self.upstream.connect().await
    }

    /// How it is confined.
    pub fn sandbox(&self) -> &SandboxKind {
        &self.sandbox
    }

    /// Its current state.
    pub fn status(&self) -> ServiceStatus {
        self.status.borrow().clone()
    }

    /// The last `n` output lines (at most [`ServiceSpec::keep_lines`]), oldest first.
    pub fn recent_output(&self, n: usize) -> Vec<OutputLine> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// Records activity, postponing the idle stop.
    pub fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_touch.store(ms, Ordering::Relaxed);
    }

    /// Whether the service accepts connections now ([`ServiceUpstream::is_listening`]).
    pub async fn is_listening(&self) -> bool {
        self.upstream.is_listening().await
    }

    /// Waits until the service accepts connections. [`RunnerError::NotListening`] (with the
    /// last output lines) if it exits first or `timeout` passes.
    pub async fn wait_until_listening(&self, timeout: Duration) -> Result<(), RunnerError> {
        let started = Instant::now();
        loop {
            if matches!(self.status(), ServiceStatus::Exited(_)) {
                break;
            }
            if self.is_listening().await {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(RunnerError::NotListening {
            waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            output: self.recent_output(20).into_iter().map(|l| l.text).collect(),
        })
    }

    /// Waits until it ends by itself or by a limit.
    pub async fn wait(&self) -> ServiceExit {
        let mut rx = self.status.clone();
        loop {
            if let ServiceStatus::Exited(exit) = &*rx.borrow_and_update() {
                return exit.clone();
            }
            if rx.changed().await.is_err() {
                // The supervisor is gone without a final status: it was stopped.
                return ServiceExit {
                    reason: ExitReason::Stopped,
                    exit_code: None,
                    signal: None,
                };
            }
        }
    }

    /// Stops it (kills its process tree) and waits until it is gone.
    pub async fn stop(self) -> ServiceExit {
        self.stop.notify_one();
        self.wait().await
    }
}

impl Drop for ServiceHandle {
    fn drop(&mut self) {
        self.stop.notify_one();
        // Also directly: the runtime running the supervisor may be shutting down.
        if matches!(*self.status.borrow(), ServiceStatus::Running) {
            sandbox::kill_tree(self.leader);
        }
    }
}

/// A free loopback port for a service run without the jail: bound and released, so another
/// process could take it in between (unlikely on loopback; the service then fails to listen,
/// which [`ServiceHandle::wait_until_listening`] reports).
pub(crate) fn free_port() -> Result<u16, RunnerError> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|source| RunnerError::Io {
            action: "allocate a loopback port",
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| RunnerError::Io {
            action: "allocate a loopback port",
            source,
        })?
        .port();
    Ok(port)
}

impl Runner {
    /// Starts a long-running service in the workspace `root`. In the jail it gets its own
    /// network namespace like every command, `PORT` [`PREVIEW_PORT`](super::PREVIEW_PORT)
    /// inside it and `HOST=127.0.0.1`, and is reached only through
    /// [`ServiceHandle::connect`]: its port is on no host interface, and it cannot reach the
    /// host's. Without the jail it gets a free loopback port of the host as `PORT`.
    ///
    /// The policy applies as for [`Runner::run`], and so do the limits (the workspace quota
    /// stops it). Returns once the process is started; use
    /// [`ServiceHandle::wait_until_listening`] to know it serves.
    pub async fn start_service(
        &self,
        root: &Path,
        spec: &ServiceSpec,
    ) -> Result<ServiceHandle, RunnerError> {
        match self
            .config()
            .policy
            .evaluate(&spec.invocation, Network::None)
        {
            Verdict::Allow => {}
            Verdict::Deny { reason } => return Err(RunnerError::Denied { reason }),
            Verdict::AskHuman { .. } if spec.approved => {}
            Verdict::AskHuman { reason } => return Err(RunnerError::NeedsApproval { reason }),
        }
        let mut env = spec.env.clone();
        env.remove("PORT");
        env.remove("HOST");
        let workspace = root.canonicalize().map_err(|source| RunnerError::Io {
            action: "resolve the service's workspace",
            source,
        })?;
        let Launched {
            mut child,
            leader,
            session,
            upstream,
            ..
        } = self
            .launch(
                root,
                &spec.invocation,
                spec.cwd.as_ref(),
                &env,
                Role::Service,
            )
            .await?;
        let upstream = upstream.ok_or_else(|| RunnerError::Io {
            action: "start the service",
            source: std::io::Error::other("no upstream for a service"),
        })?;
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let keep = spec.keep_lines.max(1);
        let readers =
            [
                child.stdout.take().map(|r| {
                    tokio::spawn(read_lines(r, OutputStream::Stdout, lines.clone(), keep))
                }),
                child.stderr.take().map(|r| {
                    tokio::spawn(read_lines(r, OutputStream::Stderr, lines.clone(), keep))
                }),
            ];
        let (status_tx, status_rx) = watch::channel(ServiceStatus::Running);
        let stop = Arc::new(Notify::new());
        let last_touch = Arc::new(AtomicU64::new(0));
        let started = Instant::now();

        let supervisor_stop = stop.clone();
        let supervisor_touch = last_touch.clone();
        let supervisor_lines = lines.clone();
        let max_lifetime = spec.max_lifetime;
        let idle_timeout = spec.idle_timeout;
        let quota = self.config().limits.workspace_bytes;
        tokio::spawn(async move {
            // Owned here: the jail's bridge, control group and scratch directory live as long
            // as the process.
            let session = session;
            let mut guard = GroupGuard {
                leader,
                reaped: false,
            };
            let lifetime = tokio::time::sleep(max_lifetime);
            tokio::pin!(lifetime);
            let quota_watch = limits::watch_quota(workspace, quota);
            tokio::pin!(quota_watch);
            let mut idle_check = tokio::time::interval(Duration::from_millis(500));
            let reason = loop {
                tokio::select! {
                    status = child.wait() => {
                        guard.reaped = true;
                        let (code, signal) = exit_parts(status.ok());
                        break ServiceExit { reason: ExitReason::Exited, exit_code: code, signal };
                    }
                    () = supervisor_stop.notified() => break stopped(ExitReason::Stopped),
                    () = &mut lifetime => break stopped(ExitReason::MaxLifetime),
                    used = &mut quota_watch => {
                        let hit = LimitHit::DiskQuota { used_bytes: used, limit_bytes: quota };
                        push_line(&supervisor_lines, keep, OutputStream::Stderr, hit.line().trim_end().to_owned());
                        break stopped(ExitReason::DiskQuota);
                    }
                    _ = idle_check.tick() => {
                        if let Some(idle) = idle_timeout {
                            let last = Duration::from_millis(supervisor_touch.load(Ordering::Relaxed));
                            if started.elapsed().saturating_sub(last) >= idle {
                                break stopped(ExitReason::Idle);
                            }
                        }
                    }
                }
            };
            let exit = if guard.reaped {
                sandbox::kill_group(leader);
                session.kill_group();
                reason
            } else {
                sandbox::kill_tree(leader);
                session.kill_group();
                let status = child.wait().await.ok();
                guard.reaped = true;
                let (code, signal) = exit_parts(status);
                ServiceExit {
                    exit_code: code,
                    signal,
                    ..reason
                }
            };
            for reader in readers.into_iter().flatten() {
                // Readers end when the pipes close; an escaped holder must not keep us here.
                let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
            }
            drop(session);
            let _ = status_tx.send(ServiceStatus::Exited(exit));
        });

        Ok(ServiceHandle {
            upstream,
            sandbox: self.sandbox().clone(),
            leader,
            lines,
            status: status_rx,
            stop,
            last_touch,
            started,
        })
    }
}

fn stopped(reason: ExitReason) -> ServiceExit {
    ServiceExit {
        reason,
        exit_code: None,
        signal: None,
    }
}

fn exit_parts(status: Option<std::process::ExitStatus>) -> (Option<i32>, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => (s.code(), s.signal()),
        None => (None, None),
    }
}

/// Appends one line, cut to [`MAX_LINE_CHARS`], keeping the last `keep`.
fn push_line(
    lines: &Mutex<VecDeque<OutputLine>>,
    keep: usize,
    stream: OutputStream,
    mut text: String,
) {
    if text.ends_with('\r') {
        text.pop();
    }
    if text.chars().count() > MAX_LINE_CHARS {
        text = text.chars().take(MAX_LINE_CHARS).collect::<String>() + " …";
    }
    let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
    lines.push_back(OutputLine { stream, text });
    while lines.len() > keep {
        lines.pop_front();
    }
}

async fn read_lines(
    mut reader: impl AsyncRead + Unpin,
    stream: OutputStream,
    lines: Arc<Mutex<VecDeque<OutputLine>>>,
    keep: usize,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8 * 1024];
    let push = |bytes: &[u8]| {
        push_line(
            &lines,
            keep,
            stream,
            String::from_utf8_lossy(bytes).into_owned(),
        );
    };
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            push(&pending[..pos]);
            pending.drain(..=pos);
        }
        // A line that never ends is flushed in pieces rather than growing without bound.
        if pending.len() > MAX_LINE_CHARS * 4 {
            push(&pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        push(&pending);
    }
}
