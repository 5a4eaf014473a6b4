//! The executor's judgement: the exit code decides, unless the output contradicts it; then the
//! model reads the output.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AgentCtx, AgentError};
use crate::engine::CommandResult;
use crate::llm::AgentRole;

/// How much of a command's output the executor and the troubleshooter see: the end.
pub const OUTPUT_TAIL_CHARS: usize = 8_000;

/// The model's reading of an ambiguous command run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommandVerdict {
    /// Whether the command did what it was run for.
    pub success: bool,
    /// What the output shows, briefly.
    pub analysis: String,
}

/// Lines that report failure even when the exit code is 0 (a test runner that swallows its
/// status, a script that prints an error and exits cleanly).
const FAILURE_MARKERS: &[&str] = &[
    "not ok ",
    "Traceback (most recent call last)",
    "FAILED",
    "Error:",
    "npm ERR!",
];

/// Stdout then stderr, cut to the last [`OUTPUT_TAIL_CHARS`] characters, with timings masked.
///
/// Timings (`(1.52ms)`, `duration_ms 40.1`, `Ran 3 tests in 0.002s`) differ between otherwise
/// identical runs; masked, the prompts built from this text are identical too, which the replay
/// cache needs. The command log keeps the raw output.
pub fn output_tail(result: &CommandResult) -> String {
    mask_timings(&raw_tail(result))
}

fn raw_tail(result: &CommandResult) -> String {
    let mut text = result.stdout.clone();
    if !result.stderr.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&result.stderr);
    }
    let count = text.chars().count();
    if count <= OUTPUT_TAIL_CHARS {
        return text;
    }
    let tail: String = text.chars().skip(count - OUTPUT_TAIL_CHARS).collect();
    format!(
        "[… {} earlier characters cut …]\n{tail}",
        count - OUTPUT_TAIL_CHARS
    )
}

fn mask_timings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_duration = false;
    for piece in text.split_inclusive(|c: char| c.is_whitespace()) {
        let word = piece.trim_end();
        let rest = &piece[word.len()..];
        let core = word.trim_matches(|c| c == '(' || c == ')' || c == ',');
        let number = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| c.is_ascii_digit() || c == '.')
                && s.chars().any(|c| c.is_ascii_digit())
        };
        let timing = core
            .strip_suffix("ms")
            .or_else(|| core.strip_suffix('s'))
            .is_some_and(number);
        if timing || (after_duration && number(core)) {
            let mut masked = false;
            for c in word.chars() {
                if c.is_ascii_digit() || c == '.' {
                    if !masked {
                        out.push('N');
                        masked = true;
                    }
                } else {
                    out.push(c);
                }
            }
        } else {
            out.push_str(word);
        }
        out.push_str(rest);
        after_duration = word.starts_with("duration");
    }
    out
}

/// The verdict from the exit code alone, or `None` when the output contradicts it.
pub fn clear_verdict(result: &CommandResult) -> Option<bool> {
    if result.timed_out || result.exit_code != Some(0) || result.over_quota() {
        return Some(false);
    }
    let output = format!("{}\n{}", result.stdout, result.stderr);
    let contradicted = FAILURE_MARKERS.iter().any(|m| output.contains(m));
    (!contradicted).then_some(true)
}

/// Judges a finished command: `(success, analysis)`.
pub(crate) async fn judge(
    ctx: &AgentCtx<'_>,
    argv: &[String],
    purpose: &str,
    result: &CommandResult,
) -> Result<(bool, Option<String>), AgentError> {
    if let Some(success) = clear_verdict(result) {
        return Ok((success, None));
    }
    let call = ctx.call(
        AgentRole::Executor,
        "executor",
        "judge",
        &json!({
            "sandbox": ctx.sandbox_view(),
            "argv": argv,
            "purpose": purpose,
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "output": output_tail(result),
        }),
    )?;
    let verdict = ctx.llm.structured::<CommandVerdict>(call).await?.value;
    Ok((verdict.success, Some(verdict.analysis)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn result(code: Option<i32>, stdout: &str) -> CommandResult {
        CommandResult {
            exit_code: code,
            stdout: stdout.into(),
            stderr: String::new(),
            timed_out: false,
            duration: Duration::from_millis(5),
            blocked: Vec::new(),
        }
    }

    #[test]
    fn exit_code_decides_unless_contradicted() {
        assert_eq!(
            clear_verdict(&result(Some(0), "# pass 3\n# fail 0\n")),
            Some(true)
        );
        assert_eq!(clear_verdict(&result(Some(1), "")), Some(false));
        assert_eq!(clear_verdict(&result(None, "")), Some(false));
        assert_eq!(clear_verdict(&result(Some(0), "not ok 1 - adds\n")), None);
    }

    #[test]
    fn timings_are_masked() {
        let a = mask_timings(
            "ok 1 - adds (1.52ms)\n# duration_ms 40.1\nRan 3 tests in 0.002s\nitems: 3\n",
        );
        let b =
            mask_timings("ok 1 - adds (0.9ms)\n# duration_ms 7\nRan 3 tests in 0.010s\nitems: 3\n");
        assert_eq!(a, b);
        assert!(a.contains("items: 3"), "{a}");
    }

    #[test]
    fn tail_keeps_the_end() {
        let long = "x".repeat(OUTPUT_TAIL_CHARS + 10) + "END";
        let tail = output_tail(&result(Some(1), &long));
        assert!(tail.ends_with("END"));
        assert!(tail.starts_with("[… 13 earlier characters cut …]"));
    }
}
