//! Capturing a command's output: capped (head and tail kept) and streamed live.

use serde::{Deserialize, Serialize};

/// Which output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Receives output as it arrives, chunk by chunk (raw bytes, not split into lines), for live
/// events. Called from the task running the command: keep it quick (send on a channel).
///
/// Any `Fn(OutputStream, &[u8]) + Send + Sync` closure is a sink.
pub trait OutputSink: Send + Sync {
    /// One chunk of output.
    fn output(&self, stream: OutputStream, data: &[u8]);
}

impl<F: Fn(OutputStream, &[u8]) + Send + Sync> OutputSink for F {
    fn output(&self, stream: OutputStream, data: &[u8]) {
        self(stream, data);
    }
}

/// One stream's captured output.
///
/// When the command wrote more than the cap, the first quarter of the cap and the last three
/// quarters are kept (errors tend to come last) and `text` has a marker line between them
/// saying how many bytes were dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedOutput {
    /// The kept output, decoded as UTF-8 (invalid sequences replaced).
    pub text: String,
    /// Everything the command wrote to this stream, in bytes.
    pub total_bytes: u64,
    /// Bytes not kept.
    pub dropped_bytes: u64,
}

impl CapturedOutput {
    /// Whether anything was dropped.
    pub fn truncated(&self) -> bool {
        self.dropped_bytes > 0
    }
}

/// The marker put between head and tail of a truncated stream.
pub fn truncation_marker(dropped: u64) -> String {
    format!("\n[... {dropped} bytes of output dropped ...]\n")
}

/// Keeps the head and tail of a byte stream within a fixed budget.
#[derive(Debug)]
pub(crate) struct CappedBuffer {
    head: Vec<u8>,
    head_cap: usize,
    /// Holds up to `2 * tail_cap` bytes between compactions, so appending stays amortised O(1).
    tail: Vec<u8>,
    tail_cap: usize,
    total: u64,
}

impl CappedBuffer {
    pub(crate) fn new(cap: usize) -> Self {
        let head_cap = cap / 4;
        Self {
            head: Vec::new(),
            head_cap,
            tail: Vec::new(),
            tail_cap: cap - head_cap,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.head.len() < self.head_cap {
            let n = (self.head_cap - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        if data.is_empty() {
            return;
        }
        if data.len() >= self.tail_cap {
            self.tail.clear();
            self.tail
                .extend_from_slice(&data[data.len() - self.tail_cap..]);
            return;
        }
        self.tail.extend_from_slice(data);
        if self.tail.len() > 2 * self.tail_cap {
            let excess = self.tail.len() - self.tail_cap;
            self.tail.drain(..excess);
        }
    }

    pub(crate) fn finish(mut self) -> CapturedOutput {
        if self.tail.len() > self.tail_cap {
            let excess = self.tail.len() - self.tail_cap;
            self.tail.drain(..excess);
        }
        let kept = (self.head.len() + self.tail.len()) as u64;
        let dropped = self.total - kept;
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if dropped > 0 {
            text.push_str(&truncation_marker(dropped));
        }
        text.push_str(&String::from_utf8_lossy(&self.tail));
        CapturedOutput {
            text,
            total_bytes: self.total,
            dropped_bytes: dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut b = CappedBuffer::new(100);
        b.push(b"hello ");
        b.push(b"world");
        let out = b.finish();
        assert_eq!(out.text, "hello world");
        assert_eq!((out.total_bytes, out.dropped_bytes), (11, 0));
        assert!(!out.truncated());
    }

    #[test]
    fn large_output_keeps_head_and_tail() {
        let mut b = CappedBuffer::new(40);
        b.push(b"0123456789");
        for _ in 0..1000 {
            b.push(b"xxxxxxxxxx");
        }
        b.push(b"the end: error at line 3");
        let out = b.finish();
        assert_eq!(out.total_bytes, 10 + 10_000 + 24);
        assert_eq!(out.dropped_bytes, out.total_bytes - 40);
        assert!(out.text.starts_with("0123456789"));
        assert!(out.text.ends_with("the end: error at line 3"));
        assert!(
            out.text
                .contains(&format!("[... {} bytes", out.dropped_bytes))
        );
    }

    #[test]
    fn one_huge_chunk() {
        let mut b = CappedBuffer::new(8);
        b.push(&[b'a'; 1000]);
        b.push(b"bcd");
        let out = b.finish();
        assert_eq!(out.dropped_bytes, 1003 - 8);
        assert!(out.text.starts_with("aa\n"));
        assert!(out.text.ends_with("aaabcd"));
    }
}
