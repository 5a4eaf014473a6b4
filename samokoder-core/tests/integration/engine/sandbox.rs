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
