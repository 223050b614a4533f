//! Helpers shared by the coach's scenario tests: workspaces, lessons, assertions.
#![allow(dead_code)]

pub mod mock_llm;

use std::path::{Path, PathBuf};

use statecraft_coach::answer::code_blocks;
use statecraft_coach::material::{self, GAP_MARKER};
use statecraft_coach::{Answer, LessonMaterial, Part};

/// The six parts a model's answer must have (the structure guard), appended to
/// scripted answers whose point is elsewhere.
pub const REST_OF_ANSWER: &str = "\n## What you have right\n\nYou route events already.\n\n## The gap\n\nOwnership.\n\n## Questions to ask yourself\n\n1. Which task owns key `a`?\n2. What breaks with two owners?\n\n## Hint\n\nOne owner per key.\n\n## A pattern to complete\n\n```python\n# TODO: YOUR CODE HERE\n```\n\n## Next steps\n\n1. Predict, then run.\n";

/// The fixture lesson's number (its file is `tests/fixtures/042_counters.md`).
pub const FIXTURE_LESSON: u32 = 42;

/// A fixed, realistic clock for tests.
pub const T0: u64 = 1_760_000_000;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A temporary workspace holding the fixture lesson in `lessons/` and a
/// `.statecraft/workspace.toml` with `lang`.
pub fn workspace(lang: &str) -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let lessons = dir.path().join("lessons");
    std::fs::create_dir_all(&lessons)?;
    std::fs::copy(fixture_path(), lessons.join("042_counters.md"))?;
    std::fs::create_dir_all(dir.path().join(".statecraft"))?;
    std::fs::write(
        dir.path().join(".statecraft/workspace.toml"),
        format!("lang = \"{lang}\"\ncommand = [\"python3\", \"main.py\"]\n"),
    )?;
    std::fs::write(
        dir.path().join("main.py"),
        "import asyncio, json, sys\n\nasync def owner(queue, counters):\n    while True:\n        event = await queue.get()\n        # TODO: YOUR CODE HERE\n",
    )?;
    Ok(dir)
}

pub fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/042_counters.md")
}

/// The fixture lesson, loaded through the real loader from the workspace.
pub fn fixture(ws: &Path) -> Result<LessonMaterial, Box<dyn std::error::Error>> {
    Ok(material::load(FIXTURE_LESSON, Some(ws))?)
}

/// Rule 6 over a whole answer: no code block longer than 6 lines without a gap.
pub fn assert_no_solution_blocks(markdown: &str) {
    for block in code_blocks(markdown) {
        assert!(
            !block.is_solution(6),
            "a gap-free code block of {} lines:\n{}",
            block.lines.len(),
            block.lines.join("\n")
        );
    }
}

/// The guiding contract every guide answer keeps.
pub fn assert_guides(answer: &Answer, expect_concept: &str, expect_section: &str) {
    let md = answer.to_markdown();
    assert_eq!(answer.concept.id, expect_concept, "concept; answer:\n{md}");
    let questions = answer.section(Part::Questions).map_or(0, |s| s.items.len());
    assert!(questions >= 2, "at least two guiding questions:\n{md}");
    assert!(
        md.contains(&format!("\"{expect_section}\"")),
        "points at section \"{expect_section}\":\n{md}"
    );
    assert_no_solution_blocks(&md);
}

/// Whether the answer carries a pattern block with the gap marker.
pub fn has_gapped_pattern(answer: &Answer) -> bool {
    answer.section(Part::Pattern).is_some_and(|s| {
        code_blocks(&s.body)
            .iter()
            .any(|b| b.lines.iter().any(|l| l.contains(GAP_MARKER)))
    })
}
