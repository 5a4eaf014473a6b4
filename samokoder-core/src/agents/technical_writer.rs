//! The technical writer: the README.

use serde_json::json;

use super::{AgentCtx, AgentError, with};
use crate::llm::{AgentRole, code_blocks};

/// Writes README.md; returns its content.
pub(crate) async fn readme(ctx: &AgentCtx<'_>) -> Result<String, AgentError> {
    let test_command = ctx
        .state
        .architecture
        .as_ref()
        .map(|a| a.test_command.clone())
        .unwrap_or_default();
    let call = ctx.call(
        AgentRole::TechnicalWriter,
        "technical_writer",
        "readme",
        &with(
            ctx.project(),
            json!({
                "tasks": ctx.state.tasks,
                "files": ctx.file_views(None),
                "test_command": test_command,
            }),
        ),
    )?;
    let mut sink = ctx.events.text_sink(AgentRole::TechnicalWriter);
    let answer = ctx.llm.chat_stream(call, &mut sink).await?;
    let text = answer.text();
    let blocks = code_blocks(text);
    let content = blocks
        .iter()
        .find(|b| b.closed && matches!(b.info.as_str(), "markdown" | "md"))
        .or_else(|| blocks.iter().find(|b| b.closed))
        .map(|b| b.content.clone())
        .unwrap_or_else(|| format!("{}\n", text.trim()));
    if content.trim().is_empty() {
        return Err(AgentError::Unusable {
            agent: AgentRole::TechnicalWriter,
            message: "the README is empty".into(),
        });
    }
    Ok(content)
}
