//! Applying a model's edit to a file: whole-file replacement or SEARCH/REPLACE blocks.
//!
//! # The edit format the code-writer prompt asks for
//!
//! One or more blocks, each quoting whole lines of the current file and the lines to put there:
//!
//! ```text
//! <<<<<<< SEARCH
//! function add(a, b) {
//!   return a - b;
//! }
//! =======
//! function add(a, b) {
//!   return a + b;
//! }
//! >>>>>>> REPLACE
//! ```
//!
//! - Text outside blocks (prose, code fences) is ignored.
//! - SEARCH quotes complete lines, enough of them to be unique in the file. Blocks apply in
//!   order, each to the result of the previous one.
//! - An empty SEARCH creates a file (or fills an empty one); on a non-empty file it is refused.
//! - Matching is exact first; when nothing matches exactly, it retries ignoring trailing
//!   whitespace (and `\r`), then ignoring indentation — re-indenting the replacement by the
//!   difference, so a block quoted at the wrong depth still lands correctly. A match must be
//!   unique at the first level that finds one.
//! - A block that does not apply fails the whole edit with an [`EditError`] naming the block,
//!   the reason and the closest lines of the file; nothing is changed. The agent retries with
//!   that message.
//!
//! Search/replace rather than unified diffs: models reproduce the lines they change reliably,
//! but get hunk headers and context counts wrong often enough that diffs need fuzzy repair
//! anyway.

use std::fmt;

use serde::{Deserialize, Serialize};
use similar::TextDiff;

/// An edit a model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Edit {
    /// Replace (or create) the whole file with `content`.
    Replace {
        /// The new content.
        content: String,
    },
    /// Apply SEARCH/REPLACE blocks in order.
    SearchReplace {
        /// The blocks.
        blocks: Vec<SearchReplace>,
    },
}

/// One SEARCH/REPLACE block. Both sides are whole lines, each ending in `\n` (the parser
/// produces that shape; hand-built blocks without the final newline are treated the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchReplace {
    /// Lines to find; empty to create a file.
    pub search: String,
    /// Lines to put in their place; empty to delete them.
    pub replace: String,
}

impl Edit {
    /// Parses a model's answer in the block format (see the module docs).
    ///
    /// ```
    /// use samokoder_core::workspace::{Edit, apply_edit};
    ///
    /// let answer = "Fix the sign:\n```\n<<<<<<< SEARCH\n  return a - b;\n=======\n  return a + b;\n>>>>>>> REPLACE\n```\n";
    /// let edit = Edit::parse_search_replace(answer).unwrap();
    /// let out = apply_edit(Some("function add(a, b) {\n  return a - b;\n}\n"), &edit).unwrap();
    /// assert_eq!(out, "function add(a, b) {\n  return a + b;\n}\n");
    /// ```
    pub fn parse_search_replace(text: &str) -> Result<Edit, EditError> {
        #[derive(PartialEq)]
        enum At {
            Outside,
            Search,
            Replace,
        }
        let mut at = At::Outside;
        let mut blocks = Vec::new();
        let (mut search, mut replace) = (String::new(), String::new());
        let mut opened_at = 0;
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let marker = raw.trim_end();
            match at {
                At::Outside => {
                    if is_marker(marker, '<', "SEARCH") {
                        at = At::Search;
                        opened_at = line_no;
                    } else if is_divider(marker) || is_marker(marker, '>', "REPLACE") {
                        return Err(EditError::Parse {
                            line: line_no,
                            message: format!(
                                "{marker:?} outside a block; a block starts with \"<<<<<<< SEARCH\""
                            ),
                        });
                    }
                }
                At::Search => {
                    if is_divider(marker) {
                        at = At::Replace;
                    } else if is_marker(marker, '<', "SEARCH") || is_marker(marker, '>', "REPLACE")
                    {
                        return Err(EditError::Parse {
                            line: line_no,
                            message: format!(
                                "the block opened on line {opened_at} has no \"=======\" before {marker:?}"
                            ),
                        });
                    } else {
                        search.push_str(raw);
                        search.push('\n');
                    }
                }
                At::Replace => {
                    if is_marker(marker, '>', "REPLACE") {
                        blocks.push(SearchReplace {
                            search: std::mem::take(&mut search),
                            replace: std::mem::take(&mut replace),
                        });
                        at = At::Outside;
                    } else if is_marker(marker, '<', "SEARCH") {
                        return Err(EditError::Parse {
                            line: line_no,
                            message: format!(
                                "the block opened on line {opened_at} is not closed with \">>>>>>> REPLACE\""
                            ),
                        });
                    } else {
                        replace.push_str(raw);
                        replace.push('\n');
                    }
                }
            }
        }
        if at != At::Outside {
            return Err(EditError::Parse {
                line: opened_at,
                message: "the block opened here is not closed with \">>>>>>> REPLACE\"".into(),
            });
        }
        if blocks.is_empty() {
            return Err(EditError::NoBlocks);
        }
        Ok(Edit::SearchReplace { blocks })
    }
}

/// `<<<<<<< SEARCH` / `>>>>>>> REPLACE`, tolerating 5 to 9 marker characters and missing space.
fn is_marker(line: &str, ch: char, word: &str) -> bool {
    let count = line.chars().take_while(|&c| c == ch).count();
    (5..=9).contains(&count) && line[count..].trim() == word
}

fn is_divider(line: &str) -> bool {
    (5..=9).contains(&line.len()) && line.chars().all(|c| c == '=')
}

/// Why an edit did not apply. Nothing was changed; the message is written for the agent to
/// retry with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    /// The answer is not in the block format.
    #[error("line {line} of the edit: {message}")]
    Parse {
        /// 1-based line of the model's answer.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// The answer contains no block at all.
    #[error(
        "no SEARCH/REPLACE block found; write each change as \"<<<<<<< SEARCH\", the exact current lines, \"=======\", the new lines, \">>>>>>> REPLACE\""
    )]
    NoBlocks,
    /// A block with a non-empty SEARCH for a file that does not exist.
    #[error(
        "the file does not exist, so block {block} has nothing to search; create it with an empty SEARCH or a whole-file replacement"
    )]
    FileMissing {
        /// 1-based block number.
        block: usize,
    },
    /// An empty SEARCH on a file that has content.
    #[error(
        "block {block} has an empty SEARCH but the file is not empty; quote the lines to replace"
    )]
    EmptySearch {
        /// 1-based block number.
        block: usize,
    },
    /// The SEARCH lines are nowhere in the file, even ignoring whitespace.
    #[error("block {block} of {blocks}: the SEARCH lines were not found in the file (not exactly, not ignoring trailing whitespace, not ignoring indentation){}", closest_text(.closest))]
    NoMatch {
        /// 1-based block number.
        block: usize,
        /// How many blocks the edit has.
        blocks: usize,
        /// The most similar lines of the file, when any are at all similar.
        closest: Option<Box<ClosestMatch>>,
    },
    /// The SEARCH lines occur more than once.
    #[error(
        "block {block}: the SEARCH lines occur {count} times (starting on lines {}) — include more surrounding lines so they are unique",
        join_lines(.lines)
    )]
    Ambiguous {
        /// 1-based block number.
        block: usize,
        /// How many matches.
        count: usize,
        /// 1-based first lines of the matches.
        lines: Vec<usize>,
    },
}

/// The region of a file most similar to a SEARCH that did not match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosestMatch {
    /// 1-based first line.
    pub start_line: usize,
    /// 1-based last line (inclusive).
    pub end_line: usize,
    /// 0.0 to 1.0.
    pub similarity: f32,
    /// The first SEARCH line that differs from the file there: (search line, file line), both
    /// 1-based, with their text.
    pub first_difference: Option<(usize, String, usize, String)>,
    /// The file's lines in that region.
    pub text: String,
}

fn closest_text(closest: &Option<Box<ClosestMatch>>) -> String {
    let Some(c) = closest else {
        return "; no part of the file resembles them — re-read the file before editing".into();
    };
    let mut out = format!(
        "; the closest are lines {}-{} ({:.0}% similar)",
        c.start_line,
        c.end_line,
        c.similarity * 100.0
    );
    if let Some((s, s_text, f, f_text)) = &c.first_difference {
        out.push_str(&format!(
            ", where SEARCH line {s} {s_text:?} differs from file line {f} {f_text:?}"
        ));
    }
    out.push_str(":\n");
    out.push_str(&c.text);
    if !c.text.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("Copy the lines exactly as they are in the file.");
    out
}

fn join_lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies `edit` to `original` (`None` when the file does not exist yet) and returns the new
/// content. All or nothing: the first block that does not apply returns its error.
pub fn apply_edit(original: Option<&str>, edit: &Edit) -> Result<String, EditError> {
    let blocks = match edit {
        Edit::Replace { content } => return Ok(content.clone()),
        Edit::SearchReplace { blocks } => blocks,
    };
    if blocks.is_empty() {
        return Err(EditError::NoBlocks);
    }
    let mut text = original.map(str::to_owned);
    for (idx, block) in blocks.iter().enumerate() {
        let number = idx + 1;
        text = Some(apply_block(text.as_deref(), block, number, blocks.len())?);
    }
    Ok(text.unwrap_or_default())
}

/// One line of a file: its text without the terminator, and whether it had one.
struct Line<'a> {
    text: &'a str,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    text.split_inclusive('\n')
        .map(|l| Line {
            text: l.strip_suffix('\n').unwrap_or(l),
        })
        .collect()
}

fn block_lines(side: &str) -> Vec<&str> {
    if side.is_empty() {
        return Vec::new();
    }
    side.strip_suffix('\n')
        .unwrap_or(side)
        .split('\n')
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Level {
    Exact,
    TrailingWhitespace,
    Indentation,
}

impl Level {
    fn same(self, file: &str, search: &str) -> bool {
        match self {
            Level::Exact => file == search,
            Level::TrailingWhitespace => file.trim_end() == search.trim_end(),
            Level::Indentation => file.trim() == search.trim(),
        }
    }
}

fn apply_block(
    original: Option<&str>,
    block: &SearchReplace,
    number: usize,
    total: usize,
) -> Result<String, EditError> {
    let search = block_lines(&block.search);
    let replace = block_lines(&block.replace);
    if search.iter().all(|l| l.trim().is_empty()) {
        return match original {
            Some(text) if !text.trim().is_empty() => Err(EditError::EmptySearch { block: number }),
            _ => Ok(block.replace.clone()),
        };
    }
    let Some(text) = original else {
        return Err(EditError::FileMissing { block: number });
    };
    let lines = split_lines(text);
    for level in [Level::Exact, Level::TrailingWhitespace, Level::Indentation] {
        let starts: Vec<usize> = (0..lines.len().saturating_sub(search.len() - 1))
            .filter(|&start| {
                search
                    .iter()
                    .enumerate()
                    .all(|(i, s)| level.same(lines[start + i].text, s))
            })
            .collect();
        match starts.len() {
            0 => continue,
            1 => return Ok(splice(text, &lines, starts[0], &search, &replace, level)),
            count => {
                return Err(EditError::Ambiguous {
                    block: number,
                    count,
                    lines: starts.iter().map(|s| s + 1).collect(),
                });
            }
        }
    }
    Err(EditError::NoMatch {
        block: number,
        blocks: total,
        closest: closest_match(&lines, &search),
    })
}

/// Replaces `search.len()` lines at `start` with `replace`, keeping the file's line endings and
/// its final-newline state, and re-indenting when the match ignored indentation.
fn splice(
    text: &str,
    lines: &[Line<'_>],
    start: usize,
    search: &[&str],
    replace: &[&str],
    level: Level,
) -> String {
    let crlf = text.contains("\r\n");
    let eol = if crlf { "\r\n" } else { "\n" };
    let end = start + search.len();
    let ends_with_newline = text.ends_with('\n');

    let reindent = if level == Level::Indentation {
        indent_shift(lines, start, search)
    } else {
        None
    };
    let mut out =
        String::with_capacity(text.len() + replace.iter().map(|l| l.len() + 2).sum::<usize>());
    let push_line = |out: &mut String, line: &str| {
        out.push_str(line);
        out.push('\n');
    };
    for line in &lines[..start] {
        push_line(&mut out, line.text);
    }
    for line in replace {
        // A replacement line keeps its `\r` out: the file's own ending is applied below.
        let line = line.strip_suffix('\r').unwrap_or(line);
        let shifted = match &reindent {
            Some(shift) if !line.trim().is_empty() => shift.apply(line),
            _ => line.to_owned(),
        };
        if crlf {
            out.push_str(&shifted);
            out.push_str(eol);
        } else {
            push_line(&mut out, &shifted);
        }
    }
    for line in &lines[end..] {
        push_line(&mut out, line.text);
    }
    // `lines` kept `\r` in the text of CRLF lines; the pushes above add `\n` after it, so only
    // the replacement lines needed the explicit ending. A file without a final newline keeps
    // lacking one.
    if !ends_with_newline {
        if out.ends_with(eol) {
            out.truncate(out.len() - eol.len());
        } else if out.ends_with('\n') {
            out.pop();
        }
    }
    out
}

/// How to move replacement lines from the SEARCH's indentation to the file's.
enum Shift {
    Add(String),
    Remove(String),
}

impl Shift {
    fn apply(&self, line: &str) -> String {
        match self {
            Shift::Add(prefix) => format!("{prefix}{line}"),
            Shift::Remove(prefix) => line
                .strip_prefix(prefix.as_str())
                .unwrap_or(line)
                .to_owned(),
        }
    }
}

fn leading_ws(s: &str) -> &str {
    &s[..s.len() - s.trim_start().len()]
}

fn indent_shift(lines: &[Line<'_>], start: usize, search: &[&str]) -> Option<Shift> {
    let (i, s) = search
        .iter()
        .enumerate()
        .find(|(_, s)| !s.trim().is_empty())?;
    let file_ws = leading_ws(lines[start + i].text);
    let search_ws = leading_ws(s);
    if let Some(extra) = file_ws.strip_suffix(search_ws).filter(|e| !e.is_empty()) {
        Some(Shift::Add(extra.to_owned()))
    } else {
        search_ws
            .strip_suffix(file_ws)
            .filter(|e| !e.is_empty())
            .map(|extra| Shift::Remove(extra.to_owned()))
    }
}

/// Above this many (windows × SEARCH characters), similarity is judged per line instead of per
/// character, so a failed edit on a huge file still answers quickly.
const CHAR_DIFF_BUDGET: usize = 2_000_000;

fn closest_match(lines: &[Line<'_>], search: &[&str]) -> Option<Box<ClosestMatch>> {
    if lines.is_empty() {
        return None;
    }
    let width = search.len().min(lines.len());
    let needle: String = search
        .iter()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("\n");
    let windows = lines.len() - width + 1;
    let per_char = windows.saturating_mul(needle.len().max(1)) <= CHAR_DIFF_BUDGET;
    let mut best: Option<(f32, usize)> = None;
    for start in 0..windows {
        let window: Vec<&str> = lines[start..start + width]
            .iter()
            .map(|l| l.text.trim())
            .collect();
        let score = if per_char {
            TextDiff::from_chars(needle.as_str(), window.join("\n").as_str()).ratio()
        } else {
            let same = window
                .iter()
                .zip(search)
                .filter(|(w, s)| **w == s.trim())
                .count();
            same as f32 / width as f32
        };
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, start));
        }
    }
    let (similarity, start) = best?;
    // Below this the "closest" lines are noise, and showing them would mislead the agent.
    if similarity < 0.5 {
        return None;
    }
    let region = &lines[start..start + width];
    let first_difference = search
        .iter()
        .zip(region)
        .enumerate()
        .find_map(|(i, (s, f))| {
            (s.trim_end() != f.text.trim_end()).then(|| {
                (
                    i + 1,
                    s.to_string(),
                    start + i + 1,
                    f.text.trim_end_matches('\r').to_string(),
                )
            })
        });
    let text = region
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{:>5} | {}\n", start + i + 1, l.text.trim_end_matches('\r')))
        .collect();
    Some(Box::new(ClosestMatch {
        start_line: start + 1,
        end_line: start + width,
        similarity,
        first_difference,
        text,
    }))
}

impl fmt::Display for SearchReplace {
    /// The block in the format the prompt asks for, so a block can be shown back to a model.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "<<<<<<< SEARCH")?;
        f.write_str(&self.search)?;
        if !self.search.is_empty() && !self.search.ends_with('\n') {
            writeln!(f)?;
        }
        writeln!(f, "=======")?;
        f.write_str(&self.replace)?;
        if !self.replace.is_empty() && !self.replace.ends_with('\n') {
            writeln!(f)?;
        }
        writeln!(f, ">>>>>>> REPLACE")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sr(search: &str, replace: &str) -> Edit {
        Edit::SearchReplace {
            blocks: vec![SearchReplace {
                search: search.into(),
                replace: replace.into(),
            }],
        }
    }

    const FILE: &str = "def f():\n    a = 1\n    return a\n\ndef g():\n    return 2\n";

    #[test]
    fn exact_match_replaces_only_the_block() {
        let out = apply_edit(Some(FILE), &sr("    a = 1\n", "    a = 10\n")).unwrap();
        assert_eq!(out, FILE.replace("a = 1\n", "a = 10\n"));
    }

    #[test]
    fn trailing_whitespace_is_tolerated() {
        let out = apply_edit(
            Some(FILE),
            &sr("def g():   \n    return 2\t\n", "def g():\n    return 3\n"),
        )
        .unwrap();
        assert!(out.ends_with("def g():\n    return 3\n"), "{out}");
    }

    #[test]
    fn indentation_is_tolerated_and_replacement_reindented() {
        // The model quoted the body without its 4-space indentation.
        let out = apply_edit(
            Some(FILE),
            &sr("a = 1\nreturn a\n", "a = 1\nif a:\n    return a\n"),
        )
        .unwrap();
        assert_eq!(
            out,
            "def f():\n    a = 1\n    if a:\n        return a\n\ndef g():\n    return 2\n"
        );
        // And quoted too deep.
        let out = apply_edit(Some(FILE), &sr("        return 2\n", "        return 4\n")).unwrap();
        assert!(out.ends_with("def g():\n    return 4\n"), "{out}");
    }

    #[test]
    fn ambiguous_search_is_refused_with_line_numbers() {
        let text = "x = 1\ny = 2\nx = 1\n";
        let err = apply_edit(Some(text), &sr("x = 1\n", "x = 3\n")).unwrap_err();
        assert_eq!(
            err,
            EditError::Ambiguous {
                block: 1,
                count: 2,
                lines: vec![1, 3]
            }
        );
        assert!(err.to_string().contains("lines 1, 3"), "{err}");
    }

    #[test]
    fn no_match_names_block_and_closest_lines_and_changes_nothing() {
        let edit = Edit::SearchReplace {
            blocks: vec![
                SearchReplace {
                    search: "    a = 1\n".into(),
                    replace: "    a = 5\n".into(),
                },
                SearchReplace {
                    search: "def g():\n    return 22\n".into(),
                    replace: "def g():\n    return 3\n".into(),
                },
            ],
        };
        let err = apply_edit(Some(FILE), &edit).unwrap_err();
        let EditError::NoMatch {
            block,
            blocks,
            closest: Some(c),
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((*block, *blocks), (2, 2));
        assert_eq!((c.start_line, c.end_line), (5, 6));
        assert_eq!(
            c.first_difference,
            Some((2, "    return 22".into(), 6, "    return 2".into()))
        );
        let msg = err.to_string();
        assert!(
            msg.contains("block 2 of 2") && msg.contains("lines 5-6"),
            "{msg}"
        );
    }

    #[test]
    fn unrelated_search_reports_no_closest() {
        let err = apply_edit(Some(FILE), &sr("zzzzzzzzzzzzzz qqqqqqqq\n", "x\n")).unwrap_err();
        assert!(
            matches!(err, EditError::NoMatch { closest: None, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn empty_search_creates_but_does_not_clobber() {
        assert_eq!(apply_edit(None, &sr("", "new\n")).unwrap(), "new\n");
        assert_eq!(apply_edit(Some(""), &sr("", "new\n")).unwrap(), "new\n");
        assert_eq!(
            apply_edit(Some(FILE), &sr("", "new\n")).unwrap_err(),
            EditError::EmptySearch { block: 1 }
        );
        assert_eq!(
            apply_edit(None, &sr("x\n", "y\n")).unwrap_err(),
            EditError::FileMissing { block: 1 }
        );
    }

    #[test]
    fn keeps_crlf_and_missing_final_newline() {
        let text = "a\r\nb\r\nc";
        let out = apply_edit(Some(text), &sr("b\n", "B\n")).unwrap();
        assert_eq!(out, "a\r\nB\r\nc");
        let out = apply_edit(Some(text), &sr("c\n", "C\n")).unwrap();
        assert_eq!(out, "a\r\nb\r\nC");
        let out = apply_edit(Some("x\ny"), &sr("y", "z")).unwrap();
        assert_eq!(out, "x\nz");
    }

    #[test]
    fn deleting_lines() {
        let out = apply_edit(Some("a\nb\nc\n"), &sr("b\n", "")).unwrap();
        assert_eq!(out, "a\nc\n");
    }

    #[test]
    fn whole_file_replacement() {
        let edit = Edit::Replace {
            content: "all new".into(),
        };
        assert_eq!(apply_edit(Some(FILE), &edit).unwrap(), "all new");
        assert_eq!(apply_edit(None, &edit).unwrap(), "all new");
    }

    #[test]
    fn parses_blocks_among_prose_and_fences() {
        let answer = "I'll fix both.\n\n```python\n<<<<<<< SEARCH\n    a = 1\n=======\n    a = 2\n>>>>>>> REPLACE\n```\n\nand\n\n<<<<<<<SEARCH\n    return 2\n=======\n>>>>>>> REPLACE\n";
        let edit = Edit::parse_search_replace(answer).unwrap();
        let Edit::SearchReplace { blocks } = &edit else {
            panic!()
        };
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].search, "    a = 1\n");
        assert_eq!(blocks[1].replace, "");
        let out = apply_edit(Some(FILE), &edit).unwrap();
        assert_eq!(out, "def f():\n    a = 2\n    return a\n\ndef g():\n");
        // Display writes the same format back.
        let again = Edit::parse_search_replace(&blocks[0].to_string()).unwrap();
        assert_eq!(
            again,
            Edit::SearchReplace {
                blocks: vec![blocks[0].clone()]
            }
        );
    }

    #[test]
    fn parse_errors_are_located() {
        assert_eq!(
            Edit::parse_search_replace("just prose\n"),
            Err(EditError::NoBlocks)
        );
        let unclosed = "<<<<<<< SEARCH\na\n=======\nb\n";
        assert!(matches!(
            Edit::parse_search_replace(unclosed),
            Err(EditError::Parse { line: 1, .. })
        ));
        let no_divider = "x\n<<<<<<< SEARCH\na\n>>>>>>> REPLACE\n";
        assert!(matches!(
            Edit::parse_search_replace(no_divider),
            Err(EditError::Parse { line: 4, .. })
        ));
        let stray = "=======\n";
        assert!(matches!(
            Edit::parse_search_replace(stray),
            Err(EditError::Parse { line: 1, .. })
        ));
    }

    #[test]
    fn later_blocks_see_earlier_results_and_failure_is_atomic() {
        let edit = Edit::SearchReplace {
            blocks: vec![
                SearchReplace {
                    search: "a\n".into(),
                    replace: "b\n".into(),
                },
                SearchReplace {
                    search: "b\n".into(),
                    replace: "c\n".into(),
                },
            ],
        };
        assert_eq!(apply_edit(Some("a\n"), &edit).unwrap(), "c\n");
        let edit = Edit::SearchReplace {
            blocks: vec![
                SearchReplace {
                    search: "a\n".into(),
                    replace: "b\n".into(),
                },
                SearchReplace {
                    search: "zzz\n".into(),
                    replace: "c\n".into(),
                },
            ],
        };
        assert!(apply_edit(Some("a\n"), &edit).is_err());
    }
}
