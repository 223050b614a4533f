//! The learner's code read like a mentor reads it: functions, not lines near a "TODO".
//!
//! [`functions`] cuts a Python or Rust file into whole functions (name, first
//! and last line, the lesson tags of its `TODO: YOUR CODE HERE (lesson N)`
//! gaps). [`locate_code`] then finds the code a question is about, in this
//! order: a function named in the question, the learner's function in a
//! traceback frame (`File "main.py", line 78, in collect_batch`,
//! `src/main.rs:134:9`), the code region of a failing objective or of the
//! question's concept (cue words in the function), and last the lesson's own
//! gap (the function holding `TODO … (lesson N)`). [`pointers`] picks the lines
//! of that function an answer names: the traceback line, the gap, and the
//! calls and variables the concept is about.
//!
//! Invariants: an excerpt is always a whole function (capped at
//! [`MAX_FUNCTION_LINES`] lines around its anchor) — never a module docstring
//! or the first line that happens to contain "TODO"; everything here is a pure
//! function of the file's text and the question, so the choice is
//! deterministic and testable.

use crate::words;

/// A function longer than this is shown as a window of this many lines around its anchor.
pub const MAX_FUNCTION_LINES: usize = 40;

/// One function of a learner file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Its name (`collect_batch`).
    pub name: String,
    /// First line (the `def`/`fn` line), 1-based.
    pub start: usize,
    /// Last line, 1-based, inclusive.
    pub end: usize,
    /// Lessons named by its gaps (`TODO: YOUR CODE HERE (lesson 2)` → 2).
    pub lessons: Vec<u32>,
    /// Whether it still holds a `TODO` gap.
    pub has_gap: bool,
}

/// The language of a file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceLang {
    /// `.py`
    Python,
    /// `.rs`
    Rust,
    /// Anything else: no functions are found.
    Other,
}

impl SourceLang {
    /// From a path's extension.
    pub fn of(path: &str) -> SourceLang {
        if path.ends_with(".py") {
            SourceLang::Python
        } else if path.ends_with(".rs") {
            SourceLang::Rust
        } else {
            SourceLang::Other
        }
    }
}

/// Every function of `text` (nested ones too, each on its own), in file order.
pub fn functions(text: &str, lang: SourceLang) -> Vec<Function> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = def_name(line, lang) else {
            continue;
        };
        let end = match lang {
            SourceLang::Python => python_end(&lines, i),
            SourceLang::Rust => rust_end(&lines, i),
            SourceLang::Other => continue,
        };
        let body = &lines[i..=end];
        out.push(Function {
            name,
            start: i + 1,
            end: end + 1,
            lessons: gap_lessons(body),
            has_gap: body.iter().any(|l| l.contains("TODO")),
        });
    }
    out
}

/// The function name defined on `line`, if it is a `def`/`fn` line.
fn def_name(line: &str, lang: SourceLang) -> Option<String> {
    let t = line.trim_start();
    let rest = match lang {
        SourceLang::Python => t
            .strip_prefix("async def ")
            .or_else(|| t.strip_prefix("def "))?,
        SourceLang::Rust => {
            let mut t = t;
            for prefix in [
                "pub(crate) ",
                "pub(super) ",
                "pub ",
                "const ",
                "async ",
                "unsafe ",
            ] {
                t = t.strip_prefix(prefix).unwrap_or(t);
            }
            for prefix in ["async ", "unsafe "] {
                t = t.strip_prefix(prefix).unwrap_or(t);
            }
            t.strip_prefix("fn ")?
        }
        SourceLang::Other => return None,
    };
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Last line index of the Python function starting at `start`: the body is
/// every following line indented deeper (blank lines and comments included),
/// trailing blank lines dropped.
fn python_end(lines: &[&str], start: usize) -> usize {
    let base = indent(lines[start]);
    // A signature may span lines until the line ending with ':'.
    let mut i = start;
    while i < lines.len() && !lines[i].trim_end().ends_with(':') && i < start + 10 {
        i += 1;
    }
    let mut end = i.min(lines.len() - 1);
    for (j, l) in lines.iter().enumerate().skip(i + 1) {
        if l.trim().is_empty() {
            continue;
        }
        if indent(l) <= base {
            break;
        }
        end = j;
    }
    end
}

/// Last line index of the Rust function starting at `start`: brace matching
/// from its first `{`, ignoring braces in `//` comments, strings and chars.
fn rust_end(lines: &[&str], start: usize) -> usize {
    let mut depth = 0i32;
    let mut opened = false;
    for (j, l) in lines.iter().enumerate().skip(start) {
        let code = strip_rust_noise(l);
        for c in code.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                ';' if !opened => return j, // a declaration without a body
                _ => {}
            }
        }
        if opened && depth <= 0 {
            return j;
        }
    }
    lines.len() - 1
}

fn strip_rust_noise(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            if c == '\\' {
                chars.next();
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '/' if chars.peek() == Some(&'/') => break,
            '\'' => {
                // A char literal ('{') is skipped; a lifetime ('a) is harmless.
                let ahead: String = chars.clone().take(3).collect();
                if ahead.len() >= 2 && ahead.chars().nth(1) == Some('\'') {
                    chars.next();
                    chars.next();
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// `(lesson N)` tags after the gap markers of a body.
fn gap_lessons(body: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    for l in body.iter().filter(|l| l.contains("TODO")) {
        if let Some(i) = l.find("(lesson ") {
            let n: String = l[i + 8..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = n.parse::<u32>()
                && !out.contains(&n)
            {
                out.push(n);
            }
        }
    }
    out
}

/// The function holding 1-based `line`, innermost first.
pub fn function_at(funcs: &[Function], line: usize) -> Option<&Function> {
    funcs
        .iter()
        .filter(|f| f.start <= line && line <= f.end)
        .min_by_key(|f| f.end - f.start)
}

/// Why a region of code was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// The question names the function (or a name inside it).
    Named,
    /// A traceback frame in the question points into it.
    Traceback,
    /// It raises or handles the error the question quotes.
    ErrorSite,
    /// It holds most of the question's own words.
    Question,
    /// A failing objective's code region.
    FailingObjective,
    /// The code region of the question's concept (its cue words).
    Concept,
    /// The lesson's own gap in the starter.
    LessonGap,
}

impl Anchor {
    /// A few words for the answer ("you named it").
    pub fn describe(self) -> &'static str {
        match self {
            Anchor::Named => "you named it",
            Anchor::ErrorSite => "it raises or handles the error you quote",
            Anchor::Question => "it holds the words of your question",
            Anchor::Traceback => "your traceback points into it",
            Anchor::FailingObjective => "the failing objective is graded on it",
            Anchor::Concept => "it is where this concept lives in your program",
            Anchor::LessonGap => "it holds this lesson's gap",
        }
    }
}

/// What [`locate_code`] is told.
#[derive(Debug, Clone, Default)]
pub struct CodeQuery<'a> {
    /// The question ("" for a review).
    pub question: &'a str,
    /// The lesson number (for `TODO … (lesson N)` gaps).
    pub lesson: u32,
    /// Cue words of the failing objectives' concepts.
    pub failing_cues: Vec<String>,
    /// Cue words of the question's concept.
    pub concept_cues: Vec<String>,
    /// Cue words of every concept of the lesson (the last resort).
    pub lesson_cues: Vec<String>,
}

/// A located function in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The function.
    pub function: Function,
    /// Why.
    pub anchor: Anchor,
    /// The 1-based line the choice hangs on (a traceback line, the gap), if any.
    pub line: Option<usize>,
}

/// Finds the function of `text` (file `path`) the question is about; `None`
/// when the file has no functions or nothing points into it (and it has no gap).
pub fn locate_code(path: &str, text: &str, q: &CodeQuery<'_>) -> Option<Located> {
    let funcs = functions(text, SourceLang::of(path));
    if funcs.is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    // 1. A traceback frame into this file (the innermost frame: the last one).
    if let Some(line) = traceback_lines(q.question, path).last().copied()
        && let Some(f) = function_at(&funcs, line)
    {
        return Some(Located {
            function: f.clone(),
            anchor: Anchor::Traceback,
            line: Some(line),
        });
    }
    // 2. A function named in the question (`collect_batch`, `route()`).
    let named = named_identifiers(q.question);
    let by_name = named
        .iter()
        .find_map(|n| funcs.iter().find(|f| f.name.eq_ignore_ascii_case(n)));
    if let Some(f) = by_name {
        return Some(Located {
            function: f.clone(),
            anchor: Anchor::Named,
            line: gap_line(&lines, f),
        });
    }
    // 3. The function that raises or handles the error the question quotes.
    let errors: Vec<String> = named_identifiers(q.question)
        .into_iter()
        .filter(|w| {
            w.chars().next().is_some_and(char::is_uppercase)
                && ["Error", "Exception", "Warning", "Full", "Empty"]
                    .iter()
                    .any(|e| w.ends_with(e) && w.len() > e.len())
        })
        .collect();
    for err in &errors {
        if let Some((f, line)) = funcs.iter().find_map(|f| {
            (f.start..=f.end)
                .find(|n| lines.get(n - 1).is_some_and(|l| l.contains(err.as_str())))
                .map(|n| (f, n))
        }) {
            return Some(Located {
                function: f.clone(),
                anchor: Anchor::ErrorSite,
                line: Some(line),
            });
        }
    }
    // 4. The function holding most of the question's own words (at least three).
    if let Some(f) = best_by_words(&funcs, &lines, q.question) {
        return Some(Located {
            function: f.clone(),
            anchor: Anchor::Question,
            line: gap_line(&lines, f),
        });
    }
    // 5. A failing objective's region; 6. the concept's region.
    for (cues, anchor) in [
        (&q.failing_cues, Anchor::FailingObjective),
        (&q.concept_cues, Anchor::Concept),
    ] {
        if let Some(f) = best_by_cues(&funcs, &lines, cues, q.lesson, q.question) {
            return Some(Located {
                function: f.clone(),
                anchor,
                line: gap_line(&lines, f),
            });
        }
    }
    // 7. The lesson's gap; then where the lesson's words live; then the main loop.
    let gap = funcs
        .iter()
        .find(|f| f.lessons.contains(&q.lesson))
        .or_else(|| funcs.iter().find(|f| f.has_gap && f.lessons.is_empty()))
        .or_else(|| best_by_cues(&funcs, &lines, &q.lesson_cues, q.lesson, q.question))
        .or_else(|| {
            ["worker", "run", "main"]
                .iter()
                .find_map(|n| funcs.iter().find(|f| f.name == *n))
        })?;
    Some(Located {
        function: gap.clone(),
        anchor: Anchor::LessonGap,
        line: gap_line(&lines, gap),
    })
}

/// The function with the most cue hits (a cue the question itself uses
/// counts three times, name words count double, this lesson's gap weighs in);
/// `None` when no function has a hit.
fn best_by_cues<'f>(
    funcs: &'f [Function],
    lines: &[&str],
    cues: &[String],
    lesson: u32,
    question: &str,
) -> Option<&'f Function> {
    if cues.is_empty() {
        return None;
    }
    let q_toks = words::tokens(question);
    let mut best: Option<(usize, &Function)> = None;
    for f in funcs {
        let body = lines[f.start - 1..f.end].join("\n");
        let toks = code_tokens(&body);
        let name_toks = words::tokens(&f.name.replace('_', " "));
        let mut score = 0;
        for cue in cues {
            if words::contains_phrase(&toks, cue) {
                score += if words::contains_phrase(&q_toks, cue) {
                    3
                } else {
                    1
                };
            }
            if words::contains_phrase(&name_toks, cue) {
                score += 2;
            }
        }
        if score == 0 {
            continue;
        }
        let score = score * 4 + usize::from(f.lessons.contains(&lesson)) * 10;
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, f));
        }
    }
    best.map(|(_, f)| f)
}

/// Tokens of code with identifiers also split at `_` (`connect_read_pipe` → `pipe`).
fn code_tokens(text: &str) -> Vec<String> {
    let mut out = words::tokens(text);
    let parts: Vec<String> = out
        .iter()
        .filter(|t| t.contains('_'))
        .flat_map(|t| t.split('_').map(str::to_string).collect::<Vec<_>>())
        .filter(|p| !p.is_empty())
        .collect();
    out.extend(parts.into_iter().map(|p| words::tokens(&p).concat()));
    out
}

/// The function sharing the most of the question's content words (four
/// letters or more, at least [`MIN_QUESTION_WORDS`] distinct ones, strictly
/// more than any other function).
fn best_by_words<'f>(
    funcs: &'f [Function],
    lines: &[&str],
    question: &str,
) -> Option<&'f Function> {
    let want: Vec<String> = words::content_words(question)
        .into_iter()
        .filter(|w| w.len() >= 4)
        .collect();
    if want.len() < MIN_QUESTION_WORDS {
        return None;
    }
    let mut scored: Vec<(usize, &Function)> = funcs
        .iter()
        .map(|f| {
            let toks = code_tokens(&lines[f.start - 1..f.end].join("\n"));
            (want.iter().filter(|w| toks.contains(w)).count(), f)
        })
        .collect();
    scored.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    match scored.as_slice() {
        [(n, f), rest @ ..]
            if *n >= MIN_QUESTION_WORDS && rest.first().is_none_or(|(m, _)| m < n) =>
        {
            Some(f)
        }
        _ => None,
    }
}

/// Question words a function must share to be chosen by them alone.
pub const MIN_QUESTION_WORDS: usize = 3;

/// The 1-based line of the function's first gap, if it has one.
fn gap_line(lines: &[&str], f: &Function) -> Option<usize> {
    (f.start..=f.end).find(|n| lines.get(n - 1).is_some_and(|l| l.contains("TODO")))
}

/// Identifiers the question names: words with `_`, in backticks, or followed
/// by `(`, longest first; then every other word of three letters or more.
pub fn named_identifiers(question: &str) -> Vec<String> {
    let mut strong: Vec<String> = Vec::new();
    let mut weak: Vec<String> = Vec::new();
    let chars: Vec<char> = question.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_alphanumeric() || chars[i] == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let before = start.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i).copied();
            let is_strong = word.contains('_')
                || before == Some('`')
                || after == Some('(')
                || (before == Some('.') && word.len() > 2);
            let list = if is_strong { &mut strong } else { &mut weak };
            if word.len() >= 3 && !list.contains(&word) && !word.chars().all(|c| c.is_numeric()) {
                list.push(word);
            }
        } else {
            i += 1;
        }
    }
    strong.extend(weak);
    strong
}

/// 1-based line numbers a traceback or panic in `question` gives for `path`:
/// `File ".../main.py", line 78` and `src/main.rs:134:9` / `main.py:12`.
pub fn traceback_lines(question: &str, path: &str) -> Vec<usize> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut out = Vec::new();
    for (i, _) in question.match_indices(name) {
        // The match must end a path component: `xmain.py` is another file.
        let before = question[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &question[i + name.len()..];
        let digits = rest
            .strip_prefix(':')
            .or_else(|| rest.strip_prefix("\", line "))
            .or_else(|| rest.strip_prefix(", line "))
            .map(|r| {
                r.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            });
        if let Some(n) = digits.and_then(|d| d.parse().ok()) {
            out.push(n);
        }
    }
    out
}

/// A line an answer points at: its number, its text, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pointer {
    /// 1-based line number in the file.
    pub line: usize,
    /// The line, trimmed.
    pub code: String,
    /// Why it matters (`the gap`, `the line in your traceback`, `the call to wait_for`).
    pub why: String,
}

/// Up to three lines of `f` worth naming: the anchor line, the first gap, and
/// the line (not a comment) that uses `cues` most — each at most once.
pub fn pointers(
    lines: &[&str],
    f: &Function,
    anchor_line: Option<usize>,
    anchor: Anchor,
    cues: &[String],
    question: &str,
) -> Vec<Pointer> {
    let mut out: Vec<Pointer> = Vec::new();
    let add = |n: usize, why: String, out: &mut Vec<Pointer>| {
        if out.len() < 3
            && !out.iter().any(|p| p.line == n)
            && let Some(l) = lines.get(n.wrapping_sub(1))
        {
            out.push(Pointer {
                line: n,
                code: l.trim().to_string(),
                why,
            });
        }
    };
    if let Some(n) = anchor_line {
        match anchor {
            Anchor::Traceback => add(n, "the line in your traceback".into(), &mut out),
            Anchor::ErrorSite => add(n, "where that error is raised or caught".into(), &mut out),
            _ => {}
        }
    }
    if let Some(n) = gap_line(lines, f) {
        add(n, "your gap".into(), &mut out);
    }
    let is_comment = |l: &str| {
        let t = l.trim_start();
        t.starts_with('#') || t.starts_with("//") || t.starts_with("\"\"\"") || t.is_empty()
    };
    // The line that says most about the concept: cue hits, a cue the
    // question uses counting three times; the earliest among equals.
    let q_toks = words::tokens(question);
    let mut best: Option<(usize, usize, &String)> = None;
    for n in f.start + 1..=f.end {
        let Some(l) = lines.get(n - 1) else { break };
        if is_comment(l) {
            continue;
        }
        let toks = code_tokens(l);
        let hits: Vec<&String> = cues
            .iter()
            .filter(|c| words::contains_phrase(&toks, c))
            .collect();
        let score: usize = hits
            .iter()
            .map(|c| {
                if words::contains_phrase(&q_toks, c) {
                    3
                } else {
                    1
                }
            })
            .sum();
        if score > 0 && best.is_none_or(|(s, _, _)| score > s) {
            // Name the most specific cue of the line (the longest).
            if let Some(cue) = hits.iter().max_by_key(|c| c.len()) {
                best = Some((score, n, cue));
            }
        }
    }
    if let Some((_, n, cue)) = best {
        add(n, format!("it uses `{cue}`"), &mut out);
    }
    // No cue: the first statement that waits or takes something (await / recv / get).
    if out.len() < 2 {
        for n in f.start + 1..=f.end {
            let Some(l) = lines.get(n - 1) else { break };
            if !is_comment(l) && (l.contains("await") || l.contains("recv")) {
                add(n, "the call it waits on".into(), &mut out);
                break;
            }
        }
    }
    out.sort_by_key(|p| p.line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PY: &str = "\"\"\"Module docstring.\n\nTODO: YOUR CODE HERE is explained below.\n\"\"\"\n\nimport asyncio\n\n\nclass P:\n    def route(self, key):\n        \"\"\"Which worker.\"\"\"\n        # TODO: YOUR CODE HERE (lesson 1) — spread keys\n        return 0\n\n    async def collect_batch(self, queue):\n        batch = [await queue.get()]\n        # TODO: YOUR CODE HERE (lesson 2) — deadline\n        return batch\n\n    def apply(self, event):\n        self.state[event[\"key\"]] = 1\n";

    #[test]
    fn python_functions_are_whole_and_tagged() {
        let f = functions(PY, SourceLang::Python);
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["route", "collect_batch", "apply"]);
        assert_eq!((f[1].start, f[1].end), (15, 18));
        assert_eq!(f[1].lessons, [2]);
        assert_eq!(f[0].lessons, [1]);
        assert!(!f[2].has_gap);
    }

    #[test]
    fn rust_functions_match_braces() {
        let rs = "use x;\n\n/// Doc.\nasync fn collect_batch(\n    rx: &mut Rx,\n) -> Option<Vec<E>> {\n    let s = \"{\";\n    let c = '}';\n    // TODO: YOUR CODE HERE (lesson 2) {\n    Some(batch)\n}\n\npub fn apply(s: &mut S) {\n    if x { y }\n}\n";
        let f = functions(rs, SourceLang::Rust);
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].name.as_str(), f[0].start, f[0].end),
            ("collect_batch", 4, 11)
        );
        assert_eq!(f[0].lessons, [2]);
        assert_eq!((f[1].start, f[1].end), (13, 15));
    }

    #[test]
    fn the_question_the_traceback_the_concept_then_the_gap() {
        let q = |question: &'static str| CodeQuery {
            question,
            lesson: 2,
            ..Default::default()
        };
        let by_name = locate_code("main.py", PY, &q("my collect_batch ignores the deadline"));
        assert_eq!(
            by_name.map(|l| (l.function.name, l.anchor)),
            Some(("collect_batch".into(), Anchor::Named))
        );
        let tb = locate_code(
            "main.py",
            PY,
            &q("Traceback:\n  File \"/w/main.py\", line 21, in apply\nKeyError"),
        );
        assert_eq!(
            tb.map(|l| (l.function.name, l.line)),
            Some(("apply".into(), Some(21)))
        );
        let mut cq = q("why does the order break?");
        cq.concept_cues = vec!["route".into(), "worker".into()];
        let concept = locate_code("main.py", PY, &cq);
        assert_eq!(
            concept.map(|l| (l.function.name, l.anchor)),
            Some(("route".into(), Anchor::Concept))
        );
        // Nothing points anywhere: the lesson's gap, never the module docstring.
        let gap = locate_code("main.py", PY, &q("help"));
        assert_eq!(
            gap.map(|l| (l.function.name, l.line)),
            Some(("collect_batch".into(), Some(17)))
        );
    }

    #[test]
    fn pointers_name_the_gap_and_the_call() {
        let lines: Vec<&str> = PY.lines().collect();
        let f = &functions(PY, SourceLang::Python)[1];
        let p = pointers(
            &lines,
            f,
            None,
            Anchor::Named,
            &["deadline".into(), "batch".into()],
            "",
        );
        assert_eq!(p.iter().map(|p| p.line).collect::<Vec<_>>(), [16, 17]);
        assert_eq!(p[0].code, "batch = [await queue.get()]");
    }

    #[test]
    fn identifiers_and_frames() {
        assert_eq!(
            named_identifiers("Is `route` or collect_batch() wrong?")[..2],
            ["route", "collect_batch"]
        );
        assert_eq!(
            traceback_lines("at src/main.rs:134:9 and xmain.rs:3", "src/main.rs"),
            [134]
        );
    }
}
