//! The loop detector's notion of "the same failure": a command and its output with everything
//! that varies between otherwise identical runs (numbers, timings, hex ids, temporary paths)
//! taken out.

use crate::state::{CommandFailure, GuardState};

/// How much of a failure's output the signature looks at: the end, where errors are.
const SIGNATURE_TAIL_CHARS: usize = 2_000;

/// The normalised signature of a failure.
///
/// ```
/// use samokoder_core::engine::failure_signature;
/// use samokoder_core::state::CommandFailure;
///
/// let failure = |output: &str| CommandFailure {
///     argv: vec!["node".into(), "--test".into()],
///     exit_code: Some(1),
///     timed_out: false,
///     output: output.into(),
///     analysis: String::new(),
/// };
/// let a = failure_signature(&failure("not ok 1 - add (12.5ms)\n  at /tmp/run-8f3a/app.js:3:9"));
/// let b = failure_signature(&failure("not ok 1 - add (3.1ms)\n  at /tmp/run-0c1d/app.js:3:9"));
/// assert_eq!(a, b);
/// let c = failure_signature(&failure("not ok 1 - subtract (3.1ms)"));
/// assert_ne!(a, c);
/// ```
pub fn failure_signature(failure: &CommandFailure) -> String {
    let output: String = {
        let chars: Vec<char> = failure.output.chars().collect();
        let start = chars.len().saturating_sub(SIGNATURE_TAIL_CHARS);
        chars[start..].iter().collect()
    };
    let exit = match (failure.timed_out, failure.exit_code) {
        (true, _) => "timeout".to_owned(),
        (false, Some(code)) => code.to_string(),
        (false, None) => "killed".to_owned(),
    };
    format!(
        "{} => {exit}: {}",
        failure.argv.join(" "),
        normalise(&output)
    )
}

/// Replaces runs of digits and hex-looking words with placeholders and collapses whitespace.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&normalise_word(word));
    }
    out
}

fn normalise_word(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.is_empty() {
            return;
        }
        let has_digit = token.chars().any(|c| c.is_ascii_digit());
        let hex_part = token
            .strip_prefix("0x")
            .or_else(|| token.strip_prefix("0X"))
            .unwrap_or(token);
        let all_hex = !hex_part.is_empty() && hex_part.chars().all(|c| c.is_ascii_hexdigit());
        if has_digit && (all_hex || token.chars().all(|c| c.is_ascii_digit())) {
            out.push('#');
        } else if has_digit {
            // Mixed words such as `run-8f3a` or `tmp4x9`: keep the letters, drop the digits.
            out.extend(token.chars().filter(|c| !c.is_ascii_digit()));
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in word.chars() {
        if c.is_ascii_alphanumeric() {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// Counts `signature` and returns how often it has now been seen.
pub(crate) fn count_failure(guard: &mut GuardState, signature: &str) -> u32 {
    match guard.failures.iter_mut().find(|f| f.signature == signature) {
        Some(entry) => {
            entry.count += 1;
            entry.count
        }
        None => {
            guard.failures.push(crate::state::FailureCount {
                signature: signature.to_owned(),
                count: 1,
            });
            1
        }
    }
}

/// Forgets `signature` (a person said to keep trying).
pub(crate) fn forget_failure(guard: &mut GuardState, signature: &str) {
    guard.failures.retain(|f| f.signature != signature);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_forgets() {
        let mut guard = GuardState::default();
        assert_eq!(count_failure(&mut guard, "a"), 1);
        assert_eq!(count_failure(&mut guard, "b"), 1);
        assert_eq!(count_failure(&mut guard, "a"), 2);
        forget_failure(&mut guard, "a");
        assert_eq!(count_failure(&mut guard, "a"), 1);
    }

    #[test]
    fn numbers_and_ids_do_not_matter_but_words_do() {
        assert_eq!(
            normalise("took 12ms at 0x7ffe1 id=deadbeef42"),
            normalise("took 9ms at 0x1 id=cafe0001")
        );
        assert_ne!(normalise("expected 3"), normalise("received 3"));
    }
}
