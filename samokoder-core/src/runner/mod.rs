//! Sandboxed command execution: commands proposed by a model are untrusted.
//!
//! - [`CommandSpec`]: an argv or an explicit [`Invocation::ShellScript`] (run as `sh -c` inside
//!   the sandbox only), a working directory inside the workspace, a time limit, allowlisted
//!   extra environment variables, and [`Network`] access.
//! - [`CommandPolicy`] judges it first: [`Verdict::Allow`], [`Verdict::Deny`] or
//!   [`Verdict::AskHuman`]; [`Runner::run`] refuses denied commands, and asks-for-a-human ones
//!   unless [`CommandSpec::approved`] is set.
//! - The command runs with an environment built from scratch (never the server's), in a
//!   bubblewrap jail when one works here ([`SandboxKind::Bubblewrap`]): only the workspace
//!   writable, system directories read-only, a size-capped private `/tmp`, no capabilities,
//!   own pid namespace, and **always its own network namespace**. Two bridges cross it, both
//!   Unix sockets ([`bridge`]): [`Network::Egress`] commands (package installs) reach the
//!   allowlisted registries through the runner's proxy ([`EgressPolicy`]), and previews are
//!   reached by the runner through [`ServiceHandle::connect`]. Nothing on the host can reach
//!   into a jail, and nothing in a jail can reach the host's loopback.
//! - Limits that hold even when the server runs as root: a control group per jail
//!   (`pids.max`, `memory.max` counting the `/tmp` tmpfs, CPU) where the host has one, else
//!   an unprivileged host uid ([`RunnerConfig::sandbox_uid`]); per-process `RLIMIT_*` through
//!   `prlimit` ([`ResourceLimits`]); a wall-clock timeout that kills the whole tree; a disk
//!   quota on the workspace ([`LimitHit::DiskQuota`]). Output is captured concurrently, each
//!   stream capped with head and tail kept ([`CapturedOutput`]), and streamed live to an
//!   [`OutputSink`].
//! - [`Runner::isolation`]: what the self-test at start found working on this host.
//! - Without bubblewrap ([`SandboxKind::Unconfined`], reported in every outcome) commands run
//!   as plain processes with the limits that remain.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use samokoder_core::runner::{CommandSpec, Runner, RunnerConfig};
//!
//! let runner = Runner::new(RunnerConfig::default())?; // runs the isolation self-test once
//! println!("{}", runner.isolation().summary());
//! let workspace = std::path::Path::new("/var/lib/samokoder/ws/123");
//! let outcome = runner.run(workspace, &CommandSpec::argv(["node", "--test"]), None).await?;
//! println!("exit {:?} in {:?}, sandbox {:?}", outcome.exit_code, outcome.duration(), outcome.sandbox);
//! # Ok(()) }
//! ```

pub mod bridge;
mod cgroup;
mod command;
mod config;
mod egress;
mod isolation;
mod limits;
mod output;
mod policy;
mod sandbox;
mod service;
mod tree;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

pub use bridge::{BridgeStream, EGRESS_PROXY_PORT, PREVIEW_PORT, ServiceUpstream};
pub use command::{CommandSpec, DEFAULT_TIMEOUT, Invocation, Network};
pub use config::{
    BwrapMode, CgroupMode, DEFAULT_ENV_ALLOWLIST, DEFAULT_OUTPUT_CAP, ResourceLimits, RunnerConfig,
};
pub use egress::{
    DEFAULT_EGRESS_PORTS, EGRESS_METRIC, EgressPolicy, EgressPolicyError, EgressRefusal,
    EgressRefusalReason, EgressRules, EgressStats, RegistryDiscovery, discover_registry_hosts,
};
pub use isolation::{IsolationFeature, IsolationReport, IsolationState};
pub use limits::LimitHit;
pub use output::{CapturedOutput, OutputSink, OutputStream, truncation_marker};
pub use policy::{CommandPolicy, PolicyRule, RuleAction, RuleMatch, Verdict};
pub use sandbox::{
    JAIL_BRIDGE_DIR, JAIL_CACHE_DIR, JAIL_HOME, JAIL_UID, JAIL_WORKSPACE, SANDBOX_PATH, SandboxKind,
};
pub use service::{ExitReason, OutputLine, ServiceExit, ServiceHandle, ServiceSpec, ServiceStatus};

use crate::workspace::WorkspacePath;
use cgroup::{Cgroups, JailGroup};
use egress::{EgressEvent, ProxyContext, ProxyHandle, ProxyListener};
use output::CappedBuffer;
use sandbox::{Bwrap, JailSpec};
use tree::HostUser;

/// Errors of the runner. A command that runs and fails is not an error: its
/// [`CommandOutcome`] says so.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The policy denied the command.
    #[error("command refused: {reason}")]
    Denied {
        /// Why.
        reason: String,
    },
    /// The policy wants a human's approval and the spec does not carry one.
    #[error("command needs a human's approval: {reason}")]
    NeedsApproval {
        /// What is risky.
        reason: String,
    },
    /// [`BwrapMode::Require`] and an isolation feature does not work here (the self-test's
    /// findings name each one).
    #[error("the sandbox is required but {0}")]
    SandboxUnavailable(String),
    /// The configuration is invalid (an egress allowlist entry, say).
    #[error("invalid runner configuration: {0}")]
    Config(String),
    /// The command needs a part of the sandbox this host does not have (the egress bridge).
    #[error("{what} is unavailable here: {reason}")]
    Unsupported {
        /// What the command needed.
        what: &'static str,
        /// Why it does not work.
        reason: String,
    },
    /// An environment variable not on the allowlist, or with an invalid name or value.
    #[error("environment variable {name:?} is not allowed: {reason}")]
    EnvNotAllowed {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The working directory is missing, not a directory, or reached through a symlink.
    #[error("working directory {path:?} is unusable: {reason}")]
    BadWorkingDirectory {
        /// The relative path (or the root).
        path: String,
        /// Why.
        reason: String,
    },
    /// The command could not be started at all.
    #[error("could not start {program:?}: {source}")]
    Spawn {
        /// What we tried to execute on the host (bubblewrap, prlimit or the program).
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Other I/O of the runner itself (temporary directories, sockets, control groups).
    #[error("could not {action}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A preview service did not start listening in time.
    #[error("the service did not listen within {waited_ms} ms{}", last_output(.output))]
    NotListening {
        /// How long we waited.
        waited_ms: u64,
        /// Its last output lines, to explain why.
        output: Vec<String>,
    },
}

fn last_output(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; its last output:\n{}", lines.join("\n"))
    }
}

fn io_error(action: &'static str) -> impl FnOnce(std::io::Error) -> RunnerError {
    move |source| RunnerError::Io { action, source }
}

/// What happened to a command: serialisable for the command log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// The exit code, when it exited. In the jail, a command killed by signal N shows as
    /// bubblewrap's exit code 128 + N.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when known (unconfined, or bubblewrap itself killed).
    pub signal: Option<i32>,
    /// Killed because it ran past its time limit.
    pub timed_out: bool,
    /// Wall-clock time.
    pub duration_ms: u64,
    /// Standard output, capped.
    pub stdout: CapturedOutput,
    /// Standard error, capped; the sandbox's own lines (a refused connection, a limit
    /// reached) are at its end, each starting with `[sandbox]`.
    pub stderr: CapturedOutput,
    /// How it was confined.
    pub sandbox: SandboxKind,
    /// Its network access.
    pub network: Network,
    /// The resource limits applied, `None` when `prlimit` was unavailable.
    pub limits: Option<ResourceLimits>,
    /// Limits it ran into.
    #[serde(default)]
    pub limits_hit: Vec<LimitHit>,
    /// Connections the egress proxy refused it.
    #[serde(default)]
    pub egress_refused: Vec<EgressRefusal>,
}

impl CommandOutcome {
    /// Exited with code 0, in time, and left the workspace within its quota.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && !self.over_quota()
    }

    /// The command left the workspace over its disk quota: its changes must not be kept.
    pub fn over_quota(&self) -> bool {
        self.limits_hit
            .iter()
            .any(|hit| matches!(hit, LimitHit::DiskQuota { .. }))
    }

    /// Wall-clock time.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms)
    }
}

/// How long output pipes may stay open after the command ended and its group was killed: a
/// process that escaped the group may hold them, and must not hold the run.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Runs commands in workspaces. Build one at start-up and share it (`Arc`); it runs the
/// isolation self-test once.
#[derive(Debug, Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RunnerConfig,
    bwrap: Option<Bwrap>,
    sandbox: SandboxKind,
    prlimit: Option<PathBuf>,
    /// The relay inside the jail, when it works here.
    socat: Option<PathBuf>,
    cgroups: Option<Cgroups>,
    /// The host user jailed processes run as when the runner is root.
    host_user: Option<HostUser>,
    egress_rules: Arc<EgressRules>,
    egress_stats: Arc<EgressStats>,
    isolation: IsolationReport,
    /// Holds the synthetic passwd/group files bound into every jail, and the jails' bridge
    /// directories.
    support_dir: tempfile::TempDir,
}

/// What a jailed process needs on the host while it lives; dropping it kills what is left of
/// the jail and removes it all.
#[derive(Default)]
pub(crate) struct JailSession {
    /// Declared first: stops the proxy before the group and directories go.
    proxy: Option<ProxyHandle>,
    group: Option<JailGroup>,
    bridge_dir: Option<tempfile::TempDir>,
    /// The unconfined process's private HOME/TMPDIR.
    scratch: Option<tempfile::TempDir>,
}

impl JailSession {
    /// Kills every process of the jail's group (when it has one).
    pub(crate) fn kill_group(&self) {
        if let Some(group) = &self.group {
            group.kill_all();
        }
    }
}

/// What kind of process to launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A command with this network access; `install` mounts the package cache.
    Command { network: Network, install: bool },
    /// A long-running service reached through the ingress bridge.
    Service,
}

/// A started process and what belongs to it.
pub(crate) struct Launched {
    pub(crate) child: tokio::process::Child,
    pub(crate) leader: u32,
    pub(crate) session: JailSession,
    pub(crate) egress_events: Option<mpsc::UnboundedReceiver<EgressEvent>>,
    /// Services: where they are reached.
    pub(crate) upstream: Option<ServiceUpstream>,
}

/// The host side of one process: program, arguments, environment, who it runs as.
struct CommandLine {
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    user: Option<HostUser>,
    /// The process waits for a line on standard input before it starts, so it can be moved
    /// into the jail's control group before anything of it runs.
    wait_for_attach: bool,
}

/// Waits for the line the runner writes once the process is in its control group; a closed
/// pipe (the runner died) runs nothing.
const ATTACH_SCRIPT: &str = r#"read _attached && exec "$@""#;

impl CommandLine {
    fn argv0(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }

    /// The process, blocking flavour (the self-test); [`CommandLine::tokio`] for commands.
    fn std(&self) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut command = if self.wait_for_attach {
            let mut c = std::process::Command::new("/bin/sh");
            c.arg("-c")
                .arg(ATTACH_SCRIPT)
                .arg("samokoder-jail")
                .arg(&self.program);
            c
        } else {
            std::process::Command::new(&self.program)
        };
        command.args(&self.args).env_clear().envs(&self.env);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        if let Some(user) = self.user {
            command.uid(user.uid).gid(user.gid);
        }
        command.stdin(if self.wait_for_attach {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        // Own process group: the timeout kills the group, and the server's terminal signals
        // (Ctrl-C) do not reach it.
        command.process_group(0);
        command
    }

    fn tokio(&self) -> Command {
        let mut command = Command::from(self.std());
        command.kill_on_drop(true);
        command
    }
}

impl Runner {
    /// Builds a runner: finds `prlimit`, bubblewrap, socat and a control group hierarchy per
    /// the configuration, and runs the isolation self-test ([`Runner::isolation`]).
    /// [`RunnerError::SandboxUnavailable`] when [`BwrapMode::Require`] and a required feature
    /// does not work, naming each one. Blocking (it runs the probes): call it at start-up.
    pub fn new(config: RunnerConfig) -> Result<Self, RunnerError> {
        let egress_rules = config
            .egress
            .compile()
            .map_err(|e| RunnerError::Config(e.to_string()))?;
        let support_dir = isolation::support_dir()?;
        let prlimit = sandbox::find_prlimit(config.prlimit_path.as_deref());
        let probed = isolation::probe(&config, support_dir.path());
        if let Some(cache) = &config.package_cache {
            prepare_cache(cache, probed.host_user)?;
        }
        if matches!(config.bwrap, BwrapMode::Require { .. }) {
            let missing = probed.report.missing_required();
            if !missing.is_empty() {
                return Err(RunnerError::SandboxUnavailable(missing));
            }
        }
        let sandbox = match (&probed.bwrap, probed.report.jail_reason()) {
            (Some(_), _) => SandboxKind::Bubblewrap,
            (None, reason) => SandboxKind::Unconfined { reason },
        };
        Ok(Self {
            inner: Arc::new(Inner {
                bwrap: probed.bwrap,
                sandbox,
                prlimit,
                socat: probed.socat,
                cgroups: probed.cgroups,
                host_user: probed.host_user,
                egress_rules: Arc::new(egress_rules),
                egress_stats: Arc::default(),
                isolation: probed.report,
                config,
                support_dir,
            }),
        })
    }

    /// How commands are confined here.
    pub fn sandbox(&self) -> &SandboxKind {
        &self.inner.sandbox
    }

    /// What the isolation self-test found at start: each feature, working or not, and why.
    pub fn isolation(&self) -> &IsolationReport {
        &self.inner.isolation
    }

    /// The configuration.
    pub fn config(&self) -> &RunnerConfig {
        &self.inner.config
    }

    /// Whether resource limits are applied (`prlimit` was found).
    pub fn limits_enforced(&self) -> bool {
        self.inner.prlimit.is_some()
    }

    /// Whether installs can reach a registry here: an allowlist to reach, and (in the jail)
    /// the bridge to reach it through.
    pub fn can_install(&self) -> bool {
        !self.inner.egress_rules.is_empty()
            && (self.inner.bwrap.is_none() || self.inner.socat.is_some())
    }

    /// What the egress proxies of this runner allowed and refused so far.
    pub fn egress_stats(&self) -> &EgressStats {
        &self.inner.egress_stats
    }

    /// The policy's verdict on `spec` (what [`Runner::run`] would refuse).
    pub fn check(&self, spec: &CommandSpec) -> Verdict {
        self.inner
            .config
            .policy
            .evaluate(&spec.invocation, spec.network)
    }

    /// Runs `spec` in the workspace directory `root` and waits for it, streaming output to
    /// `sink`. Afterwards no process of the command is left running (in the jail, guaranteed by
    /// the pid namespace and the control group; unconfined, by killing its process group and
    /// descendants).
    ///
    /// Errors are about the runner (refused by policy, bad environment, cannot start); a
    /// command that fails, times out or runs into a limit is an `Ok` outcome saying so. If
    /// this future is dropped the command's processes are killed.
    pub async fn run(
        &self,
        root: &Path,
        spec: &CommandSpec,
        sink: Option<&dyn OutputSink>,
    ) -> Result<CommandOutcome, RunnerError> {
        self.admit(spec)?;
        let started = Instant::now();
        let Launched {
            mut child,
            leader,
            session,
            mut egress_events,
            upstream: _,
        } = self
            .launch(
                root,
                &spec.invocation,
                spec.cwd.as_ref(),
                &spec.env,
                Role::Command {
                    network: spec.network,
                    install: spec.package_cache,
                },
            )
            .await?;
        // Killing on drop covers cancellation of this future: the group dies with it.
        let mut guard = GroupGuard {
            leader,
            reaped: false,
        };
        let cap = self.inner.config.output_cap_bytes;
        let mut out_buf = CappedBuffer::new(cap);
        let mut err_buf = CappedBuffer::new(cap);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let workspace = root
            .canonicalize()
            .map_err(io_error("resolve the workspace"))?;
        let quota = self.inner.config.limits.workspace_bytes;
        let mut refused: Vec<EgressRefusal> = Vec::new();
        let mut sandbox_lines: Vec<String> = Vec::new();
        let mut over_quota: Option<u64> = None;

        let (status, timed_out) = {
            let pumps = async {
                tokio::join!(
                    pump(stdout, &mut out_buf, OutputStream::Stdout, sink),
                    pump(stderr, &mut err_buf, OutputStream::Stderr, sink)
                )
            };
            tokio::pin!(pumps);
            let mut pumps_done = false;
            let deadline = tokio::time::sleep(spec.timeout);
            tokio::pin!(deadline);
            let quota_watch = limits::watch_quota(workspace.clone(), quota);
            tokio::pin!(quota_watch);
            let mut timed_out = false;
            let status = loop {
                tokio::select! {
                    status = child.wait() => {
                        guard.reaped = true;
                        break status;
                    }
                    _ = &mut pumps, if !pumps_done => pumps_done = true,
                    _ = &mut deadline, if !timed_out => {
                        timed_out = true;
                        sandbox::kill_tree(leader);
                        session.kill_group();
                    }
                    used = &mut quota_watch, if over_quota.is_none() => {
                        over_quota = Some(used);
                        sandbox::kill_tree(leader);
                        session.kill_group();
                    }
                    Some(event) = recv(&mut egress_events) => {
                        if let EgressEvent::Refused(refusal) = event {
                            note(sink, &mut sandbox_lines, refusal.line());
                            refused.push(refusal);
                        }
                    }
                }
            };
            // The leader is gone; anything it left in its group goes too, then the pipes drain
            // (bounded: an escaped process may still hold them).
            sandbox::kill_group(leader);
            session.kill_group();
            if !pumps_done {
                let _ = tokio::time::timeout(DRAIN_GRACE, &mut pumps).await;
            }
            (status, timed_out)
        };
        drop(guard);
        let status = status.map_err(io_error("wait for the command"))?;
        // Refusals still queued: the proxy reported them before the command ended.
        if let Some(events) = egress_events.as_mut() {
            while let Ok(event) = events.try_recv() {
                if let EgressEvent::Refused(refusal) = event {
                    note(sink, &mut sandbox_lines, refusal.line());
                    refused.push(refusal);
                }
            }
        }
        let limits = &self.inner.config.limits;
        let mut limits_hit = Vec::new();
        if let Some(group) = &session.group {
            limits_hit.extend(LimitHit::from_pressure(group.pressure(), limits));
        }
        let used = match over_quota {
            Some(used) => Some(used),
            None => limits::usage_over(&workspace, quota).await,
        };
        if let Some(used_bytes) = used {
            limits_hit.push(LimitHit::DiskQuota {
                used_bytes,
                limit_bytes: quota,
            });
        }
        for hit in &limits_hit {
            note(sink, &mut sandbox_lines, hit.line());
        }
        for line in &sandbox_lines {
            err_buf.push(line.as_bytes());
        }
        drop(session);
        use std::os::unix::process::ExitStatusExt;
        Ok(CommandOutcome {
            exit_code: status.code(),
            signal: status.signal(),
            timed_out,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            stdout: out_buf.finish(),
            stderr: err_buf.finish(),
            sandbox: self.inner.sandbox.clone(),
            network: spec.network,
            limits: self.inner.prlimit.as_ref().map(|_| *limits),
            limits_hit,
            egress_refused: refused,
        })
    }

    /// Policy check as [`Runner::run`] applies it.
    fn admit(&self, spec: &CommandSpec) -> Result<(), RunnerError> {
        match self.check(spec) {
            Verdict::Allow => Ok(()),
            Verdict::Deny { reason } => Err(RunnerError::Denied { reason }),
            Verdict::AskHuman { .. } if spec.approved => Ok(()),
            Verdict::AskHuman { reason } => Err(RunnerError::NeedsApproval { reason }),
        }
    }

    /// Checks the request, prepares the jail (its user, bridges, control group), and starts
    /// the process inside it.
    pub(crate) async fn launch(
        &self,
        root: &Path,
        invocation: &Invocation,
        cwd: Option<&WorkspacePath>,
        extra_env: &BTreeMap<String, String>,
        role: Role,
    ) -> Result<Launched, RunnerError> {
        let inner = &self.inner;
        let argv = invocation.to_argv();
        if argv.is_empty() || argv[0].is_empty() {
            return Err(RunnerError::Denied {
                reason: "empty command".into(),
            });
        }
        for (name, value) in extra_env {
            self.check_env(name, value)?;
        }
        let root = root
            .canonicalize()
            .map_err(|e| RunnerError::BadWorkingDirectory {
                path: root.display().to_string(),
                reason: e.to_string(),
            })?;
        if !root.is_dir() {
            return Err(RunnerError::BadWorkingDirectory {
                path: root.display().to_string(),
                reason: "the workspace root is not a directory".into(),
            });
        }
        check_cwd(&root, cwd)?;
        let jailed = inner.bwrap.is_some();
        let user = inner.host_user.filter(|_| jailed);
        if let Some(user) = user {
            let at = root.clone();
            tokio::task::spawn_blocking(move || {
                tree::check_reachable(&at, user).map_err(|reason| {
                    RunnerError::BadWorkingDirectory {
                        path: at.display().to_string(),
                        reason,
                    }
                })?;
                tree::hand_over(&at, user)
                    .map_err(io_error("hand the workspace to the sandbox user"))
            })
            .await
            .map_err(|e| RunnerError::Io {
                action: "hand the workspace to the sandbox user",
                source: std::io::Error::other(e),
            })??;
        }

        let mut session = JailSession::default();
        let mut env = BTreeMap::new();
        let mut inner_argv: Vec<String> = Vec::new();
        if let Some(prlimit) = &inner.prlimit {
            inner_argv.push(prlimit.to_string_lossy().into_owned());
            inner_argv.extend(inner.config.limits.prlimit_args());
            inner_argv.push("--".into());
        }
        let mut egress_events = None;
        let mut upstream = None;
        let mut bridge_writable = false;
        let cache = match role {
            Role::Command { install: true, .. } => {
                env.extend(inner.config.install_env.clone());
                let cache = inner.config.package_cache.as_deref();
                let inside = match cache {
                    Some(_) if jailed => Some(PathBuf::from(JAIL_CACHE_DIR)),
                    other => other.map(Path::to_path_buf),
                };
                if let Some(inside) = inside {
                    env.insert(
                        "npm_config_cache".into(),
                        inside.join("npm").to_string_lossy().into_owned(),
                    );
                    env.insert(
                        "PIP_CACHE_DIR".into(),
                        inside.join("pip").to_string_lossy().into_owned(),
                    );
                    // Wheels kept for the next install of the same pins (offline).
                    env.insert(
                        "PIP_FIND_LINKS".into(),
                        inside.join("pip/wheelhouse").to_string_lossy().into_owned(),
                    );
                }
                cache
            }
            _ => None,
        };
        match role {
            Role::Command {
                network: Network::None,
                ..
            } => {}
            Role::Command {
                network: Network::Egress,
                ..
            } => {
                let (tx, rx) = mpsc::unbounded_channel();
                egress_events = Some(rx);
                let ctx = ProxyContext {
                    rules: inner.egress_rules.clone(),
                    stats: inner.egress_stats.clone(),
                    events: tx,
                };
                if jailed {
                    let socat = self.socat("egress (package installs)")?;
                    let dir = self.bridge_dir(user)?;
                    let socket = dir.path().join(bridge::EGRESS_SOCKET);
                    let listener = tokio::net::UnixListener::bind(&socket)
                        .map_err(io_error("open the egress proxy's socket"))?;
                    if let Some(user) = user {
                        std::os::unix::fs::lchown(&socket, Some(user.uid), Some(user.gid))
                            .map_err(io_error("hand the egress socket to the sandbox user"))?;
                    }
                    session.proxy = Some(egress::spawn(ProxyListener::Unix(listener), ctx));
                    session.bridge_dir = Some(dir);
                    inner_argv.extend(bridge::egress_wrapper(&socat));
                    env.extend(bridge::proxy_env(&format!(
                        "http://127.0.0.1:{EGRESS_PROXY_PORT}"
                    )));
                } else {
                    // Unconfined: the command could go around the proxy; it is still what its
                    // tools are pointed at, so the allowlist applies to them.
                    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                        .await
                        .map_err(io_error("open the egress proxy's port"))?;
                    let port = listener
                        .local_addr()
                        .map_err(io_error("open the egress proxy's port"))?
                        .port();
                    session.proxy = Some(egress::spawn(ProxyListener::Tcp(listener), ctx));
                    env.extend(bridge::proxy_env(&format!("http://127.0.0.1:{port}")));
                }
            }
            Role::Service => {
                if jailed {
                    let socat = self.socat("previews")?;
                    let dir = self.bridge_dir(user)?;
                    upstream = Some(ServiceUpstream::Socket(
                        dir.path().join(bridge::PREVIEW_SOCKET),
                    ));
                    session.bridge_dir = Some(dir);
                    bridge_writable = true;
                    inner_argv.extend(bridge::ingress_wrapper(&socat));
                    env.insert("PORT".into(), PREVIEW_PORT.to_string());
                } else {
                    let port = service::free_port()?;
                    upstream = Some(ServiceUpstream::Loopback(std::net::SocketAddr::from((
                        [127, 0, 0, 1],
                        port,
                    ))));
                    env.insert("PORT".into(), port.to_string());
                }
                env.insert("HOST".into(), "127.0.0.1".into());
            }
        }
        inner_argv.extend(argv);

        let line = match &inner.bwrap {
            Some(bwrap) => {
                let cwd_inside = match cwd {
                    Some(c) => format!("{JAIL_WORKSPACE}/{c}"),
                    None => JAIL_WORKSPACE.to_owned(),
                };
                let mut args = bwrap.args(&JailSpec {
                    root: &root,
                    cwd_inside,
                    passwd_dir: inner.support_dir.path(),
                    extra_ro_binds: &inner.config.extra_ro_binds,
                    tmp_bytes: inner.config.limits.tmp_bytes,
                    bridge: session
                        .bridge_dir
                        .as_ref()
                        .map(|d| (d.path(), bridge_writable)),
                    cache,
                });
                args.push("--".into());
                args.extend(inner_argv);
                let mut full_env = sandbox::base_env(JAIL_HOME, "/tmp");
                full_env.extend(env);
                full_env.extend(extra_env.clone());
                CommandLine {
                    program: bwrap.path.clone(),
                    args,
                    env: full_env,
                    cwd: None,
                    user,
                    wait_for_attach: false,
                }
            }
            None => {
                // No private /tmp: a fresh scratch directory per process, removed afterwards.
                let scratch = tempfile::Builder::new()
                    .prefix("samokoder-cmd-")
                    .tempdir()
                    .map_err(io_error("create the command's scratch directory"))?;
                let home = scratch.path().join("home");
                let tmp = scratch.path().join("tmp");
                for dir in [&home, &tmp] {
                    std::fs::create_dir(dir)
                        .map_err(io_error("create the command's scratch directory"))?;
                }
                let mut full_env =
                    sandbox::base_env(&home.to_string_lossy(), &tmp.to_string_lossy());
                full_env.extend(env);
                full_env.extend(extra_env.clone());
                session.scratch = Some(scratch);
                let program = PathBuf::from(inner_argv.remove(0));
                CommandLine {
                    program,
                    args: inner_argv,
                    env: full_env,
                    cwd: Some(match cwd {
                        Some(c) => c.to_path_under(&root),
                        None => root.clone(),
                    }),
                    user: None,
                    wait_for_attach: false,
                }
            }
        };
        let mut line = line;
        if let Some(cgroups) = &inner.cgroups {
            session.group = Some(
                cgroups
                    .create(&inner.config.limits)
                    .map_err(io_error("create the jail's control group"))?,
            );
            line.wait_for_attach = true;
        }
        let mut command = line.tokio();
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| RunnerError::Spawn {
            program: line.argv0(),
            source,
        })?;
        let leader = child.id().unwrap_or_default();
        if let Some(group) = &session.group {
            let attached = group.attach(leader);
            let mut stdin = child.stdin.take();
            match (attached, stdin.as_mut()) {
                (Ok(()), Some(stdin)) => {
                    stdin
                        .write_all(b"go\n")
                        .await
                        .map_err(io_error("start the command in its control group"))?;
                }
                (Err(source), _) => {
                    sandbox::kill_tree(leader);
                    return Err(RunnerError::Io {
                        action: "move the command into its control group",
                        source,
                    });
                }
                (Ok(()), None) => {}
            }
            // Closed: the jail reads end-of-file, as from /dev/null.
            drop(stdin);
        }
        Ok(Launched {
            child,
            leader,
            session,
            egress_events,
            upstream,
        })
    }

    /// The relay, or why `what` cannot work here.
    fn socat(&self, what: &'static str) -> Result<PathBuf, RunnerError> {
        self.inner
            .socat
            .clone()
            .ok_or_else(|| RunnerError::Unsupported {
                what,
                reason: self.inner.isolation.reason_of(isolation::BRIDGE),
            })
    }

    /// A fresh bridge directory for one jail, owned by the jail's host user.
    fn bridge_dir(&self, user: Option<HostUser>) -> Result<tempfile::TempDir, RunnerError> {
        let dir = tempfile::Builder::new()
            .prefix("b")
            .tempdir_in(self.inner.support_dir.path().join(isolation::BRIDGES))
            .map_err(io_error("create the jail's bridge directory"))?;
        // Only the jail's user (and so this process) may open what is in it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(io_error("create the jail's bridge directory"))?;
        if let Some(user) = user {
            std::os::unix::fs::lchown(dir.path(), Some(user.uid), Some(user.gid))
                .map_err(io_error("hand the bridge directory to the sandbox user"))?;
        }
        Ok(dir)
    }

    fn check_env(&self, name: &str, value: &str) -> Result<(), RunnerError> {
        let bad = |reason: &str| {
            Err(RunnerError::EnvNotAllowed {
                name: name.to_owned(),
                reason: reason.to_owned(),
            })
        };
        let valid_name = !name.is_empty()
            && name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !valid_name {
            return bad("not a valid variable name");
        }
        if value.contains('\0') {
            return bad("the value contains NUL");
        }
        if !self.inner.config.env_allowed(name) {
            return bad("not on the runner's allowlist");
        }
        Ok(())
    }
}

/// Creates the package cache's directories, owned by the jail's host user when there is one
/// (installs write to them).
fn prepare_cache(cache: &Path, user: Option<HostUser>) -> Result<(), RunnerError> {
    for dir in [cache.join("npm"), cache.join("pip/wheelhouse")] {
        std::fs::create_dir_all(&dir).map_err(io_error("create the package cache"))?;
    }
    if let Some(user) = user {
        tree::check_reachable(cache, user).map_err(|reason| RunnerError::BadWorkingDirectory {
            path: cache.display().to_string(),
            reason,
        })?;
        tree::hand_over(cache, user)
            .map_err(io_error("hand the package cache to the sandbox user"))?;
    }
    Ok(())
}

/// The working directory must be a real directory under the root, reached without symlinks.
fn check_cwd(root: &Path, cwd: Option<&WorkspacePath>) -> Result<(), RunnerError> {
    let Some(cwd) = cwd else { return Ok(()) };
    let mut at = root.to_path_buf();
    for seg in cwd.segments() {
        at.push(seg);
        let meta =
            std::fs::symlink_metadata(&at).map_err(|e| RunnerError::BadWorkingDirectory {
                path: cwd.to_string(),
                reason: e.to_string(),
            })?;
        if meta.file_type().is_symlink() {
            return Err(RunnerError::BadWorkingDirectory {
                path: cwd.to_string(),
                reason: "a component is a symlink".into(),
            });
        }
        if !meta.is_dir() {
            return Err(RunnerError::BadWorkingDirectory {
                path: cwd.to_string(),
                reason: "not a directory".into(),
            });
        }
    }
    Ok(())
}

/// A line of the sandbox's own: shown live and kept for the end of the captured stderr.
fn note(sink: Option<&dyn OutputSink>, lines: &mut Vec<String>, line: String) {
    if let Some(sink) = sink {
        sink.output(OutputStream::Stderr, line.as_bytes());
    }
    lines.push(line);
}

/// The next event of an optional channel; never, without one.
async fn recv<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads one stream to its end into the capped buffer, passing chunks to the sink.
async fn pump(
    reader: Option<impl AsyncRead + Unpin>,
    buf: &mut CappedBuffer,
    stream: OutputStream,
    sink: Option<&dyn OutputSink>,
) {
    let Some(mut reader) = reader else { return };
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.push(&chunk[..n]);
                if let Some(sink) = sink {
                    sink.output(stream, &chunk[..n]);
                }
            }
        }
    }
}

/// Kills the process group when dropped: a cancelled run leaves nothing behind.
pub(crate) struct GroupGuard {
    pub(crate) leader: u32,
    /// Once the leader is reaped its pid may be reused, so only its group (which keeps the id
    /// reserved while any member lives) is signalled, not a parent-chain walk from it.
    pub(crate) reaped: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.leader == 0 {
            return;
        }
        if self.reaped {
            sandbox::kill_group(self.leader);
        } else {
            sandbox::kill_tree(self.leader);
        }
    }
}
