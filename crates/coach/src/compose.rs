//! The offline coach's answer: six parts (or the discovery answer) built from
//! the lesson's material, the playbook and the calibration.
//!
//! Parts, in order: acknowledge; the gap; guiding questions (≥ 2); a strategic
//! hint (the concept's hint of the calibrated level — for performance questions
//! the profiling method first, never a guessed cause); a partial pattern in the
//! learner's language (level 1 shows the skeleton up to the first gap, levels 2
//! and 3 the whole pattern — always with its gaps); next steps with an
//! experiment to predict and then run. Then the code that was looked at.
//!
//! The answer is about the learner's code: the gap names the function the
//! question is about ([`crate::code`]) and its lines (the gap, the call, the
//! traceback line), one guiding question starts from such a line, and the
//! experiment says where to add a print. The acknowledgement states facts
//! ([`crate::facts`]) — never a fixed sentence.
//!
//! Invariant (rule 6 of the coach): no code block the coach writes is longer
//! than [`MAX_SOLUTION_LINES`] lines without a `TODO` gap, and hint + pattern
//! never complete the code together: patterns come only from the lesson or the
//! playbook and are shown only when they hold the gap marker, and a hint that
//! assigns a name the pattern leaves to a gap has that expression redacted
//! ([`crate::judge::redact_gap_outputs`]). The learner's own function is
//! quoted back under "What I looked at" — it is theirs, not a solution. Tests
//! over every lesson, level and language (against the reference solutions)
//! assert it.

use crate::answer::{Answer, ConceptRef, Part, Section, Source};
use crate::calibrate::{Calibration, Level, Mode, Reason};
use crate::checks::ReviewChecks;
use crate::classify::QuestionKind;
use crate::code::Anchor;
use crate::facts::Facts;
use crate::judge::{gap_outputs, redact_gap_outputs};
use crate::locate::{ErrorHit, Located};
use crate::material::{ConceptMaterial, GAP_MARKER, Lang, LessonMaterial};
use crate::playbook::{Fill, Playbook, fill};
use crate::workspace::Excerpt;
use crate::workspace::{CodeReview, FileReason, WorkspaceSettings};

/// The longest code block allowed without a gap, in lines.
pub const MAX_SOLUTION_LINES: usize = 6;

/// A checker's note on a failing objective is cut to this many characters.
const MAX_DETAIL_CHARS: usize = 240;

/// Everything the composer needs.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    /// The lesson.
    pub lesson: &'a LessonMaterial,
    /// The concept chosen.
    pub concept: &'a ConceptMaterial,
    /// Why it was chosen.
    pub located: &'a Located,
    /// The kind of question.
    pub kind: QuestionKind,
    /// The calibration.
    pub calibration: &'a Calibration,
    /// The question ("" for a bare review).
    pub question: &'a str,
    /// The code review.
    pub review: &'a CodeReview,
    /// Check results of a review.
    pub checks: &'a ReviewChecks,
    /// Objectives failing at the latest journal check (when not reviewing).
    pub journal_failing: &'a [String],
    /// Workspace settings (language, command).
    pub settings: &'a WorkspaceSettings,
    /// Journal path and entry count for this lesson (for sources).
    pub journal: (&'a str, usize),
    /// The lesson the learner asked about (differs from `lesson` when an
    /// error message belongs to another lesson).
    pub asked_lesson: u32,
    /// The error message that moved the answer to another lesson.
    pub cross: Option<&'a ErrorHit>,
    /// What the learner has done, as facts.
    pub facts: &'a Facts,
}

/// Composes the offline answer.
pub fn compose(s: &Situation<'_>, book: &Playbook) -> Answer {
    let mut given = Vec::new();
    let sections = match s.calibration.mode {
        Mode::Guide => guide(s, book, &mut given),
        Mode::Discovery => discovery(s, book, &mut given),
    };
    Answer {
        lesson: s.lesson.number,
        mode: s.calibration.mode,
        kind: s.kind,
        concept: ConceptRef {
            id: s.concept.id.clone(),
            title: s.concept.title.clone(),
            section: s.concept.section.clone(),
        },
        level: s.calibration.level,
        calibration: s.calibration.clone(),
        sections,
        sources: sources(s),
        engine: "offline",
        notice: None,
        given,
    }
}

fn filler<'a>(s: &'a Situation<'a>, experiment: &'a str, command: &'a str) -> Fill<'a> {
    Fill {
        concept: &s.concept.title,
        section: &s.concept.section,
        lesson: s.lesson.number,
        experiment,
        command,
        next: &s.lesson.next,
    }
}

/// The i-th item of a list, rotating (so repeated asks see other material).
fn rotate(list: &[String], i: usize) -> Option<&str> {
    (!list.is_empty()).then(|| list[i % list.len()].as_str())
}

fn guide(s: &Situation<'_>, book: &Playbook, given: &mut Vec<String>) -> Vec<Section> {
    let lang = s.settings.lang;
    let command = s.settings.command_line();
    let turn = s.calibration.earlier_asks;
    let experiment = rotate(&s.concept.experiments, turn).unwrap_or(
        "Predict what your program prints for three events on two keys, then run it and compare.",
    );
    let f = filler(s, experiment, &command);
    let play = book.kind(s.kind);
    let level = s.calibration.level;
    let mut sections = Vec::new();

    // 1. Acknowledge.
    sections.push(section(
        Part::Acknowledge,
        "What you have right",
        acknowledge(s, book, &f),
    ));

    // 2. The gap.
    let mut gap = format!(
        "This is about **{}** — lesson {}, section \"{}\".",
        s.concept.title, s.lesson.number, s.concept.section
    );
    if let Some(p) = play {
        gap.push(' ');
        gap.push_str(&fill(&p.gap, &f));
    }
    if let Some(hit) = s.cross {
        gap.push_str(&format!(
            "\n\nYou asked on lesson {}, but the message `{}` is the subject of lesson {} (\"{}\"), \
             so this answer uses that lesson's material.",
            s.asked_lesson, hit.fragment, s.lesson.number, s.concept.section
        ));
    } else {
        for err in &s.located.errors_matched {
            gap.push_str(&format!(
                "\n\nThe message `{err}` is a classic symptom of this concept, not a typo to patch around."
            ));
        }
    }
    if let Some(ex) = primary(s) {
        gap.push_str("\n\n");
        gap.push_str(&code_reference(ex));
    }
    for fig in s.checks.figures().iter().filter(|f| !f.passed) {
        gap.push_str(&format!(
            "\n\n- Objective `{}` is not met yet: measured {}, target {}.",
            fig.objective, fig.figure, fig.target
        ));
        if let Some(detail) = fig
            .detail
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            let short: String = detail.chars().take(MAX_DETAIL_CHARS).collect();
            let more = if detail.chars().count() > MAX_DETAIL_CHARS {
                "…"
            } else {
                ""
            };
            gap.push_str(&format!(
                " The checker noted: {}{more}",
                short.replace('\n', " ")
            ));
        }
    }
    if let ReviewChecks::Unavailable(why) = s.checks {
        gap.push_str(&format!("\n\n(The checks could not run: {why}.)"));
    }
    if !s.journal_failing.is_empty() && matches!(s.checks, ReviewChecks::NotRun) {
        let ids: Vec<String> = s.journal_failing.iter().map(|i| format!("`{i}`")).collect();
        gap.push_str(&format!(
            "\n\nAt your last check, {} did not pass yet.",
            ids.join(", ")
        ));
    }
    match &s.calibration.reason {
        Reason::Misconception { belief } => gap.push_str(&format!(
            "\n\nOne belief to test before anything else: *\"{belief}\"* — it does not hold here. \
             Section \"{}\" shows why; find the sentence that contradicts it.",
            s.concept.section
        )),
        Reason::RandomChanges {
            edits,
            checks_unchanged,
        } => {
            gap.push_str(&format!(
                "\n\nYour code changed at {edits} of your questions on this, and {checks_unchanged} checks \
                 in that time failed the same objectives: the changes are not moving the figure. "
            ));
            gap.push_str(&book.techniques.stuck_loop);
        }
        Reason::RepeatedFailure { objective, times } => gap.push_str(&format!(
            "\n\n`{objective}` has failed at your last {times} checks, so let us get more concrete."
        )),
        Reason::Stuck { minutes } if level == Level::MostDirect => gap.push_str(&format!(
            "\n\nYou have been on this for about {minutes} minutes — here is the most direct help \
             I can give without taking the discovery away from you."
        )),
        Reason::Stuck { minutes } => gap.push_str(&format!(
            "\n\nYou have been on this for about {minutes} minutes, so let us get more concrete."
        )),
        _ => {}
    }
    sections.push(section(Part::Gap, "The gap", gap));

    // 3. Guiding questions (at least two).
    let questions = questions(s, book, &f);
    given.push(format!("questions:{}", questions.len()));
    let body = questions
        .iter()
        .enumerate()
        .map(|(i, q)| format!("{}. {q}", i + 1))
        .collect::<Vec<_>>()
        .join("\n");
    sections.push(Section {
        part: Part::Questions,
        title: "Questions to ask yourself".into(),
        body,
        items: questions,
    });

    // 4. A strategic hint.
    let hint_text = s.concept.hints.get(level.hint_index()).map(String::as_str);
    let mut hint = String::new();
    if s.kind == QuestionKind::Performance {
        hint.push_str("Do not guess the cause — measure it. Profile stage by stage:\n\n");
        for (i, step) in book.profiling.steps.iter().enumerate() {
            hint.push_str(&format!("{}. {step}\n", i + 1));
        }
        hint.push_str(&format!(
            "\nThe stages of a pipe-protocol program: {}.",
            book.profiling.stages.join(" → ")
        ));
        given.push("profiling".into());
        if level >= Level::Direct
            && let Some(h) = hint_text
        {
            hint.push_str(&format!(
                "\n\nOnce your timings show which stage holds the time, the lesson's hint for {} is: {h}",
                s.concept.title
            ));
            given.push(format!("hint:{}", level as u8));
        }
    } else {
        let label = match level {
            Level::Gentle => "A gentle hint",
            Level::Direct => "A more direct hint",
            Level::MostDirect => "The most direct hint",
        };
        match hint_text {
            Some(h) => {
                let outputs = gap_outputs(s.concept.patterns.for_lang(lang));
                let (h, redacted) = redact_gap_outputs(h, &outputs);
                hint.push_str(&format!("{label}: {h}"));
                given.push(format!("hint:{}", level as u8));
                if redacted {
                    given.push("hint:redacted".into());
                }
            }
            None => hint.push_str(&format!(
                "{label}: reread \"{}\" and write down the one rule it states.",
                s.concept.section
            )),
        }
        if let Some(p) = play {
            hint.push_str("\n\nStrategy: ");
            hint.push_str(&fill(&p.technique, &f));
        }
    }
    sections.push(section(Part::Hint, "Hint", hint));

    // 5. A partial pattern with gaps.
    sections.push(section(
        Part::Pattern,
        &format!("A pattern to complete ({})", lang.fence()),
        pattern_body(s, book, lang, given),
    ));

    // 6. Next steps, with an experiment to predict and then run.
    let mut steps = vec![fill(&book.techniques.reread, &f)];
    if s.kind == QuestionKind::Performance {
        steps.push(
            "Add the stage timers from the pattern, run a fixed load, and write down each stage's share \
             of the total before you change any code."
                .into(),
        );
    }
    steps.push(fill(&book.techniques.predict_then_test, &f));
    if let Some(ex) = primary(s)
        && let (Some(func), Some(p)) = (&ex.function, ex.pointers.first())
    {
        let log = match lang {
            Lang::Python => "`print(..., file=sys.stderr)`",
            Lang::Rust => "`eprintln!`",
        };
        steps.push(format!(
            "In `{func}`, right after line {} (`{}`), log with {log} the values that line works with \
             and the time; predict what the log will show for a lone event and for a burst, then run \
             it and compare.",
            p.line,
            short(&p.code)
        ));
    }
    given.push(format!(
        "experiment:{}",
        turn % s.concept.experiments.len().max(1)
    ));
    match s.kind {
        QuestionKind::Conceptual => steps.push(fill(&book.techniques.explain_it_back, &f)),
        QuestionKind::Design => {
            steps.push(fill(&book.techniques.alternative, &f));
            steps.push(fill(&book.techniques.scale_up, &f));
        }
        QuestionKind::Performance => steps.push(fill(&book.techniques.scale_up, &f)),
        _ => {}
    }
    if level == Level::MostDirect && s.kind != QuestionKind::Conceptual {
        steps.push(fill(&book.techniques.explain_it_back, &f));
    }
    steps.push(fill(&book.techniques.check, &f));
    steps.dedup();
    sections.push(section(Part::NextSteps, "Next steps", numbered(&steps)));

    if let Some(code) = code_section(s) {
        sections.push(code);
    }
    sections
}

fn acknowledge(s: &Situation<'_>, book: &Playbook, _f: &Fill<'_>) -> String {
    let mut facts = s.facts.all();
    if s.kind == QuestionKind::Review && !matches!(s.checks, ReviewChecks::NotRun) {
        facts.insert(0, book.review.acknowledge_none.clone());
    }
    if matches!(s.calibration.reason, Reason::Progress { .. }) {
        facts.push(
            "Fewer objectives fail than when you started on this, so this answer asks more and tells less."
                .to_string(),
        );
    }
    if let Some(ex) = primary(s)
        && ex.anchor == Some(Anchor::Named)
        && let Some(func) = &ex.function
    {
        facts.push(format!(
            "You pointed at `{func}`, and that is the function to look at ({}).",
            ex.location()
        ));
    }
    if let Some(ex) = primary(s)
        && ex.anchor == Some(Anchor::Traceback)
    {
        facts.push(format!(
            "You brought the whole traceback: it points into {}.",
            ex.title()
        ));
    }
    if facts.is_empty() {
        let runs = if s.journal.1 == 0 {
            format!(
                "no check run or earlier question on lesson {} is in your journal",
                s.lesson.number
            )
        } else {
            "nothing in your journal says what passes yet".to_string()
        };
        return format!(
            "Nothing to build on yet beyond your question: {runs}. Run the checks once so the next \
             answer can start from a measured figure."
        );
    }
    facts.join(" ")
}

/// The excerpt the answer is about: the first one that shows a function.
fn primary<'a>(s: &'a Situation<'a>) -> Option<&'a Excerpt> {
    s.review.excerpts.iter().find(|e| e.function.is_some())
}

/// "In `collect_batch` (main.py:128-135) — you named it: line 131 …"
fn code_reference(ex: &Excerpt) -> String {
    let why = ex.anchor.map(|a| a.describe()).unwrap_or("your program");
    let mut out = format!("In your code: {} — {why}.", ex.title());
    for p in &ex.pointers {
        out.push_str(&format!(
            " Line {} (`{}`) is {}.",
            p.line,
            short(&p.code),
            p.why.replace("it uses", "where it uses")
        ));
    }
    out
}

/// A guiding question that starts from a line of the learner's function.
fn code_question(ex: &Excerpt, concept: &str) -> Option<String> {
    let func = ex.function.as_deref()?;
    let p = ex
        .pointers
        .iter()
        .find(|p| p.why != "your gap")
        .or(ex.pointers.first())?;
    Some(match p.why.as_str() {
        "the line in your traceback" | "where that error is raised or caught" => format!(
            "Line {} of `{func}` (`{}`) is where it broke: which value there is not what you \
             assumed, and where was it last set?",
            p.line,
            short(&p.code)
        ),
        "your gap" => format!(
            "Line {} of `{func}` is your gap: say in one sentence what it must do, and which names \
             must exist after it, before you write any code.",
            p.line
        ),
        _ => format!(
            "In `{func}`, line {} reads `{}`: what does that line decide about {concept}, and when \
             does it stop waiting?",
            p.line,
            short(&p.code)
        ),
    })
}

fn short(code: &str) -> String {
    let c = code.trim();
    if c.chars().count() > 70 {
        format!("{}…", c.chars().take(70).collect::<String>())
    } else {
        c.to_string()
    }
}

fn questions(s: &Situation<'_>, book: &Playbook, f: &Fill<'_>) -> Vec<String> {
    let cq = &s.concept.questions;
    let turn = s.calibration.earlier_asks;
    let mut out: Vec<String> = Vec::new();
    let add = |q: String, out: &mut Vec<String>| {
        if !q.trim().is_empty() && !out.contains(&q) {
            out.push(q);
        }
    };
    let kind_qs: &[String] = match s.kind {
        QuestionKind::Review => &book.review.questions,
        k => book.kind(k).map(|p| p.questions.as_slice()).unwrap_or(&[]),
    };
    if let Some(q) = primary(s).and_then(|ex| code_question(ex, &s.concept.title)) {
        add(q, &mut out);
    }
    let progressing = matches!(s.calibration.reason, Reason::Progress { .. });
    match s.calibration.level {
        // Making progress: more questions, the same light help.
        Level::Gentle if progressing => {
            for q in cq {
                add(q.clone(), &mut out);
            }
        }
        Level::Gentle => {
            // A symptom deserves one more question of the concept's own.
            let n = if s.kind.is_implementing() { 3 } else { 2 };
            for i in 0..cq.len().min(n) {
                add(cq[(turn + i) % cq.len()].clone(), &mut out);
            }
            if let Some(q) = kind_qs.first() {
                add(fill(q, f), &mut out);
            }
        }
        Level::Direct => {
            for q in cq {
                add(q.clone(), &mut out);
            }
            if let Some(q) = kind_qs.get(1).or(kind_qs.first()) {
                add(fill(q, f), &mut out);
            }
        }
        Level::MostDirect => {
            for q in cq.iter().take(2) {
                add(q.clone(), &mut out);
            }
        }
    }
    // Never fewer than two questions, whatever the lesson supplied.
    for q in kind_qs {
        if out.len() >= 2 {
            break;
        }
        add(fill(q, f), &mut out);
    }
    out
}

/// Level 1: the pattern up to and including its first gap; levels 2–3: all of it.
fn pattern_for(pattern: &str, level: Level, lang: Lang) -> Option<(String, &'static str)> {
    let pattern = pattern.trim_matches('\n');
    if !pattern.contains(GAP_MARKER) {
        return None;
    }
    if level >= Level::Direct {
        return Some((pattern.to_string(), "full"));
    }
    let lines: Vec<&str> = pattern.lines().collect();
    let first_gap = lines
        .iter()
        .position(|l| l.contains(GAP_MARKER))
        .unwrap_or(0);
    if first_gap + 1 >= lines.len() {
        return Some((pattern.to_string(), "full"));
    }
    let mut out = lines[..=first_gap].join("\n");
    let comment = match lang {
        Lang::Python => "#",
        Lang::Rust => "//",
    };
    out.push_str(&format!(
        "\n{comment} … (the rest of the pattern comes once this gap works)"
    ));
    Some((out, "skeleton"))
}

fn fenced(lang: Lang, code: &str) -> String {
    format!("```{}\n{}\n```", lang.fence(), code.trim_end())
}

fn pattern_body(s: &Situation<'_>, book: &Playbook, lang: Lang, given: &mut Vec<String>) -> String {
    let level = s.calibration.level;
    let mut body = String::new();
    if s.kind == QuestionKind::Performance {
        let prof = book.profiling.pattern(lang);
        if prof.contains(GAP_MARKER) {
            body.push_str("Stage timers first — measure before you change anything:\n\n");
            body.push_str(&fenced(lang, prof.trim_matches('\n')));
            given.push(format!("pattern:{}:profiling", lang.fence()));
        }
        if level == Level::Gentle {
            return body;
        }
        body.push_str("\n\n");
    }
    match pattern_for(s.concept.patterns.for_lang(lang), level, lang) {
        Some((code, how)) => {
            let intro = match (how, level) {
                ("skeleton", _) => "The shape around the first gap; fill in `TODO: YOUR CODE HERE` yourself:",
                (_, Level::MostDirect) => {
                    "The whole pattern — every gap is still yours to fill. Say what each `TODO` line must do \
                     before you write it:"
                }
                _ => "The fuller pattern; fill each `TODO: YOUR CODE HERE` yourself:",
            };
            body.push_str(intro);
            body.push_str("\n\n");
            body.push_str(&fenced(lang, &code));
            given.push(format!("pattern:{}:{how}", lang.fence()));
        }
        None => body.push_str(&format!(
            "This concept has no {} pattern; sketch the shape in five lines of pseudo-code, leaving the \
             key line as a gap for yourself.",
            lang.fence()
        )),
    }
    body
}

fn code_section(s: &Situation<'_>) -> Option<Section> {
    if s.review.excerpts.is_empty() && s.review.changed_count == 0 {
        return None;
    }
    let mut body = String::new();
    if s.review.changed_count > 0 {
        body.push_str(&format!(
            "{} file(s) changed since your last coaching ({}).\n",
            s.review.changed_count, s.review.change_source
        ));
    }
    for ex in &s.review.excerpts {
        let why = match ex.reason {
            FileReason::Named => "you named it",
            FileReason::Changed => "changed since last time",
            FileReason::Program => "your program",
        };
        let why = match ex.anchor {
            Some(a) => format!("{why}; {}", a.describe()),
            None => why.to_string(),
        };
        body.push_str(&format!("\n{} ({why}):\n\n", ex.title()));
        let fence = if ex.path.ends_with(".rs") {
            "rust"
        } else if ex.path.ends_with(".py") {
            "python"
        } else {
            ""
        };
        body.push_str(&format!("```{fence}\n{}\n```\n", ex.lines.join("\n")));
    }
    Some(section(
        Part::Code,
        "What I looked at",
        body.trim_start().to_string(),
    ))
}

fn discovery(s: &Situation<'_>, book: &Playbook, given: &mut Vec<String>) -> Vec<Section> {
    let command = s.settings.command_line();
    let experiment = rotate(&s.concept.experiments, 0).unwrap_or("");
    let f = filler(s, experiment, &command);
    let fixed: Vec<String> = match &s.calibration.reason {
        Reason::CheckNowPasses { fixed } => fixed.clone(),
        _ => vec![],
    };
    let mut sections = Vec::new();

    let mut found = if s.facts.own_changes && !s.facts.fixed.is_empty() {
        format!(
            "It passes now, and the change that did it is yours. {}",
            book.discovery.acknowledge
        )
    } else if !s.facts.fixed.is_empty() {
        format!("It passes now. {}", book.discovery.acknowledge)
    } else {
        "Every objective passes in this review.".to_string()
    };
    for fact in s.facts.all() {
        found.push(' ');
        found.push_str(&fact);
    }
    let figures = s.checks.figures();
    let objectives: Vec<String> = fixed
        .iter()
        .map(|id| {
            let mut line = format!("- `{id}`");
            if let Some(o) = s.lesson.objective(id).filter(|o| !o.text.is_empty()) {
                line.push_str(&format!(" — {}", o.text.trim_end_matches('.')));
            }
            if let Some(fig) = figures.iter().find(|f| &f.objective == id) {
                line.push_str(&format!(
                    ": measured {} (target {})",
                    fig.figure, fig.target
                ));
            }
            line
        })
        .collect();
    if !objectives.is_empty() {
        found.push_str("\n\nNow passing:\n\n");
        found.push_str(&objectives.join("\n"));
    }
    found.push_str(&format!(
        "\n\nWhat you discovered is **{}** — the idea of section \"{}\" in lesson {}.",
        s.concept.title, s.concept.section, s.lesson.number
    ));
    sections.push(section(Part::Discovery, "What you discovered", found));

    let mut qs: Vec<String> = book.discovery.questions.clone();
    qs.push(fill(&book.techniques.explain_it_back, &f));
    if let Some(q) = s.concept.questions.first() {
        qs.push(format!("Looking back: {q}"));
    }
    given.push(format!("questions:{}", qs.len()));
    sections.push(Section {
        part: Part::Questions,
        title: "Explain it back".into(),
        body: numbered(&qs),
        items: qs,
    });

    let mut connection = format!(
        "{} is one piece of lesson {} (\"{}\"): {}",
        s.concept.title, s.lesson.number, s.lesson.title, s.lesson.summary
    );
    if !s.lesson.next.is_empty() {
        connection.push_str("\n\n");
        connection.push_str(&fill(&book.discovery.next, &f));
        connection.push_str(&format!(
            " When you are ready: `statecraft coach {} \"…\"`.",
            s.lesson.number + 1
        ));
    }
    sections.push(section(
        Part::Connection,
        "The broader concept and what comes next",
        connection,
    ));

    let mut steps = vec![fill(&book.techniques.scale_up, &f)];
    if !experiment.is_empty() {
        steps.push(fill(&book.techniques.predict_then_test, &f));
    }
    steps.push(fill(&book.techniques.alternative, &f));
    steps.push(fill(&book.techniques.check, &f));
    given.push("discovery".into());
    sections.push(section(Part::NextSteps, "Next steps", numbered(&steps)));
    sections
}

fn sources(s: &Situation<'_>) -> Vec<Source> {
    let mut out = vec![Source::Lesson {
        path: s.lesson.path.display().to_string(),
        section: s.concept.section.clone(),
    }];
    for ex in &s.review.excerpts {
        out.push(Source::File {
            location: ex.location(),
            reason: match ex.reason {
                FileReason::Named => "named",
                FileReason::Changed => "changed",
                FileReason::Program => "program",
            }
            .into(),
            function: ex.function.as_ref().map(|f| match ex.anchor {
                Some(a) => format!("{f} ({})", a.describe()),
                None => f.clone(),
            }),
        });
    }
    out.push(Source::Journal {
        path: s.journal.0.to_string(),
        entries: s.journal.1,
    });
    for f in s.checks.figures() {
        out.push(Source::Check {
            objective: f.objective.clone(),
            passed: f.passed,
            figure: f.figure.clone(),
            target: f.target.clone(),
        });
    }
    for e in &s.located.evidence {
        out.push(Source::Evidence { detail: e.clone() });
    }
    out
}

fn section(part: Part, title: &str, body: String) -> Section {
    Section {
        part,
        title: title.to_string(),
        body,
        items: vec![],
    }
}

fn numbered(items: &[String]) -> String {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {s}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}
