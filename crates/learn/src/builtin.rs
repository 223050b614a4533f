//! The built-in lessons: the repository's `lessons/*.md`, compiled into the binary
//! with `include_str!` so `statecraft check` and `statecraft coach` work from any
//! directory, without a workspace.
//!
//! Invariant: the table is sorted by lesson number, each entry's file name is the
//! name of the file it includes, and every entry passes
//! [`crate::lesson::parse_lesson`] (tested in `tests/lessons_valid.rs`, which also
//! checks that the table lists every file of `lessons/`).

/// Declares the table from file names, so a name and its `include_str!` path can
/// never disagree.
macro_rules! lessons {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../lessons/", $name)))),*]
    };
}

static LESSONS: &[(&str, &str)] = lessons![
    "001_basics.md",
    "002_asyncio.md",
    "003_backpressure.md",
    "004_parallelism.md",
    "005_durability.md",
    "006_observability.md",
    "007_adaptive_queue.md",
    "008_scale_out.md",
    "009_production.md",
];

/// Every built-in lesson as `(file name, full text)`, sorted by number.
pub fn lessons() -> &'static [(&'static str, &'static str)] {
    LESSONS
}

/// The built-in lesson with this number, as `(file name, full text)`.
pub fn lesson(number: u32) -> Option<(&'static str, &'static str)> {
    let prefix = crate::lesson::lesson_file_name_prefix(number);
    LESSONS
        .iter()
        .find(|(name, _)| name.starts_with(&prefix))
        .copied()
}
