//! The spec writer: clarifying questions (once per run), then the written specification.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AgentCtx, AgentError};
use crate::llm::AgentRole;
use crate::state::{Clarification, Spec};

/// The spec writer's questions about the description (possibly none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClarifyingQuestions {
    /// The questions, most important first.
    pub questions: Vec<ClarifyingQuestion>,
}

/// One clarifying question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClarifyingQuestion {
    /// The question.
    pub question: String,
    /// Two to four suggested answers.
    pub options: Vec<String>,
    /// The answer assumed when nobody replies.
    pub default_answer: String,
}

/// Asks the model what it needs to know; keeps at most the configured number of questions.
pub(crate) async fn clarify(ctx: &AgentCtx<'_>) -> Result<Vec<Clarification>, AgentError> {
    let max = ctx.config.max_clarifying_questions;
    let call = ctx.call(
        AgentRole::SpecWriter,
        "spec_writer",
        "clarify",
        &json!({"description": ctx.state.description, "max_questions": max, "sandbox": ctx.sandbox_view()}),
    )?;
    let answer = ctx
        .llm
        .structured_validated::<ClarifyingQuestions, _>(call, |a| {
            if a.questions.iter().any(|q| q.question.trim().is_empty()) {
                return Err("every question needs text".into());
            }
            if a.questions
                .iter()
                .any(|q| q.default_answer.trim().is_empty())
            {
                return Err("every question needs a default_answer".into());
            }
            Ok(())
        })
        .await?;
    Ok(answer
        .value
        .questions
        .into_iter()
        .take(max)
        .map(|q| Clarification {
            question: q.question.trim().to_owned(),
            options: q.options,
            default_answer: q.default_answer.trim().to_owned(),
            answer: None,
        })
        .collect())
}

/// Writes the specification from the description and the answers.
pub(crate) async fn write_spec(ctx: &AgentCtx<'_>) -> Result<Spec, AgentError> {
    let call = ctx.call(
        AgentRole::SpecWriter,
        "spec_writer",
        "write_spec",
        &json!({
            "description": ctx.state.description,
            "sandbox": ctx.sandbox_view(),
            "clarifications": ctx.state.clarifications,
        }),
    )?;
    let mut sink = ctx.events.text_sink(AgentRole::SpecWriter);
    let answer = ctx.llm.structured_stream::<Spec>(call, &mut sink).await?;
    if answer.value.features.is_empty() {
        return Err(AgentError::Unusable {
            agent: AgentRole::SpecWriter,
            message: "the specification lists no feature".into(),
        });
    }
    Ok(answer.value)
}
