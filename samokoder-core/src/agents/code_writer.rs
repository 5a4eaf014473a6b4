//! The code writer: writes one file, or edits it in the workspace's SEARCH/REPLACE format;
//! an edit that does not apply is retried with the workspace's precise explanation.

use serde_json::json;

use super::{AgentCtx, AgentError, with};
use crate::llm::{AgentRole, Message, code_blocks};
use crate::workspace::{Edit, apply_edit};

/// The content of a new file from the model's answer: the first complete fenced block, or the
/// whole answer when it has no fence.
fn new_file_content(answer: &str) -> Result<String, String> {
    if answer.contains("<<<<<<< SEARCH") {
        let edit = Edit::parse_search_replace(answer).map_err(|e| e.to_string())?;
        return apply_edit(None, &edit).map_err(|e| e.to_string());
    }
    let blocks = code_blocks(answer);
    match blocks.first() {
        Some(block) if block.closed => Ok(block.content.clone()),
        Some(_) => Err(
            "the code block is not closed (the answer was cut off); answer with the whole file \
             in one complete fenced block"
                .into(),
        ),
        None if !answer.trim().is_empty() => Ok(format!("{}\n", answer.trim_end())),
        None => Err("the answer is empty; answer with the file in one fenced block".into()),
    }
}

/// Writes or changes `path` for task `task` as `instructions` say; returns the new content.
pub(crate) async fn write_file(
    ctx: &AgentCtx<'_>,
    task: usize,
    path: &str,
    instructions: &str,
) -> Result<String, AgentError> {
    let current = match ctx.files.bytes(path) {
        None => None,
        Some(bytes) => {
            Some(
                String::from_utf8(bytes.to_vec()).map_err(|_| AgentError::Unusable {
                    agent: AgentRole::CodeWriter,
                    message: format!("{path} is a binary file; the code writer only edits text"),
                })?,
            )
        }
    };
    let others: Vec<_> = ctx
        .files
        .views(ctx.config.prompt_file_bytes, Some(path))
        .into_iter()
        .filter(|f| f.content.is_some())
        .collect();
    let mut call = ctx.call(
        AgentRole::CodeWriter,
        "code_writer",
        "write_file",
        &with(
            ctx.project(),
            json!({
                "task": ctx.state.tasks[task],
                "path": path,
                "instructions": instructions,
                "current": current,
                "others": others,
            }),
        ),
    )?;
    let attempts = ctx.config.max_edit_attempts.max(1);
    let mut last_error = String::new();
    for _ in 0..attempts {
        let mut sink = ctx.events.text_sink(AgentRole::CodeWriter);
        let answer = ctx.llm.chat_stream(call.clone(), &mut sink).await?;
        let text = answer.text().to_owned();
        let result = match &current {
            None => new_file_content(&text),
            Some(current) => Edit::parse_search_replace(&text)
                .and_then(|edit| apply_edit(Some(current), &edit))
                .map_err(|e| e.to_string()),
        };
        match result {
            Ok(content) => return Ok(content),
            Err(error) => {
                let retry = ctx
                    .prompts
                    .render("code_writer/retry", &json!({"path": path, "error": error}))?;
                call.messages.push(Message::assistant(text));
                call.messages.push(Message::user(retry));
                last_error = error;
            }
        }
    }
    Err(AgentError::Unusable {
        agent: AgentRole::CodeWriter,
        message: format!("no applicable change to {path} after {attempts} attempts: {last_error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_come_from_the_fence_or_the_whole_answer() {
        assert_eq!(
            new_file_content("Here:\n```js\nlet a = 1;\n```\n").unwrap(),
            "let a = 1;\n"
        );
        assert_eq!(new_file_content("let a = 1;").unwrap(), "let a = 1;\n");
        assert!(new_file_content("```js\nlet a = 1;\n").is_err());
        assert_eq!(
            new_file_content("<<<<<<< SEARCH\n=======\nx\n>>>>>>> REPLACE\n").unwrap(),
            "x\n"
        );
    }
}
