//! Getting usable data out of model answers: JSON documents, fenced code blocks and
//! `file: path` blocks.
//!
//! Models wrap JSON in code fences, put prose before and after it, or show an example object
//! before the real one. [`parse_json`] therefore tries, in order, every fenced block and every
//! balanced `{…}`/`[…]` span of the answer, and returns the first that deserialises into the
//! wanted type; when none does, the error of the first syntactically valid candidate is the most
//! useful thing to show the model on a re-ask.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A fenced code block of an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CodeBlock {
    /// The info string after the opening fence (`rust`, `json`, ...); empty when absent.
    pub info: String,
    /// The content between the fences, without the fences and with a final newline.
    pub content: String,
    /// Whether the closing fence was found (false when the answer was cut off).
    pub closed: bool,
}

/// A `file: path` line followed by a fenced block: one file the model wants written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileBlock {
    /// The path as the model wrote it (decoration stripped). Not validated: the workspace
    /// confines it to the project root.
    pub path: String,
    /// The block's info string.
    pub info: String,
    /// The file content.
    pub content: String,
    /// Whether the closing fence was found.
    pub closed: bool,
}

struct Fence {
    ch: char,
    len: usize,
    info: String,
}

/// An opening fence: up to three spaces, then three or more backticks or tildes.
fn opening_fence(line: &str) -> Option<Fence> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let ch = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = rest.chars().take_while(|c| *c == ch).count();
    if len < 3 {
        return None;
    }
    let info = rest[len..].trim();
    // A backtick fence's info string may not contain backticks (CommonMark); such a line is
    // inline code, not a fence.
    if ch == '`' && info.contains('`') {
        return None;
    }
    Some(Fence {
        ch,
        len,
        info: info.to_owned(),
    })
}

fn closes(line: &str, fence: &Fence) -> bool {
    let t = line.trim();
    t.len() >= fence.len && t.chars().all(|c| c == fence.ch)
}

/// Splits an answer into its fenced blocks, each with the index of the line that opened it.
fn blocks_with_lines(text: &str) -> Vec<(usize, CodeBlock)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(fence) = opening_fence(lines[i]) else {
            i += 1;
            continue;
        };
        let start = i;
        let mut content = String::new();
        let mut closed = false;
        i += 1;
        while i < lines.len() {
            if closes(lines[i], &fence) {
                closed = true;
                i += 1;
                break;
            }
            content.push_str(lines[i]);
            content.push('\n');
            i += 1;
        }
        out.push((
            start,
            CodeBlock {
                info: fence.info,
                content,
                closed,
            },
        ));
    }
    out
}

/// Every fenced code block of `text`, in order. Longer fences may contain shorter ones
/// (a Markdown file holding code samples), as in CommonMark.
///
/// ```
/// use samokoder_core::llm::code_blocks;
///
/// let answer = "Here:\n```rust\nfn main() {}\n```\nand\n~~~\nplain\n~~~\n";
/// let blocks = code_blocks(answer);
/// assert_eq!(blocks.len(), 2);
/// assert_eq!(blocks[0].info, "rust");
/// assert_eq!(blocks[0].content, "fn main() {}\n");
/// assert_eq!(blocks[1].content, "plain\n");
/// ```
pub fn code_blocks(text: &str) -> Vec<CodeBlock> {
    blocks_with_lines(text)
        .into_iter()
        .map(|(_, b)| b)
        .collect()
}

/// The path of a `file: path` line, with Markdown decoration (`#`, `*`, `-`, `>`, backticks,
/// quotes, bold markers, a trailing colon) stripped.
fn file_marker(line: &str) -> Option<String> {
    let t = line
        .trim()
        .trim_start_matches(['#', '*', '-', '>', ' ', '`', '_']);
    let (head, rest) = t.split_once(':')?;
    if !head
        .trim_end_matches(['*', '`', '_'])
        .trim()
        .eq_ignore_ascii_case("file")
    {
        return None;
    }
    let path = rest
        .trim()
        .trim_end_matches(':')
        .trim_matches(|c: char| matches!(c, '*' | '`' | '"' | '\'' | '_' | ' '))
        .trim_end_matches(':')
        .trim();
    (!path.is_empty() && !path.contains(char::is_whitespace)).then(|| path.to_owned())
}

/// Every `file: path` line directly followed (blank lines allowed) by a fenced block.
///
/// ```
/// use samokoder_core::llm::file_blocks;
///
/// let answer = "I changed two files.\n\nfile: src/main.rs\n```rust\nfn main() {}\n```\n\n\
///               **File: `README.md`**\n\n````markdown\n# Demo\n```sh\nrun\n```\n````\n";
/// let files = file_blocks(answer);
/// assert_eq!(files.len(), 2);
/// assert_eq!(files[0].path, "src/main.rs");
/// assert_eq!(files[1].path, "README.md");
/// assert_eq!(files[1].content, "# Demo\n```sh\nrun\n```\n");
/// ```
pub fn file_blocks(text: &str) -> Vec<FileBlock> {
    let lines: Vec<&str> = text.lines().collect();
    blocks_with_lines(text)
        .into_iter()
        .filter_map(|(start, block)| {
            let marker = lines[..start].iter().rev().find(|l| !l.trim().is_empty())?;
            let path = file_marker(marker)?;
            Some(FileBlock {
                path,
                info: block.info,
                content: block.content,
                closed: block.closed,
            })
        })
        .collect()
}

/// Balanced `{…}` and `[…]` spans of a text, in order of their start, honouring JSON strings
/// (brackets inside strings do not count). Lazy: an answer that is plain JSON never pays for
/// the scan.
struct Spans<'a> {
    text: &'a str,
    start: usize,
}

impl<'a> Iterator for Spans<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let offset = bytes
            .get(self.start..)?
            .iter()
            .position(|b| *b == b'{' || *b == b'[')?;
        let open = self.start + offset;
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.start = open + 1;
                        return Some(&self.text[open..=i]);
                    }
                }
                _ => {}
            }
        }
        // Unbalanced from here on: no later opener can close either.
        self.start = bytes.len();
        None
    }
}

/// The JSON candidates of an answer, most likely first: the whole answer, fenced blocks, then
/// balanced spans.
fn json_candidates(text: &str) -> impl Iterator<Item = String> + '_ {
    let whole = std::iter::once(text.trim().to_owned());
    let fenced = std::iter::once(())
        .flat_map(move |()| code_blocks(text))
        .map(|b| b.content.trim().to_owned());
    let spans = Spans { text, start: 0 }.map(str::to_owned);
    whole.chain(fenced).chain(spans)
}

/// The first JSON document in `text`, as text.
///
/// ```
/// use samokoder_core::llm::extract_json;
///
/// let answer = "Sure! Here is the plan:\n```json\n{\"steps\": [1, 2]}\n```\nAnything else?";
/// assert_eq!(extract_json(answer), Some("{\"steps\": [1, 2]}".to_owned()));
/// assert_eq!(extract_json("The answer is {\"a\": \"}\"} ok"), Some("{\"a\": \"}\"}".to_owned()));
/// assert_eq!(extract_json("no json here"), None);
/// ```
pub fn extract_json(text: &str) -> Option<String> {
    json_candidates(text)
        .into_iter()
        .find(|c| serde_json::from_str::<serde::de::IgnoredAny>(c).is_ok())
}

/// Deserialises the first JSON document of `text` that fits `T`.
///
/// The error names what was wrong in words a model can act on: no JSON at all, or the
/// deserialisation error of the first well-formed candidate (missing field, wrong type...).
pub fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut first_error = None;
    for candidate in json_candidates(text) {
        let value: serde_json::Value = match serde_json::from_str(&candidate) {
            Ok(value) => value,
            Err(_) => continue,
        };
        match serde_json::from_value::<T>(value) {
            Ok(parsed) => return Ok(parsed),
            Err(e) => {
                first_error
                    .get_or_insert_with(|| format!("the JSON does not match the schema: {e}"));
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        "the answer contains no well-formed JSON document (check quotes, commas and brackets)"
            .to_owned()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Plan {
        steps: Vec<String>,
    }

    #[test]
    fn skips_example_objects_that_do_not_fit() {
        let answer = "For example {\"x\": 1} would be wrong. The plan: {\"steps\": [\"a\", \"b\"]}";
        let plan: Plan = parse_json(answer).unwrap();
        assert_eq!(plan.steps, ["a", "b"]);
    }

    #[test]
    fn reports_schema_errors_of_the_first_valid_candidate() {
        let err = parse_json::<Plan>("```json\n{\"stepz\": []}\n```").unwrap_err();
        assert!(err.contains("missing field `steps`"), "{err}");
        let err = parse_json::<Plan>("{\"steps\": [\"a\",]}").unwrap_err();
        assert!(err.contains("no well-formed JSON"), "{err}");
    }

    #[test]
    fn brackets_in_prose_do_not_hide_the_object() {
        let answer = "Answer [see below]: {\"steps\": [\"x\"]} (done)";
        assert_eq!(parse_json::<Plan>(answer).unwrap().steps, ["x"]);
        assert_eq!(
            extract_json("[1, {\"a\": [2]}]").as_deref(),
            Some("[1, {\"a\": [2]}]")
        );
        assert_eq!(
            extract_json("{\"s\": \"a \\\" { b\"}").as_deref(),
            Some("{\"s\": \"a \\\" { b\"}")
        );
    }

    #[test]
    fn unclosed_blocks_are_marked() {
        let blocks = code_blocks("```py\nprint(1)\n");
        assert_eq!(blocks.len(), 1);
        assert!(!blocks[0].closed);
        assert_eq!(blocks[0].content, "print(1)\n");
    }

    #[test]
    fn file_markers_tolerate_decoration_and_reject_prose() {
        assert_eq!(file_marker("file: a/b.rs").as_deref(), Some("a/b.rs"));
        assert_eq!(file_marker("### File: `a/b.rs`").as_deref(), Some("a/b.rs"));
        assert_eq!(
            file_marker("**file:** src/x.ts").as_deref(),
            Some("src/x.ts")
        );
        assert_eq!(file_marker("- file: \"c.txt\":").as_deref(), Some("c.txt"));
        assert_eq!(file_marker("profile: x"), None);
        assert_eq!(file_marker("file: two words"), None);
        // A block without a marker line before it is not a file block.
        assert!(file_blocks("text\n```\nx\n```\n").is_empty());
    }
}
