//! What the engine needs from the sandboxed runner and the starter templates, as two small
//! traits. The engine depends on these, not on a particular runner, so an embedder can plug in
//! a container runner and tests can plug in their own.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::state::OutputStream;

/// What commands run in, as the prompts describe it (the sandbox's system, not the server's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// A description for prompts, e.g. `Linux x86_64 (bubblewrap sandbox), node 20, python 3.11`.
    pub os: String,
    /// Whether commands are confined (a jail); `false` means they run as plain processes.
    pub confined: bool,
    /// Why they are not confined, when they are not.
    pub unconfined_reason: Option<String>,
    /// Whether the install phase can fetch packages from a registry
    /// ([`CommandRunner::can_install`]).
    #[serde(default)]
    pub installs: bool,
}

/// What the runner's policy says about a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum CommandDecision {
    /// Run it.
    Allow,
    /// Never run it.
    Deny {
        /// Why.
        reason: String,
    },
    /// Run it only if a person approves.
    AskHuman {
        /// Why it needs approval.
        reason: String,
    },
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// Exit code; `None` when killed (timeout, signal).
    pub exit_code: Option<i32>,
    /// Standard output (possibly capped by the runner).
    pub stdout: String,
    /// Standard error (likewise).
    pub stderr: String,
    /// Killed for running past its time limit.
    pub timed_out: bool,
    /// Wall time.
    pub duration: Duration,
    /// What the sandbox stopped: refused connections, limits reached.
    #[serde(default)]
    pub blocked: Vec<SandboxBlock>,
}

impl CommandResult {
    /// The command log's record of `argv` ending this way, now.
    pub fn record(&self, argv: &[String]) -> crate::state::CommandRecord {
        crate::state::CommandRecord {
            argv: argv.to_vec(),
            exit_code: self.exit_code,
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            duration_ms: u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            timed_out: self.timed_out,
            at: chrono::Utc::now(),
        }
    }

    /// The command left the workspace over its disk quota: it failed, and what it changed
    /// must not be kept.
    pub fn over_quota(&self) -> bool {
        self.blocked
            .iter()
            .any(|b| b.kind == SandboxBlock::DISK_QUOTA)
    }
}

/// Something the sandbox stopped while a command ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxBlock {
    /// `egress_refused`, `process_limit`, `memory_limit` or `disk_quota`.
    pub kind: String,
    /// What happened, in a sentence.
    pub detail: String,
}

impl SandboxBlock {
    /// The kind of a workspace left over its disk quota.
    pub const DISK_QUOTA: &'static str = "disk_quota";
    /// The kind of a connection the egress proxy refused.
    pub const EGRESS_REFUSED: &'static str = "egress_refused";
}

/// The runner failed to run a command at all (not: the command failed).
#[derive(Debug, thiserror::Error)]
#[error("runner: {0}")]
pub struct RunnerError(pub String);

/// Runs commands in a sandbox confined to a directory.
#[async_trait]
pub trait CommandRunner: Send + Sync {
    /// What commands run in.
    fn sandbox(&self) -> SandboxInfo;

    /// The policy decision for `argv`.
    fn decide(&self, argv: &[String]) -> CommandDecision;

    /// Runs `argv` in `dir` (the materialised project) with a time limit, streaming output to
    /// `output` as it comes. `approved` says a person approved a command the policy wanted
    /// approved. Stops (killing the process group) when `cancel` fires.
    async fn run(
        &self,
        dir: &Path,
        argv: &[String],
        timeout: Duration,
        approved: bool,
        output: &mut (dyn for<'s> FnMut(OutputStream, &'s str) + Send),
        cancel: &CancellationToken,
    ) -> Result<CommandResult, RunnerError>;

    /// Whether [`CommandRunner::install`] can reach a package registry here. Without it the
    /// engine offers only templates that need no install.
    fn can_install(&self) -> bool {
        false
    }

    /// Runs an install command the engine built ([`crate::install`]): with egress to the
    /// package registries only and the deployment's package cache, never for a model's
    /// command. Otherwise as [`CommandRunner::run`].
    async fn install(
        &self,
        dir: &Path,
        argv: &[String],
        timeout: Duration,
        output: &mut (dyn for<'s> FnMut(OutputStream, &'s str) + Send),
        cancel: &CancellationToken,
    ) -> Result<CommandResult, RunnerError> {
        let _ = (dir, argv, timeout, output, cancel);
        Err(RunnerError(
            "this command runner cannot install packages".into(),
        ))
    }
}

/// A starter template, as the architect sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateInfo {
    /// Name, e.g. `node-api`.
    pub name: String,
    /// What it is, in a sentence.
    pub description: String,
    /// Its technologies.
    pub stack: Vec<String>,
    /// The command that runs its tests (argv).
    pub test_command: Vec<String>,
    /// Its dependencies come from a package registry: it can be used only where installs
    /// can reach one ([`CommandRunner::can_install`]).
    #[serde(default)]
    pub needs_install: bool,
}

/// The starter templates.
pub trait TemplateCatalog: Send + Sync {
    /// Every template.
    fn list(&self) -> Vec<TemplateInfo>;

    /// The files of template `name` for a project called `project_name`: (path, content).
    fn render(&self, name: &str, project_name: &str) -> Result<Vec<(String, Vec<u8>)>, String>;
}
