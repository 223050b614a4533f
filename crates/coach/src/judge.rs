//! Judging an answer's code and structure: the one judge shared by the LLM
//! guard, the offline composer's tests and the evaluation suite.
//!
//! A code block is judged by what it *contains*, not by the word "TODO":
//! - **novel code** — lines of real code (not blank, not a comment, not a
//!   gap) that are neither in the lesson's partial pattern nor in the
//!   learner's own files: more than [`MAX_NOVEL_LINES`] is a solution;
//! - **a filled pattern** — a block that reproduces most of the lesson's
//!   pattern but has fewer gaps than it: the gaps were filled in;
//! - **the reference** — a block that covers half or more of the lines the
//!   learner is missing (the reference solution's lines that are not in their
//!   code) gives the gap away.
//!
//! [`structure`] checks the six parts by their headings (and at least two
//! questions). [`gap_outputs`] finds the names a pattern uses but leaves to a
//! gap, and [`redact_gap_outputs`] keeps a hint from assigning them, so that
//! hint + pattern never complete the code together.
//!
//! Invariant: pure functions of their text inputs — the same answer is always
//! judged the same way, offline, with a model, and in the evaluation.

use crate::answer::CodeBlock;
use crate::material::GAP_MARKER;

/// A block with more lines of new code than this is a solution.
pub const MAX_NOVEL_LINES: usize = 6;

/// Covering this share (or more) of the learner's missing lines gives the gap away.
pub const MAX_REFERENCE_SHARE: f64 = 0.5;

/// What the judge compares a block with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeContext {
    /// The lesson's partial patterns (every language): their lines are allowed.
    pub patterns: Vec<String>,
    /// The learner's own code: quoting it back is allowed.
    pub learner: Vec<String>,
    /// The reference solution's lines the learner's code is missing (may be empty).
    pub missing: Vec<String>,
}

/// Why a block is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many lines of code that the learner has not written and the lesson does not show.
    NovelCode {
        /// How many.
        lines: usize,
    },
    /// The lesson's pattern with its gaps filled in.
    FilledPattern,
    /// A long block without a gap that is not the learner's own code.
    GapFree {
        /// Its lines.
        lines: usize,
    },
    /// It covers too much of the reference solution the learner is missing.
    Reference {
        /// Missing lines covered.
        covered: usize,
        /// Missing lines in all.
        of: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NovelCode { lines } => write!(
                f,
                "{lines} lines of new code (more than {MAX_NOVEL_LINES}) outside `TODO` gaps"
            ),
            Refusal::FilledPattern => write!(f, "the lesson's pattern with its gaps filled in"),
            Refusal::GapFree { lines } => write!(
                f,
                "{lines} lines without a `TODO: YOUR CODE HERE` gap that are not the learner's code"
            ),
            Refusal::Reference { covered, of } => write!(
                f,
                "it writes {covered} of the {of} lines the learner still has to write"
            ),
        }
    }
}

/// A line reduced for comparison: trimmed, inner whitespace removed,
/// `self.`/`self.s.`/`&mut ` noise dropped, trailing `:`/`;`/`,` removed.
pub fn normalize(line: &str) -> String {
    let t = line.trim();
    let t = t.replace("self.s.", "").replace("self.", "");
    let squashed: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    squashed.trim_end_matches([':', ';', ',']).to_string()
}

/// Whether a line is real code: not blank, not only a comment, not a gap,
/// not a lone keyword or bracket.
pub fn is_real_code(line: &str) -> bool {
    let t = line.trim();
    if t.is_empty() || t.contains("TODO") || t.contains('…') || t == "..." {
        return false;
    }
    if t.starts_with('#') || t.starts_with("//") || t.starts_with("/*") || t.starts_with('*') {
        return false;
    }
    let n = normalize(t);
    !matches!(
        n.as_str(),
        "" | "}"
            | "{"
            | ")"
            | "]"
            | "});"
            | "})"
            | "try"
            | "else"
            | "pass"
            | "continue"
            | "break"
            | "}else{"
    )
}

fn line_set(texts: &[String]) -> std::collections::HashSet<String> {
    texts
        .iter()
        .flat_map(|t| t.lines())
        .filter(|l| is_real_code(l))
        .map(normalize)
        .collect()
}

/// Judges one code block; `Ok(())` when it may be shown.
pub fn judge_block(block: &CodeBlock, ctx: &CodeContext) -> Result<(), Refusal> {
    let known_pattern = line_set(&ctx.patterns);
    let learner = line_set(&ctx.learner);
    let real: Vec<String> = block
        .lines
        .iter()
        .filter(|l| is_real_code(l))
        .map(|l| normalize(l))
        .collect();
    let novel = real
        .iter()
        .filter(|l| !known_pattern.contains(*l) && !learner.contains(*l))
        .count();
    if novel > MAX_NOVEL_LINES {
        return Err(Refusal::NovelCode { lines: novel });
    }
    // A filled pattern: most of one pattern's code, fewer gaps than it has.
    let gaps = block.lines.iter().filter(|l| l.contains("TODO")).count();
    for p in &ctx.patterns {
        let p_lines: Vec<String> = p
            .lines()
            .filter(|l| is_real_code(l))
            .map(normalize)
            .collect();
        let p_gaps = p.lines().filter(|l| l.contains(GAP_MARKER)).count();
        if p_lines.len() < 3 || p_gaps == 0 {
            continue;
        }
        let shared = p_lines.iter().filter(|l| real.contains(l)).count();
        if shared * 10 >= p_lines.len() * 7 && gaps < p_gaps && real.len() > shared {
            return Err(Refusal::FilledPattern);
        }
    }
    // A long block without a real gap, unless it only quotes the learner or
    // the lesson. A gap is real when code follows it (the learner fills it in
    // place); a trailing `TODO` under complete code ("nothing left") is not,
    // unless the block adds next to nothing of its own.
    let code_after = |i: usize| block.lines[i + 1..].iter().any(|l| is_real_code(l));
    let empty_words = [
        "nothing left",
        "nothing to do",
        "none left",
        "done",
        "complete",
    ];
    let real_gap = block.lines.iter().enumerate().any(|(i, l)| {
        l.contains("TODO")
            && !empty_words.iter().any(|w| l.to_lowercase().contains(w))
            && (code_after(i) || novel <= MAX_NOVEL_LINES / 2)
    });
    if !real_gap && block.lines.len() > MAX_NOVEL_LINES && novel > 0 {
        return Err(Refusal::GapFree {
            lines: block.lines.len(),
        });
    }
    let (covered, of) = reference_coverage(&block.lines.join("\n"), &ctx.missing);
    if of > 0 && covered >= 2 && covered as f64 >= of as f64 * MAX_REFERENCE_SHARE {
        return Err(Refusal::Reference { covered, of });
    }
    Ok(())
}

/// Identifier tokens of a line, keywords dropped.
fn idents(line: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "if", "else", "elif", "while", "for", "in", "return", "await", "async", "def", "fn", "let",
        "mut", "try", "except", "break", "continue", "pass", "not", "and", "or", "is", "none",
        "self", "s", "true", "false", "some", "ok", "err", "match", "loop", "as", "with",
    ];
    line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_lowercase)
        .filter(|w| !KEYWORDS.contains(&w.as_str()))
        .collect()
}

/// How many of the `missing` reference lines `text` reproduces: a line counts
/// when its normalized form occurs in `text`, or when every identifier of it
/// (at least two) occurs in one line or sentence of `text` in the same order.
/// Returns (covered, considered).
pub fn reference_coverage(text: &str, missing: &[String]) -> (usize, usize) {
    let fragments: Vec<Vec<String>> = text
        .split(['\n', ';'])
        .flat_map(|l| l.split(". "))
        .map(idents)
        .filter(|f| !f.is_empty())
        .collect();
    let squashed: String = text.lines().map(normalize).collect::<Vec<_>>().join("\n");
    let mut covered = 0;
    let mut considered = 0;
    for m in missing {
        let want = idents(m);
        if want.len() < 2 {
            continue;
        }
        considered += 1;
        let n = normalize(m);
        let in_order = fragments.iter().any(|f| {
            let mut it = f.iter();
            want.iter().all(|w| it.any(|x| x == w))
        });
        if (n.len() >= 8 && squashed.contains(&n)) || in_order {
            covered += 1;
        }
    }
    (covered, considered)
}

/// Names a pattern uses but never assigns: what its gaps must produce
/// (`remaining` in `wait_for(queue.get(), remaining)`).
pub fn gap_outputs(pattern: &str) -> Vec<String> {
    let mut assigned: Vec<String> = Vec::new();
    for l in pattern.lines() {
        let t = l.trim();
        if t.contains("TODO") {
            continue;
        }
        // Parameters and bindings: `def f(a, b)`, `let x =`, `x =`, `for x in`.
        if let Some(rest) = t
            .strip_prefix("async def ")
            .or_else(|| t.strip_prefix("def "))
            .or_else(|| t.strip_prefix("async fn "))
            .or_else(|| t.strip_prefix("fn "))
        {
            assigned.extend(idents(rest));
            continue;
        }
        let t = t
            .strip_prefix("let mut ")
            .or_else(|| t.strip_prefix("let "))
            .unwrap_or(t);
        if let Some((lhs, rhs)) = t.split_once('=')
            && !rhs.starts_with('=')
            && !lhs.ends_with(['!', '<', '>', '='])
        {
            assigned.extend(idents(lhs));
        }
        if let Some(rest) = t.strip_prefix("for ")
            && let Some((vars, _)) = rest.split_once(" in ")
        {
            assigned.extend(idents(vars));
        }
        if let Some(rest) = t.strip_prefix("except ")
            && let Some((_, name)) = rest.split_once(" as ")
        {
            assigned.extend(idents(name));
        }
    }
    let mut used: Vec<String> = Vec::new();
    let mut after_gap = false;
    for l in pattern.lines() {
        if l.contains("TODO") {
            after_gap = true;
            continue;
        }
        if !after_gap || !is_real_code(l) {
            continue;
        }
        for w in idents(l) {
            if w.len() > 2 && !assigned.contains(&w) && !used.contains(&w) && !is_builtin(&w) {
                // Only plain names (not attributes or calls of modules): `x` in `f(x)`.
                let plain = l.contains(&format!("({w})"))
                    || l.contains(&format!(", {w})"))
                    || l.contains(&format!("({w},"))
                    || l.contains(&format!(" {w}\n"))
                    || l.trim_end().ends_with(&format!(" {w}"));
                if plain {
                    used.push(w);
                }
            }
        }
    }
    used
}

fn is_builtin(w: &str) -> bool {
    matches!(
        w,
        "len"
            | "print"
            | "range"
            | "list"
            | "dict"
            | "int"
            | "str"
            | "float"
            | "max"
            | "min"
            | "asyncio"
            | "time"
            | "json"
            | "tokio"
            | "vec"
            | "batch"
            | "item"
            | "queue"
            | "event"
    )
}

/// Replaces the right-hand side of an assignment to a gap output in `hint`
/// (`remaining = deadline - now`) by `…`, so the hint names the idea but the
/// expression stays the learner's to write. Returns the hint and whether it changed.
pub fn redact_gap_outputs(hint: &str, outputs: &[String]) -> (String, bool) {
    let mut out = hint.to_string();
    let mut changed = false;
    for name in outputs {
        let mut searched = 0;
        while let Some(pos) = out[searched..].find(name.as_str()).map(|p| p + searched) {
            let before_ok = out[..pos]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let rest = &out[pos + name.len()..];
            let eq = rest.trim_start();
            let is_assign = before_ok
                && eq.starts_with('=')
                && !eq.starts_with("==")
                && !eq[1..].trim_start().starts_with('…');
            if !is_assign {
                searched = pos + name.len();
                continue;
            }
            // The expression runs to the end of the clause.
            let expr_start = pos + name.len() + (rest.len() - eq.len()) + 1;
            let tail = &out[expr_start..];
            let end = [". ", ";", ",", "\n"]
                .iter()
                .filter_map(|d| tail.find(d))
                .min()
                .unwrap_or_else(|| tail.trim_end_matches('.').len());
            let replacement = " … (this expression is your gap)";
            out.replace_range(expr_start..expr_start + end, replacement);
            changed = true;
            searched = expr_start + replacement.len();
        }
    }
    (out, changed)
}

/// The six parts of a guiding answer.
pub const PARTS: [&str; 6] = [
    "acknowledge",
    "gap",
    "questions",
    "hint",
    "pattern",
    "next steps",
];

/// Which of the six parts a heading names (by its words), if any.
fn part_of(heading: &str) -> Option<usize> {
    let h = heading.to_lowercase();
    let table: [(&[&str], usize); 6] = [
        (
            &[
                "right",
                "acknowledg",
                "good so far",
                "what works",
                "already",
            ],
            0,
        ),
        (&["gap", "missing", "problem"], 1),
        (&["question"], 2),
        (&["hint"], 3),
        (&["pattern", "skeleton", "to complete", "partial"], 4),
        (&["next", "experiment", "try this", "steps"], 5),
    ];
    // Questions and hints first: "Questions to ask yourself" is not the gap.
    for idx in [2usize, 3, 4, 5, 0, 1] {
        if table[idx].0.iter().any(|w| h.contains(w)) {
            return Some(table[idx].1);
        }
    }
    None
}

/// The parts missing from a Markdown answer (by `#`/`##`/`###` headings, or
/// bold lead-ins such as `**Hint:**`); the questions part needs two `?`.
pub fn structure(markdown: &str) -> Vec<&'static str> {
    let mut found = [false; 6];
    let mut question_marks = 0;
    let mut current: Option<usize> = None;
    let mut in_code = false;
    for line in markdown.lines() {
        if crate::answer::fence_of(line).is_some() {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let t = line.trim_start();
        let heading = if t.starts_with('#') {
            Some(t.trim_start_matches('#').trim())
        } else if let Some(rest) = t.strip_prefix("**") {
            rest.split_once("**").map(|(h, _)| h)
        } else {
            None
        };
        if let Some(h) = heading
            && let Some(p) = part_of(h)
        {
            found[p] = true;
            current = Some(p);
            continue;
        }
        if current == Some(2) {
            question_marks += line.matches('?').count();
        }
    }
    if question_marks < 2 {
        found[2] = false;
    }
    PARTS
        .iter()
        .zip(found)
        .filter(|(_, f)| !f)
        .map(|(p, _)| *p)
        .collect()
}

/// Whether a discovery answer has its parts: what was discovered, at least
/// two explain-it-back questions, and where it leads next.
pub fn discovery_structure(markdown: &str) -> bool {
    let headings: Vec<String> = markdown
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('#'))
        .map(|l| l.to_lowercase())
        .collect();
    let has = |w: &[&str]| headings.iter().any(|h| w.iter().any(|x| h.contains(x)));
    has(&["discover"]) && has(&["next", "leads", "broader"]) && markdown.matches('?').count() >= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::code_blocks;

    const PATTERN: &str = "async def collect(queue, max_batch, max_wait):\n    loop = asyncio.get_running_loop()\n    batch = [await queue.get()]\n    deadline = loop.time() + max_wait\n    while len(batch) < max_batch:\n        # TODO: YOUR CODE HERE: how long may this wait still take?\n        try:\n            item = await asyncio.wait_for(queue.get(), remaining)\n        except TimeoutError:\n            break\n        batch.append(item)\n    return batch\n";

    fn block(text: &str) -> CodeBlock {
        code_blocks(&format!("```python\n{text}\n```"))
            .into_iter()
            .next()
            .unwrap_or(CodeBlock {
                info: String::new(),
                lines: vec![],
                closed: false,
            })
    }

    #[test]
    fn the_pattern_itself_passes_and_filled_in_it_does_not() {
        let ctx = CodeContext {
            patterns: vec![PATTERN.into()],
            ..Default::default()
        };
        assert_eq!(judge_block(&block(PATTERN), &ctx), Ok(()));
        let filled = PATTERN.replace(
            "# TODO: YOUR CODE HERE: how long may this wait still take?",
            "remaining = deadline - loop.time()",
        );
        assert_eq!(
            judge_block(&block(&filled), &ctx),
            Err(Refusal::FilledPattern)
        );
    }

    #[test]
    fn a_complete_solution_with_a_fake_todo_is_refused() {
        let solution = "async def collect(self, q):\n    loop = asyncio.get_running_loop()\n    batch = [await q.get()]\n    deadline = loop.time() + self.max_wait\n    while len(batch) < self.max_batch:\n        try:\n            batch.append(q.get_nowait())\n            continue\n        except asyncio.QueueEmpty:\n            pass\n        remaining = deadline - loop.time()\n        if remaining <= 0:\n            break\n        try:\n            batch.append(await asyncio.wait_for(q.get(), remaining))\n        except asyncio.TimeoutError:\n            break\n    return batch\n# TODO: YOUR CODE HERE (nothing left)";
        // The old guard's rule (a long block without the word TODO) let it through.
        assert!(!block(solution).is_solution(MAX_NOVEL_LINES));
        let ctx = CodeContext {
            patterns: vec![PATTERN.into()],
            ..Default::default()
        };
        assert!(matches!(
            judge_block(&block(solution), &ctx),
            Err(Refusal::NovelCode { .. })
        ));
        // With a learner who already wrote two of its lines, the new code is
        // six lines — the trailing fake gap still does not make it a pattern.
        let ctx = CodeContext {
            patterns: vec![PATTERN.into()],
            learner: vec![
                "        except asyncio.TimeoutError:\n    async def collect(self, q):".into(),
            ],
            ..Default::default()
        };
        assert!(
            matches!(
                judge_block(&block(solution), &ctx),
                Err(Refusal::GapFree { .. })
            ),
            "{:?}",
            judge_block(&block(solution), &ctx)
        );
    }

    #[test]
    fn the_learners_own_code_may_be_quoted() {
        let own = "def route(self, key):\n    h = hash(key)\n    h = h * 31\n    h = h ^ 7\n    h = h % 13\n    h = h + 1\n    h = h - 1\n    return h % self.workers";
        let ctx = CodeContext {
            learner: vec![own.into()],
            ..Default::default()
        };
        assert_eq!(judge_block(&block(own), &ctx), Ok(()));
        assert!(judge_block(&block(own), &CodeContext::default()).is_err());
    }

    #[test]
    fn gap_outputs_and_redaction() {
        assert_eq!(gap_outputs(PATTERN), ["remaining"]);
        let (h, changed) = redact_gap_outputs(
            "Fix deadline = now + MAX_WAIT once, and before each get compute remaining = deadline - now. Stop at MAX_BATCH.",
            &["remaining".into()],
        );
        assert!(changed);
        assert!(!h.contains("deadline - now"), "{h}");
        assert!(h.contains("deadline = now + MAX_WAIT"), "{h}");
        assert!(h.contains("Stop at MAX_BATCH"), "{h}");
    }

    #[test]
    fn structure_needs_six_parts_and_two_questions() {
        let good = "## What you have right\nx\n## The gap\ny\n## Questions to ask yourself\n1. a?\n2. b?\n## Hint\nh\n## A pattern to complete\n```\nx\n```\n## Next steps\n1. predict";
        assert!(structure(good).is_empty(), "{:?}", structure(good));
        assert_eq!(structure("Just do this:\n```\nx\n```"), PARTS.to_vec());
        let one_q = good.replace("2. b?", "2. b");
        assert_eq!(structure(&one_q), ["questions"]);
    }

    #[test]
    fn reference_coverage_counts_lines_in_order() {
        let missing = vec![
            "remaining = deadline - loop.time()".to_string(),
            "batch.append(q.get_nowait())".to_string(),
            "return batch".to_string(),
        ];
        assert_eq!(
            reference_coverage("compute remaining = deadline - loop.time() first", &missing),
            (1, 2)
        );
        assert_eq!(reference_coverage("nothing here", &missing), (0, 2));
    }
}
