//! The guard of rule 6: no long code block without a gap reaches the learner.
//!
//! Streaming and judging code blocks pull in opposite directions: a block can
//! only be judged once it is complete. The choice made here: **prose streams
//! immediately, code blocks are held until their fence closes.** A
//! [`CodeGate`] splits the incoming text into [`Piece`]s — prose as soon as a
//! line cannot be a fence, a whole fenced block when it closes (or at the end
//! of the stream, if it never closes). The client then prints a block that is
//! short or has a `TODO` at once, and holds back one that is a solution
//! (more than [`MAX_LINES`] lines, no `TODO`): a one-line placeholder is printed
//! in its place, the rest of the answer keeps streaming, and after the stream
//! the held blocks are sent back for revision once; each revised block that
//! passes the guard is printed under a "revised" heading, one that does not is
//! replaced by the lesson's partial pattern.
//!
//! Invariant: every byte pushed comes out exactly once, in order, as prose or
//! inside a block — the gate holds at most one partial line of prose (only
//! while it could still become a fence) and one open block.

use crate::answer::{CodeBlock, code_blocks, fence_of};

/// A block longer than this many lines without a `TODO` is a solution.
pub const MAX_LINES: usize = 6;

/// The placeholder printed where a solution block was held back.
pub const HELD_PLACEHOLDER: &str =
    "[a complete solution was held back here — asking the coach for a version with gaps]";

/// What the gate lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Prose, printable now.
    Prose(String),
    /// A complete fenced block: its raw text (fences included) and its parse.
    Block {
        /// The raw Markdown, fences included, ending with a newline when closed.
        raw: String,
        /// The parsed block.
        block: CodeBlock,
    },
}

/// Splits streamed Markdown into prose and whole code blocks.
#[derive(Debug, Default)]
pub struct CodeGate {
    /// The current line, while it may still become a fence (not yet emitted).
    held_line: String,
    /// Whether the current line was already judged prose (and partly emitted).
    line_is_prose: bool,
    /// The raw text of the open block, fences included.
    block: Option<(String, String)>,
}

impl CodeGate {
    /// An empty gate.
    pub fn new() -> CodeGate {
        CodeGate::default()
    }

    /// Feeds a delta; returns what can be let through now.
    pub fn push(&mut self, delta: &str) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut prose = String::new();
        for ch in delta.chars() {
            if let Some((fence, raw)) = self.block.as_mut() {
                raw.push(ch);
                if ch == '\n' {
                    let last_line = raw[..raw.len() - 1].rsplit('\n').next().unwrap_or("");
                    let t = last_line.trim();
                    let closes = raw.matches('\n').count() > 1
                        && t.starts_with(fence.as_str())
                        && t.trim_start_matches(fence.chars().next().unwrap_or('`'))
                            .is_empty();
                    if closes {
                        let raw = std::mem::take(raw);
                        self.block = None;
                        flush_prose(&mut prose, &mut out);
                        out.push(block_piece(raw));
                    }
                }
                continue;
            }
            if self.line_is_prose {
                prose.push(ch);
                if ch == '\n' {
                    self.line_is_prose = false;
                }
                continue;
            }
            self.held_line.push(ch);
            if ch == '\n' {
                let line = std::mem::take(&mut self.held_line);
                match fence_of(line.trim_end_matches(['\n', '\r'])) {
                    Some(f) => {
                        flush_prose(&mut prose, &mut out);
                        self.block = Some((f.to_string(), line));
                    }
                    None => prose.push_str(&line),
                }
            } else if !could_be_fence(&self.held_line) {
                prose.push_str(&std::mem::take(&mut self.held_line));
                self.line_is_prose = true;
            }
        }
        flush_prose(&mut prose, &mut out);
        out
    }

    /// Ends the stream: a held partial line is prose; an unclosed block is a block.
    pub fn finish(&mut self) -> Vec<Piece> {
        let mut out = Vec::new();
        if let Some((_, raw)) = self.block.take() {
            out.push(block_piece(raw));
        }
        if !self.held_line.is_empty() {
            let line = std::mem::take(&mut self.held_line);
            if fence_of(&line).is_some() {
                out.push(block_piece(line));
            } else {
                out.push(Piece::Prose(line));
            }
        }
        self.line_is_prose = false;
        out
    }
}

fn flush_prose(prose: &mut String, out: &mut Vec<Piece>) {
    if !prose.is_empty() {
        out.push(Piece::Prose(std::mem::take(prose)));
    }
}

fn block_piece(raw: String) -> Piece {
    let block = code_blocks(&raw).into_iter().next().unwrap_or(CodeBlock {
        info: String::new(),
        lines: vec![],
        closed: false,
    });
    Piece::Block { raw, block }
}

/// Whether a partial line (no newline yet) may still turn out to be a fence.
fn could_be_fence(partial: &str) -> bool {
    let indent = partial.len() - partial.trim_start_matches(' ').len();
    if indent > 3 {
        return false;
    }
    let rest = &partial[indent..];
    rest.is_empty()
        || rest.chars().all(|c| c == '`')
        || rest.chars().all(|c| c == '~')
        || rest.starts_with("```")
        || rest.starts_with("~~~")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(deltas: &[&str]) -> Vec<Piece> {
        let mut g = CodeGate::new();
        let mut out = Vec::new();
        for d in deltas {
            out.extend(g.push(d));
        }
        out.extend(g.finish());
        out
    }

    fn joined(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Prose(s) => s.as_str(),
                Piece::Block { raw, .. } => raw.as_str(),
            })
            .collect()
    }

    #[test]
    fn prose_passes_at_once_and_blocks_wait_for_their_fence() {
        let mut g = CodeGate::new();
        assert_eq!(g.push("Hello wor"), vec![Piece::Prose("Hello wor".into())]);
        assert_eq!(g.push("ld\n``"), vec![Piece::Prose("ld\n".into())]);
        assert_eq!(g.push("`py\nx = 1\n"), vec![]);
        let out = g.push("```\nafter");
        assert_eq!(out.len(), 2);
        assert!(
            matches!(&out[0], Piece::Block { block, .. } if block.lines == vec!["x = 1"] && block.closed)
        );
        assert_eq!(out[1], Piece::Prose("after".into()));
    }

    #[test]
    fn every_byte_comes_out_once_in_order() {
        let text = "a\n  ```rust\nfn f() {}\n  ```\nb `inline` c\n~~~\nopen";
        for size in 1..8 {
            let chunks: Vec<String> = text
                .chars()
                .collect::<Vec<_>>()
                .chunks(size)
                .map(|c| c.iter().collect())
                .collect();
            let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
            let pieces = run(&refs);
            assert_eq!(joined(&pieces), text, "chunk size {size}");
            let blocks = pieces
                .iter()
                .filter(|p| matches!(p, Piece::Block { .. }))
                .count();
            assert_eq!(blocks, 2, "chunk size {size}");
        }
    }
}
