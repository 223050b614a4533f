//! A coaching answer: its sections, what it is about, where it came from.
//!
//! The offline composer builds one; the LLM path wraps one around the streamed
//! text. Invariant: [`Answer::to_markdown`] is the only way an answer becomes
//! text (the renderer styles that text for a terminal), and `--json` serialises
//! the same struct — the three outputs never disagree.

use serde::Serialize;

use crate::calibrate::{Calibration, Level, Mode};
use crate::classify::QuestionKind;

/// Which of the parts an answer section is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// 1. What the learner got right.
    Acknowledge,
    /// 2. The gap.
    Gap,
    /// 3. Guiding questions.
    Questions,
    /// 4. A strategic hint.
    Hint,
    /// 5. A partial pattern with gaps.
    Pattern,
    /// 6. Concrete next steps, with an experiment.
    NextSteps,
    /// Discovery: what the learner discovered.
    Discovery,
    /// Discovery: the broader concept and the next phase.
    Connection,
    /// The code the coach looked at.
    Code,
    /// The LLM's whole answer (LLM path).
    Text,
}

/// One section of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Which part it is.
    pub part: Part,
    /// Its heading.
    pub title: String,
    /// Its Markdown body.
    pub body: String,
    /// For `questions`: the questions, one per item (also in `body`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
}

/// The concept an answer is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConceptRef {
    /// Concept id.
    pub id: String,
    /// Title.
    pub title: String,
    /// The lesson section that teaches it.
    pub section: String,
}

/// What the coach read to answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// The lesson file.
    Lesson {
        /// Its path.
        path: String,
        /// The section pointed at.
        section: String,
    },
    /// Lines of a learner file.
    File {
        /// `path:first-last`.
        location: String,
        /// Why it was read (`named`, `changed`, `program`).
        reason: String,
        /// The function shown, and why the coach chose it.
        #[serde(skip_serializing_if = "Option::is_none")]
        function: Option<String>,
    },
    /// The journal.
    Journal {
        /// Its path.
        path: String,
        /// Entries for this lesson.
        entries: usize,
    },
    /// A check result.
    Check {
        /// Objective id.
        objective: String,
        /// Passed?
        passed: bool,
        /// The measured figure.
        figure: String,
        /// The target.
        target: String,
    },
    /// Evidence for the concept choice.
    Evidence {
        /// What was seen.
        detail: String,
    },
}

/// A complete coaching answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The lesson number.
    pub lesson: u32,
    /// Guide or discovery.
    pub mode: Mode,
    /// The kind of question.
    pub kind: QuestionKind,
    /// The concept.
    pub concept: ConceptRef,
    /// The calibration level given.
    pub level: Level,
    /// The whole calibration decision.
    pub calibration: Calibration,
    /// The sections, in order.
    pub sections: Vec<Section>,
    /// What was read.
    pub sources: Vec<Source>,
    /// `offline` or `llm`.
    pub engine: &'static str,
    /// A one-line notice (the LLM fallback), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// Short tags of what was given, for the journal.
    #[serde(skip)]
    pub given: Vec<String>,
}

impl Answer {
    /// The section of `part`, if present.
    pub fn section(&self, part: Part) -> Option<&Section> {
        self.sections.iter().find(|s| s.part == part)
    }

    /// The answer as Markdown: a title line, then `## heading` + body per section.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let what = match self.mode {
            Mode::Guide => format!("{} · level {}", self.kind.label(), self.level as u8),
            Mode::Discovery => "discovery".to_string(),
        };
        out.push_str(&format!(
            "# Coach · lesson {} · {} ({what})\n",
            self.lesson, self.concept.title
        ));
        for s in &self.sections {
            out.push_str(&format!("\n## {}\n\n{}\n", s.title, s.body.trim_end()));
        }
        out
    }

    /// The answer as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// A fenced code block found in Markdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBlock {
    /// The info string after the opening fence.
    pub info: String,
    /// The lines between the fences.
    pub lines: Vec<String>,
    /// Whether the closing fence was found.
    pub closed: bool,
}

impl CodeBlock {
    /// Whether this block holds a gap (`TODO`).
    pub fn has_gap(&self) -> bool {
        self.lines.iter().any(|l| l.contains("TODO"))
    }

    /// Whether the guard refuses it: more than `max_lines` lines and no gap.
    pub fn is_solution(&self, max_lines: usize) -> bool {
        self.lines.len() > max_lines && !self.has_gap()
    }
}

/// The opening fence of a line (``` or ~~~, up to 3 spaces of indent), if any.
pub fn fence_of(line: &str) -> Option<&str> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let t = &line[indent..];
    for f in ["```", "~~~"] {
        if t.starts_with(f) {
            let ch = f.as_bytes()[0] as char;
            let n = t.chars().take_while(|c| *c == ch).count();
            return Some(&t[..n]);
        }
    }
    None
}

/// Every fenced code block of a Markdown text.
pub fn code_blocks(markdown: &str) -> Vec<CodeBlock> {
    let mut out = Vec::new();
    let mut open: Option<(String, CodeBlock)> = None;
    for line in markdown.lines() {
        match open.take() {
            None => {
                if let Some(f) = fence_of(line) {
                    let info = line.trim_start()[f.len()..].trim().to_string();
                    open = Some((
                        f.to_string(),
                        CodeBlock {
                            info,
                            lines: vec![],
                            closed: false,
                        },
                    ));
                }
            }
            Some((fence, mut block)) => {
                let t = line.trim();
                if t.starts_with(&fence)
                    && t.trim_start_matches(fence.as_bytes()[0] as char).is_empty()
                {
                    block.closed = true;
                    out.push(block);
                } else {
                    block.lines.push(line.to_string());
                    open = Some((fence, block));
                }
            }
        }
    }
    if let Some((_, block)) = open {
        out.push(block);
    }
    out
}

/// Splits an LLM's Markdown answer into sections at `#`/`##` headings (text
/// before the first heading becomes a section titled "Answer").
pub fn sections_from_markdown(markdown: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut title = "Answer".to_string();
    let mut body = String::new();
    let mut in_code = false;
    let flush = |title: &str, body: &mut String, out: &mut Vec<Section>| {
        if !body.trim().is_empty() {
            out.push(Section {
                part: Part::Text,
                title: title.to_string(),
                body: body.trim().to_string(),
                items: vec![],
            });
        }
        body.clear();
    };
    for line in markdown.lines() {
        if fence_of(line).is_some() {
            in_code = !in_code;
        }
        let t = line.trim_start();
        if !in_code && (t.starts_with("# ") || t.starts_with("## ")) {
            flush(&title, &mut body, &mut out);
            title = t.trim_start_matches('#').trim().replace("**", "");
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    flush(&title, &mut body, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_and_judges_them() {
        let md = "text\n```python\na\nb\n```\n~~~\n1\n2\n3\n4\n5\n6\n7\n~~~\n```\nunclosed TODO";
        let blocks = code_blocks(md);
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].info, "python");
        assert!(!blocks[0].is_solution(6));
        assert!(blocks[1].is_solution(6));
        assert!(!blocks[2].closed);
        assert!(blocks[2].has_gap());
    }
}
