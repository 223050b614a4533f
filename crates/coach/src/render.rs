//! Markdown for the terminal: bold headings, indented code, plain when piped.
//!
//! Two styles: [`Style::Terminal`] (stdout is a TTY and `NO_COLOR` is unset)
//! turns headings and `**bold**` into ANSI bold, drops code fences and indents
//! code by four spaces; [`Style::Plain`] leaves the Markdown exactly as it is —
//! Markdown is plain text, and tools and pagers read it as such. Invariant: the
//! plain style is byte-for-byte the input (streamed deltas pass through
//! untouched, so streaming is visible as it arrives); the terminal style only
//! works on whole lines, so it holds back at most one partial line.

use std::io::IsTerminal;

/// How to print Markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// ANSI-styled for a terminal.
    Terminal,
    /// The Markdown source, untouched.
    Plain,
}

impl Style {
    /// Terminal when stdout is a TTY and `NO_COLOR` is unset or empty.
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if std::io::stdout().is_terminal() && !no_color {
            Style::Terminal
        } else {
            Style::Plain
        }
    }
}

const BOLD: &str = "\x1b[1m";
const CODE: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

/// Renders a whole Markdown text.
pub fn render(markdown: &str, style: Style) -> String {
    let mut r = StreamRenderer::new(style);
    let mut out = r.push(markdown);
    out.push_str(&r.finish());
    out
}

/// Renders Markdown that arrives in pieces.
#[derive(Debug, Clone)]
pub struct StreamRenderer {
    style: Style,
    /// The current partial line (terminal style only).
    pending: String,
    /// Inside a fenced code block (terminal style only).
    in_code: bool,
}

impl StreamRenderer {
    /// A renderer in `style`.
    pub fn new(style: Style) -> StreamRenderer {
        StreamRenderer {
            style,
            pending: String::new(),
            in_code: false,
        }
    }

    /// Feeds a piece; returns what can be printed now.
    pub fn push(&mut self, piece: &str) -> String {
        if self.style == Style::Plain {
            return piece.to_string();
        }
        self.pending.push_str(piece);
        let mut out = String::new();
        while let Some(nl) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=nl).collect();
            out.push_str(&self.line(line.trim_end_matches('\n')));
            out.push('\n');
        }
        out
    }

    /// Flushes the last partial line.
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            return String::new();
        }
        let line = std::mem::take(&mut self.pending);
        self.line(&line)
    }

    fn line(&mut self, line: &str) -> String {
        if crate::answer::fence_of(line).is_some() {
            self.in_code = !self.in_code;
            return String::new();
        }
        if self.in_code {
            return format!("    {CODE}{line}{RESET}");
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            let text = trimmed.trim_start_matches('#').trim();
            return format!("{BOLD}{}{RESET}", strip_bold(text));
        }
        inline(line)
    }
}

fn strip_bold(s: &str) -> String {
    s.replace("**", "")
}

/// `**bold**` → ANSI bold, `` `code` `` → ANSI colour.
fn inline(line: &str) -> String {
    let mut out = String::new();
    let mut bold = false;
    let mut code = false;
    let mut rest = line;
    while !rest.is_empty() {
        if !code && rest.starts_with("**") {
            out.push_str(if bold { RESET } else { BOLD });
            bold = !bold;
            rest = &rest[2..];
        } else if rest.starts_with('`') {
            out.push_str(if code { RESET } else { CODE });
            code = !code;
            rest = &rest[1..];
        } else {
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    if bold || code {
        out.push_str(RESET);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_is_the_source() {
        let md = "# T\n\n**b** `c`\n```py\nx\n```\n";
        assert_eq!(render(md, Style::Plain), md);
    }

    #[test]
    fn terminal_bolds_headings_and_indents_code() {
        let out = render(
            "## Hint\n```python\nx = 1\n```\nsee **this**",
            Style::Terminal,
        );
        assert!(out.starts_with("\x1b[1mHint\x1b[0m\n"));
        assert!(out.contains("    \x1b[36mx = 1\x1b[0m\n"));
        assert!(!out.contains("```"));
        assert!(out.ends_with("see \x1b[1mthis\x1b[0m"));
    }
}
