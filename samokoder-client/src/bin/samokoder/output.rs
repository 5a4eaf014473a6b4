//! Printing for people or for programs (`--json`).

use std::io::Write;

use serde::Serialize;

use crate::{Failure, FailureKind};

/// Where results and errors go, and in which form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether output is for programs.
    pub(crate) fn is_json(self) -> bool {
        self.json
    }

    /// A command's result: its JSON on one line, or the text `human` makes.
    pub(crate) fn value<T: Serialize + ?Sized>(self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            self.json_line(value);
        } else {
            println!("{}", human());
        }
    }

    /// One JSON document on its own line of standard output.
    pub(crate) fn json_line<T: Serialize + ?Sized>(self, value: &T) {
        match serde_json::to_string(value) {
            Ok(text) => {
                let mut out = std::io::stdout().lock();
                // A closed pipe (`| head`) is not worth a panic.
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
            Err(error) => eprintln!("error: cannot encode the output: {error}"),
        }
    }

    /// A warning that does not fail the command.
    pub(crate) fn warn(self, message: &str) {
        if self.json {
            let line = serde_json::json!({"warning": message});
            eprintln!("{line}");
        } else {
            eprintln!("warning: {message}");
        }
    }

    /// A failed command: the server's detail, code and request id, on standard error.
    pub(crate) fn failure(self, failure: &Failure) {
        if self.json {
            let body = match &failure.error {
                FailureKind::Client(error) => match error.api() {
                    Some(api) => serde_json::json!({
                        "status": api.status().as_u16(),
                        "code": api.code(),
                        "detail": api.detail(),
                        "request_id": api.request_id(),
                        "errors": api.field_errors(),
                    }),
                    None => {
                        serde_json::json!({"code": "client_error", "detail": error.to_string()})
                    }
                },
                FailureKind::Message(message) => {
                    serde_json::json!({"code": "cli_error", "detail": message})
                }
            };
            eprintln!(
                "{}",
                serde_json::json!({"error": body, "exit_status": failure.status})
            );
        } else {
            match &failure.error {
                FailureKind::Client(error) => {
                    eprintln!("error: {error}");
                    if failure.status == 3 {
                        eprintln!("hint: log in again with `samokoder login`");
                    }
                }
                FailureKind::Message(message) => eprintln!("error: {message}"),
            }
        }
    }
}

/// At most `max` characters of `text` on one line, with an ellipsis when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max && !text.contains('\n') {
        return line.to_owned();
    }
    let mut short: String = line.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_to_one_line() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdefgh", 5), "abcd…");
        assert_eq!(shorten("ab\ncd", 5), "ab…");
    }
}
