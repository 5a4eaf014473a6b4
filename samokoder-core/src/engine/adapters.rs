//! The engine's ports over the crate's own sandboxed [`Runner`] and starter templates.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::ports::{
    CommandDecision, CommandResult, CommandRunner, RunnerError, SandboxBlock, SandboxInfo,
    TemplateCatalog, TemplateInfo,
};
use crate::runner::{
    CommandSpec, Network, OutputStream as RunnerStream, Runner, SandboxKind, Verdict,
};
use crate::state::OutputStream;
use crate::templates::{self, TemplateVars};
use crate::workspace::{BlobSource, MemoryBlobs};

fn spec(argv: &[String], timeout: Duration, approved: bool) -> CommandSpec {
    CommandSpec::argv(argv.iter().cloned())
        .timeout(timeout)
        .approved(approved)
}

/// Runs `spec` in `dir`, streaming output to `output`, until done or `cancel` fires.
async fn run_spec(
    runner: &Runner,
    dir: &Path,
    spec: CommandSpec,
    output: &mut (dyn for<'s> FnMut(OutputStream, &'s str) + Send),
    cancel: &CancellationToken,
) -> Result<CommandResult, RunnerError> {
    // The runner calls its sink from the task running the command; a channel hands the
    // pieces to `output` here, in order.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(OutputStream, String)>();
    let sink = move |stream: RunnerStream, data: &[u8]| {
        let stream = match stream {
            RunnerStream::Stdout => OutputStream::Stdout,
            RunnerStream::Stderr => OutputStream::Stderr,
        };
        let _ = tx.send((stream, String::from_utf8_lossy(data).into_owned()));
    };
    let running = Runner::run(runner, dir, &spec, Some(&sink));
    tokio::pin!(running);
    // Dropping the runner's future kills the command's process group.
    let outcome = loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                return Ok(CommandResult {
                    exit_code: None,
                    stdout: String::new(),
                    stderr: "cancelled".into(),
                    timed_out: false,
                    duration: Duration::ZERO,
                    blocked: Vec::new(),
                });
            }
            Some((stream, text)) = rx.recv() => output(stream, &text),
            outcome = &mut running => break outcome,
        }
    };
    while let Ok((stream, text)) = rx.try_recv() {
        output(stream, &text);
    }
    let outcome = outcome.map_err(|e| RunnerError(e.to_string()))?;
    let blocked = outcome
        .egress_refused
        .iter()
        .map(|refusal| SandboxBlock {
            kind: SandboxBlock::EGRESS_REFUSED.into(),
            detail: format!("{}: {}", refusal.target, refusal.reason),
        })
        .chain(outcome.limits_hit.iter().map(|hit| SandboxBlock {
            kind: hit.kind().into(),
            detail: hit.message(),
        }))
        .collect();
    Ok(CommandResult {
        exit_code: outcome.exit_code,
        duration: outcome.duration(),
        stdout: outcome.stdout.text,
        stderr: outcome.stderr.text,
        timed_out: outcome.timed_out,
        blocked,
    })
}

#[async_trait]
impl CommandRunner for Runner {
    fn sandbox(&self) -> SandboxInfo {
        let arch = std::env::consts::ARCH;
        match Runner::sandbox(self) {
            SandboxKind::Bubblewrap => SandboxInfo {
                os: format!(
                    "Linux {arch} in a bubblewrap jail (only the project directory is writable, \
                     system tools read-only, no network: commands cannot reach the internet \
                     or the host)"
                ),
                confined: true,
                unconfined_reason: None,
                installs: Runner::can_install(self),
            },
            SandboxKind::Unconfined { reason } => SandboxInfo {
                os: format!("Linux {arch}, unconfined process with a scrubbed environment"),
                confined: false,
                unconfined_reason: Some(reason.clone()),
                installs: Runner::can_install(self),
            },
        }
    }

    fn decide(&self, argv: &[String]) -> CommandDecision {
        match self.check(&spec(argv, Duration::from_secs(1), false)) {
            Verdict::Allow => CommandDecision::Allow,
            Verdict::Deny { reason } => CommandDecision::Deny { reason },
            Verdict::AskHuman { reason } => CommandDecision::AskHuman { reason },
        }
    }

    async fn run(
        &self,
        dir: &Path,
        argv: &[String],
        timeout: Duration,
        approved: bool,
        output: &mut (dyn for<'s> FnMut(OutputStream, &'s str) + Send),
        cancel: &CancellationToken,
    ) -> Result<CommandResult, RunnerError> {
        run_spec(self, dir, spec(argv, timeout, approved), output, cancel).await
    }

    fn can_install(&self) -> bool {
        Runner::can_install(self)
    }

    async fn install(
        &self,
        dir: &Path,
        argv: &[String],
        timeout: Duration,
        output: &mut (dyn for<'s> FnMut(OutputStream, &'s str) + Send),
        cancel: &CancellationToken,
    ) -> Result<CommandResult, RunnerError> {
        let spec = spec(argv, timeout, true)
            .network(Network::Egress)
            .package_cache(true);
        run_spec(self, dir, spec, output, cancel).await
    }
}

/// The starter templates built into this crate ([`crate::templates`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct BuiltinTemplates;

impl TemplateCatalog for BuiltinTemplates {
    fn list(&self) -> Vec<TemplateInfo> {
        templates::list()
            .iter()
            .map(|t| TemplateInfo {
                name: t.id.to_owned(),
                description: t.description.to_owned(),
                stack: t
                    .stack
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
                test_command: t.test_command.iter().map(|s| (*s).to_owned()).collect(),
                needs_install: t.needs_install,
            })
            .collect()
    }

    fn render(&self, name: &str, project_name: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
        let template = templates::require(name).map_err(|e| e.to_string())?;
        let mut blobs = MemoryBlobs::new();
        let snapshot = template
            .render(&TemplateVars::new(project_name), &mut blobs)
            .map_err(|e| e.to_string())?;
        snapshot
            .iter()
            .map(|(path, hash)| {
                blobs
                    .blob(hash)
                    .map(|content| (path.as_str().to_owned(), content.to_vec()))
                    .ok_or_else(|| format!("template {name}: missing content of {path}"))
            })
            .collect()
    }
}
