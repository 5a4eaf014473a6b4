//! Sandboxed command execution: commands proposed by a model are untrusted.
//!
//! - [`CommandSpec`]: an argv or an explicit [`Invocation::ShellScript`] (run as `sh -c` inside
//!   the sandbox only), a working directory inside the workspace, a time limit, allowlisted
//!   extra environment variables, and [`Network`] access.
//! - [`CommandPolicy`] judges it first: [`Verdict::Allow`], [`Verdict::Deny`] or
//!   [`Verdict::AskHuman`]; [`Runner::run`] refuses denied commands, and asks-for-a-human ones
//!   unless [`CommandSpec::approved`] is set.
//! - The command runs with an environment built from scratch (never the server's), in a
//!   bubblewrap jail when one works here ([`SandboxKind::Bubblewrap`]: only the workspace
//!   writable, system directories read-only, private `/tmp`, no network unless
//!   [`Network::Loopback`], no capabilities, own pid namespace) or else unconfined with the
//!   limits that remain ([`SandboxKind::Unconfined`], reported in every outcome).
//! - Limits: wall-clock timeout that kills the whole process tree; CPU time, memory,
//!   process count, file size and open files through the `prlimit` utility inside the sandbox
//!   ([`ResourceLimits`]); stdout and stderr captured concurrently, each capped with head and
//!   tail kept ([`CapturedOutput`]), and streamed live to an [`OutputSink`].
//! - [`Runner::start_service`]: long-running previews on an allocated loopback port, with a
//!   [`ServiceHandle`] to stop them and read their last lines.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use samokoder_core::runner::{CommandSpec, Runner, RunnerConfig};
//!
//! let runner = Runner::new(RunnerConfig::default())?; // probes bubblewrap once
//! let workspace = std::path::Path::new("/var/lib/samokoder/ws/123");
//! let outcome = runner.run(workspace, &CommandSpec::argv(["node", "--test"]), None).await?;
//! println!("exit {:?} in {:?}, sandbox {:?}", outcome.exit_code, outcome.duration(), outcome.sandbox);
//! # Ok(()) }
//! ```

mod command;
mod config;
mod output;
mod policy;
mod sandbox;
mod service;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

pub use command::{CommandSpec, DEFAULT_TIMEOUT, Invocation, Network};
pub use config::{
    BwrapMode, DEFAULT_ENV_ALLOWLIST, DEFAULT_OUTPUT_CAP, ResourceLimits, RunnerConfig,
};
pub use output::{CapturedOutput, OutputSink, OutputStream, truncation_marker};
pub use policy::{CommandPolicy, PolicyRule, RuleAction, RuleMatch, Verdict};
pub use sandbox::{JAIL_HOME, JAIL_UID, JAIL_WORKSPACE, SANDBOX_PATH, SandboxKind};
pub use service::{ExitReason, OutputLine, ServiceExit, ServiceHandle, ServiceSpec, ServiceStatus};

use crate::workspace::WorkspacePath;
use output::CappedBuffer;
use sandbox::{Bwrap, JailSpec};

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
    /// [`BwrapMode::Require`] and bubblewrap does not work here.
    #[error("the sandbox is required but unavailable: {0}")]
    SandboxUnavailable(String),
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
    /// Other I/O of the runner itself (temporary directories, ports, waiting).
    #[error("could not {action}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A preview service did not start listening in time.
    #[error("the service did not listen on port {port} within {waited_ms} ms{}", last_output(.output))]
    NotListening {
        /// Its port.
        port: u16,
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
    /// Standard error, capped.
    pub stderr: CapturedOutput,
    /// How it was confined.
    pub sandbox: SandboxKind,
    /// Its network access (only enforced in the jail).
    pub network: Network,
    /// The resource limits applied, `None` when `prlimit` was unavailable.
    pub limits: Option<ResourceLimits>,
}

impl CommandOutcome {
    /// Exited with code 0, in time.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// Wall-clock time.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms)
    }
}

/// How long output pipes may stay open after the command ended and its group was killed: a
/// process that escaped the group may hold them, and must not hold the run.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Runs commands in workspaces. Build one at start-up and share it (`Arc`); it probes
/// bubblewrap once.
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
    /// Holds the synthetic passwd/group files bound into every jail.
    support_dir: tempfile::TempDir,
}

/// A prepared process: what to spawn and what to clean up after it.
pub(crate) struct Prepared {
    pub(crate) command: Command,
    /// The unconfined run's private HOME/TMPDIR, removed when dropped.
    pub(crate) scratch: Option<tempfile::TempDir>,
}

impl Runner {
    /// Builds a runner: finds `prlimit`, probes bubblewrap per [`RunnerConfig::bwrap`].
    /// [`RunnerError::SandboxUnavailable`] when bubblewrap is required and does not work.
    /// Blocking (runs the probe): call it at start-up.
    pub fn new(config: RunnerConfig) -> Result<Self, RunnerError> {
        let support_dir = tempfile::Builder::new()
            .prefix("samokoder-runner-")
            .tempdir()
            .map_err(|source| RunnerError::Io {
                action: "create the runner's support directory",
                source,
            })?;
        sandbox::write_passwd_files(support_dir.path()).map_err(|source| RunnerError::Io {
            action: "write the jail's passwd files",
            source,
        })?;
        let prlimit = sandbox::find_prlimit(config.prlimit_path.as_deref());
        let (bwrap, sandbox) = match sandbox::detect_bwrap(&config.bwrap, support_dir.path()) {
            Ok(b) => (Some(b), SandboxKind::Bubblewrap),
            Err(reason) => {
                if matches!(config.bwrap, BwrapMode::Require { .. }) {
                    return Err(RunnerError::SandboxUnavailable(reason));
                }
                (None, SandboxKind::Unconfined { reason })
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                bwrap,
                sandbox,
                prlimit,
                support_dir,
            }),
        })
    }

    /// How commands are confined here.
    pub fn sandbox(&self) -> &SandboxKind {
        &self.inner.sandbox
    }

    /// The configuration.
    pub fn config(&self) -> &RunnerConfig {
        &self.inner.config
    }

    /// Whether resource limits are applied (`prlimit` was found).
    pub fn limits_enforced(&self) -> bool {
        self.inner.prlimit.is_some()
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
    /// the pid namespace; unconfined, by killing its process group and descendants).
    ///
    /// Errors are about the runner (refused by policy, bad environment, cannot start); a
    /// command that fails or times out is an `Ok` outcome saying so. If this future is dropped
    /// the command's processes are killed.
    pub async fn run(
        &self,
        root: &Path,
        spec: &CommandSpec,
        sink: Option<&dyn OutputSink>,
    ) -> Result<CommandOutcome, RunnerError> {
        self.admit(spec)?;
        let prepared = self.prepare(
            root,
            &spec.invocation,
            spec.cwd.as_ref(),
            &spec.env,
            spec.network,
        )?;
        let cap = self.inner.config.output_cap_bytes;
        let started = Instant::now();
        // The scratch directory (unconfined HOME/TMPDIR) lives until the command is done.
        let Prepared {
            mut command,
            scratch: _scratch,
        } = prepared;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| RunnerError::Spawn {
            program: spawn_name(&command),
            source,
        })?;
        let leader = child.id().unwrap_or_default();
        // Killing on drop covers cancellation of this future: the group dies with it.
        let mut guard = GroupGuard {
            leader,
            reaped: false,
        };
        let mut out_buf = CappedBuffer::new(cap);
        let mut err_buf = CappedBuffer::new(cap);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();

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
                    }
                }
            };
            // The leader is gone; anything it left in its group goes too, then the pipes drain
            // (bounded: an escaped process may still hold them).
            sandbox::kill_group(leader);
            if !pumps_done {
                let _ = tokio::time::timeout(DRAIN_GRACE, &mut pumps).await;
            }
            (status, timed_out)
        };
        drop(guard);
        let status = status.map_err(|source| RunnerError::Io {
            action: "wait for the command",
            source,
        })?;
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
            limits: self
                .inner
                .prlimit
                .as_ref()
                .map(|_| self.inner.config.limits),
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

    /// Builds the process: jail (or not), limits, environment, working directory.
    pub(crate) fn prepare(
        &self,
        root: &Path,
        invocation: &Invocation,
        cwd: Option<&WorkspacePath>,
        extra_env: &BTreeMap<String, String>,
        network: Network,
    ) -> Result<Prepared, RunnerError> {
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

        let mut program: Vec<String> = Vec::new();
        if let Some(prlimit) = &inner.prlimit {
            program.push(prlimit.to_string_lossy().into_owned());
            program.extend(inner.config.limits.prlimit_args());
            program.push("--".into());
        }
        program.extend(argv);

        let (mut command, env, scratch) = match &inner.bwrap {
            Some(bwrap) => {
                let cwd_inside = match cwd {
                    Some(c) => format!("{JAIL_WORKSPACE}/{c}"),
                    None => JAIL_WORKSPACE.to_owned(),
                };
                let args = bwrap.args(&JailSpec {
                    root: &root,
                    cwd_inside,
                    network,
                    passwd_dir: inner.support_dir.path(),
                    extra_ro_binds: &inner.config.extra_ro_binds,
                });
                let mut command = Command::new(&bwrap.path);
                command.args(args).arg("--").args(&program);
                (command, sandbox::base_env(JAIL_HOME, "/tmp"), None)
            }
            None => {
                // No private /tmp: a fresh scratch directory per command, removed afterwards.
                let scratch = tempfile::Builder::new()
                    .prefix("samokoder-cmd-")
                    .tempdir()
                    .map_err(|source| RunnerError::Io {
                        action: "create the command's scratch directory",
                        source,
                    })?;
                let home = scratch.path().join("home");
                let tmp = scratch.path().join("tmp");
                for dir in [&home, &tmp] {
                    std::fs::create_dir(dir).map_err(|source| RunnerError::Io {
                        action: "create the command's scratch directory",
                        source,
                    })?;
                }
                let mut command = Command::new(&program[0]);
                command.args(&program[1..]);
                command.current_dir(match cwd {
                    Some(c) => c.to_path_under(&root),
                    None => root.clone(),
                });
                let env = sandbox::base_env(&home.to_string_lossy(), &tmp.to_string_lossy());
                (command, env, Some(scratch))
            }
        };
        command.env_clear().envs(env).envs(extra_env);
        // Own process group: the timeout kills the group, and the server's terminal signals
        // (Ctrl-C) do not reach it.
        command.process_group(0);
        command.kill_on_drop(true);
        Ok(Prepared { command, scratch })
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

fn spawn_name(command: &Command) -> String {
    command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned()
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
