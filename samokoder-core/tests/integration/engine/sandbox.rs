//! What the engine does with what the sandbox stopped: each block is a `sandbox_blocked`
//! event, a command that left the workspace over its quota fails, and nothing it wrote is
//! checkpointed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use samokoder_core::engine::{
    CancellationToken, CommandDecision, CommandResult, CommandRunner, EngineConfig, RunnerError,
    SandboxBlock, SandboxInfo,
};
use samokoder_core::llm::async_trait;
use samokoder_core::state::{Autonomy, EngineEvent, MemoryRunStore, OutputStream, RunOutcome};

use super::support::{Harness, Script, runner};

/// The real sandbox, except that every command leaves a file behind and the workspace over
/// its quota (as a command that wrote too much would).
struct OverQuota;

#[async_trait]
impl CommandRunner for OverQuota {
    fn sandbox(&self) -> SandboxInfo {
        CommandRunner::sandbox(runner().as_ref())
    }

    fn decide(&self, argv: &[String]) -> CommandDecision {
        CommandRunner::decide(runner().as_ref(), argv)
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
        let mut result = CommandRunner::run(
            runner().as_ref(),
            dir,
            argv,
            timeout,
            approved,
            output,
            cancel,
        )
        .await?;
        std::fs::write(dir.join("left-behind.bin"), vec![0u8; 4096]).unwrap();
        result.blocked.push(SandboxBlock {
            kind: SandboxBlock::DISK_QUOTA.into(),
            detail: "the workspace used 3.0 GiB, over its disk quota of 2.0 GiB".into(),
        });
        result.blocked.push(SandboxBlock {
            kind: SandboxBlock::EGRESS_REFUSED.into(),
            detail: "evil.test:443: not on the sandbox's egress allowlist".into(),
        });
        Ok(result)
    }
}

#[tokio::test]
async fn an_over_quota_command_fails_says_why_and_keeps_nothing() {
    let fake = samokoder_core::llm::fake::FakeLlm::start().await.unwrap();
    let script = Script::default();
    fake.respond_with(move |request| script.answer(request));
    let h = Harness::with_runner(
        fake,
        EngineConfig::default(),
        Arc::new(MemoryRunStore::new()),
        Arc::new(OverQuota),
    );
    let run = h.run(Autonomy::Auto);
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
    let events: Vec<EngineEvent> = h
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.run_id == run.id)
        .map(|e| e.event.clone())
        .collect();
    let blocked: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::SandboxBlocked { kind, .. } => Some(kind.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        blocked.contains(&"disk_quota") && blocked.contains(&"egress_refused"),
        "{blocked:?}"
    );
    // Every command failed, even where it exited 0, with the quota as its reason.
    for event in &events {
        if let EngineEvent::CommandFinished { success, .. } = event {
            assert!(!success, "{event:?}");
        }
    }
    assert!(
        !h.store.commands(run.id).is_empty(),
        "the commands ran and were logged"
    );
    assert!(
        !h.files(run.project_id)
            .await
            .contains_key("left-behind.bin"),
        "nothing an over-quota command wrote is checkpointed"
    );
    let serialized = serde_json::to_string(&events).unwrap();
    assert!(serialized.contains("over its disk quota"), "{serialized}");
}

/// The real sandbox, whose installs reach a registry that does not have the package.
struct RegistryWithout;

#[async_trait]
impl CommandRunner for RegistryWithout {
    fn sandbox(&self) -> SandboxInfo {
        CommandRunner::sandbox(runner().as_ref())
    }

    fn decide(&self, argv: &[String]) -> CommandDecision {
        CommandRunner::decide(runner().as_ref(), argv)
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
        CommandRunner::run(
            runner().as_ref(),
            dir,
            argv,
            timeout,
            approved,
            output,
            cancel,
        )
        .await
    }

    fn can_install(&self) -> bool {
        true
    }

    async fn install(
        &self,
        _dir: &Path,
        _argv: &[String],
        _timeout: Duration,
        output: &mut (dyn for<'s> FnMut(OutputStream, &'s str) + Send),
        _cancel: &CancellationToken,
    ) -> Result<CommandResult, RunnerError> {
        let error =
            "npm error code E404\nnpm error 404 Not Found - GET registry/left-pad-9 - Not found\n";
        output(OutputStream::Stderr, error);
        Ok(CommandResult {
            exit_code: Some(1),
            stdout: String::new(),
            stderr: error.into(),
            timed_out: false,
            duration: Duration::from_millis(5),
            blocked: Vec::new(),
        })
    }
}

#[tokio::test]
async fn a_failed_install_reaches_the_troubleshooter_with_the_package_managers_error() {
    let fake = samokoder_core::llm::fake::FakeLlm::start().await.unwrap();
    let script = Script::default();
    fake.respond_with(move |request| script.answer(request));
    let h = Harness::with_runner(
        fake,
        EngineConfig::default(),
        Arc::new(MemoryRunStore::new()),
        Arc::new(RegistryWithout),
    );
    let run = h.run(Autonomy::Auto);
    let outcome = h
        .engine
        .drive(run.id, CancellationToken::new())
        .await
        .unwrap();
    assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
    let events: Vec<EngineEvent> = h
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.run_id == run.id)
        .map(|e| e.event.clone())
        .collect();
    let install_failed = events.iter().any(|e| {
        matches!(e, EngineEvent::CommandFinished { argv, success: false, .. }
            if argv[..2] == ["npm".to_owned(), "install".to_owned()])
    });
    assert!(install_failed, "{events:#?}");
    let troubleshooter_saw_it = h.fake.requests().iter().any(|r| {
        r.messages()
            .first()
            .is_some_and(|(_, system)| system.starts_with("You are the troubleshooter"))
            && r.all_text()
                .contains("404 Not Found - GET registry/left-pad-9")
    });
    assert!(
        troubleshooter_saw_it,
        "the troubleshooter was shown npm's own error"
    );
    // The command log has the install, with its output.
    assert!(
        h.store
            .commands(run.id)
            .iter()
            .any(|c| c.argv[0] == "npm" && c.argv[1] == "install" && c.stderr.contains("E404"))
    );
}
