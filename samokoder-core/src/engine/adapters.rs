//! The engine's [`CommandRunner`] port over the workspace's sandboxed [`Runner`].

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::ports::{CommandDecision, CommandResult, CommandRunner, RunnerError, SandboxInfo};
use crate::runner::{CommandSpec, OutputStream as RunnerStream, Runner, SandboxKind, Verdict};
use crate::state::OutputStream;

fn spec(argv: &[String], timeout: Duration, approved: bool) -> CommandSpec {
    CommandSpec::argv(argv.iter().cloned())
        .timeout(timeout)
        .approved(approved)
}

#[async_trait]
impl CommandRunner for Runner {
    fn sandbox(&self) -> SandboxInfo {
        let arch = std::env::consts::ARCH;
        match Runner::sandbox(self) {
            SandboxKind::Bubblewrap => SandboxInfo {
                os: format!(
                    "Linux {arch} in a bubblewrap jail (only the project directory is writable, \
                     system tools read-only, no network)"
                ),
                confined: true,
                unconfined_reason: None,
            },
            SandboxKind::Unconfined { reason } => SandboxInfo {
                os: format!("Linux {arch}, unconfined process with a scrubbed environment"),
                confined: false,
                unconfined_reason: Some(reason.clone()),
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
        let spec = spec(argv, timeout, approved);
        let running = Runner::run(self, dir, &spec, Some(&sink));
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
        Ok(CommandResult {
            exit_code: outcome.exit_code,
            duration: outcome.duration(),
            stdout: outcome.stdout.text,
            stderr: outcome.stderr.text,
            timed_out: outcome.timed_out,
        })
    }
}
