//! The workspace journal, `.statecraft/journal.jsonl`: what was asked, given and measured.
//!
//! One JSON object per line, append-only, shared with the checker. The coach
//! writes `kind = "coach"` lines (lesson, concept, time, level given, …); the
//! checker writes `kind = "check"` lines (lesson, passed, time, failed ids).
//! Invariant: the coach never rewrites or drops a line it did not write — it
//! only appends — and a line it cannot parse (another tool's, a torn write) is
//! skipped, never an error, so a damaged journal degrades calibration to
//! "first contact" instead of stopping the coach.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CoachError;

/// The journal's path inside a workspace.
pub fn journal_path(workspace: &Path) -> PathBuf {
    workspace.join(".statecraft").join("journal.jsonl")
}

/// One coaching answer, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoachEntry {
    /// The lesson number.
    pub lesson: u32,
    /// The concept id coached on.
    pub concept: String,
    /// Unix seconds when the answer was given.
    pub time: u64,
    /// The calibration level given (1 gentle … 3 most direct).
    pub level: u8,
    /// `guide` or `discovery`.
    #[serde(default)]
    pub mode: String,
    /// The kind of question (`conceptual`, `stuck`, `bug`, `design`, `performance`, `review`).
    #[serde(default)]
    pub question_kind: String,
    /// The learner's question (empty for a review).
    #[serde(default)]
    pub question: String,
    /// What was given, as short tags (`hint:2`, `pattern:python:full`, `experiment:0`).
    #[serde(default)]
    pub given: Vec<String>,
    /// `offline` or `llm`.
    #[serde(default)]
    pub source: String,
    /// Fingerprints of the learner's functions when the answer was given
    /// (`main.py::collect_batch` → hash): what changed between two asks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub code: BTreeMap<String, u64>,
}

/// One check run, as the checker records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckEntry {
    /// The lesson number.
    pub lesson: u32,
    /// Whether every objective passed.
    pub passed: bool,
    /// Unix seconds of the run.
    pub time: u64,
    /// Ids of the objectives that failed.
    #[serde(default)]
    pub failed: Vec<String>,
    /// The measured figure per objective, when the checker recorded them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub figures: BTreeMap<String, String>,
}

/// A journal line the coach understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum JournalEntry {
    /// A coaching answer.
    Coach(CoachEntry),
    /// A check run.
    Check(CheckEntry),
}

impl JournalEntry {
    /// The entry's time, unix seconds.
    pub fn time(&self) -> u64 {
        match self {
            JournalEntry::Coach(c) => c.time,
            JournalEntry::Check(c) => c.time,
        }
    }

    /// The entry's lesson.
    pub fn lesson(&self) -> u32 {
        match self {
            JournalEntry::Coach(c) => c.lesson,
            JournalEntry::Check(c) => c.lesson,
        }
    }
}

/// The journal of one workspace, read into memory (file order kept).
#[derive(Debug, Clone, Default)]
pub struct Journal {
    /// Where it lives.
    pub path: PathBuf,
    /// The entries the coach could parse, in file order.
    pub entries: Vec<JournalEntry>,
}

impl Journal {
    /// Reads the journal of `workspace`; a missing file is an empty journal.
    pub fn read(workspace: &Path) -> Result<Journal, CoachError> {
        let path = journal_path(workspace);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(CoachError::io("reading", path, e)),
        };
        Ok(Journal {
            entries: parse_lines(&text),
            path,
        })
    }

    /// Coaching entries of `lesson`, oldest first.
    pub fn coaching(&self, lesson: u32) -> impl Iterator<Item = &CoachEntry> {
        self.entries.iter().filter_map(move |e| match e {
            JournalEntry::Coach(c) if c.lesson == lesson => Some(c),
            _ => None,
        })
    }

    /// Check runs of `lesson`, oldest first.
    pub fn checks(&self, lesson: u32) -> impl Iterator<Item = &CheckEntry> {
        self.entries.iter().filter_map(move |e| match e {
            JournalEntry::Check(c) if c.lesson == lesson => Some(c),
            _ => None,
        })
    }

    /// The most recent coaching entry of any lesson ("the last coaching session").
    pub fn last_coaching(&self) -> Option<&CoachEntry> {
        self.entries.iter().rev().find_map(|e| match e {
            JournalEntry::Coach(c) => Some(c),
            JournalEntry::Check(_) => None,
        })
    }

    /// Appends one entry (creating `.statecraft/` if needed) and keeps it in memory.
    pub fn append(&mut self, entry: JournalEntry) -> Result<(), CoachError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CoachError::io("creating", dir, e))?;
        }
        let mut line = serde_json::to_string(&entry)
            .map_err(|e| CoachError::io("encoding", &self.path, std::io::Error::other(e)))?;
        line.push('\n');
        // One write of a whole line with O_APPEND: concurrent appenders (the
        // checker) interleave by line, never inside one.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| CoachError::io("opening", &self.path, e))?;
        file.write_all(line.as_bytes())
            .map_err(|e| CoachError::io("appending to", &self.path, e))?;
        self.entries.push(entry);
        Ok(())
    }
}

/// Parses journal text, skipping lines that are not entries the coach knows.
pub fn parse_lines(text: &str) -> Vec<JournalEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str::<JournalEntry>(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds_and_skips_garbage() {
        let text = r#"{"kind":"check","lesson":1,"passed":false,"time":10,"failed":["throughput"]}
not json
{"kind":"coach","lesson":1,"concept":"x","time":20,"level":2}
{"kind":"other","lesson":1}
{"kind":"check","lesson":2,"passed":true,"time":30,"failed":[]}"#;
        let entries = parse_lines(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].time(), 20);
        assert_eq!(entries[2].lesson(), 2);
    }

    #[test]
    fn append_creates_the_directory_and_round_trips() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut journal = Journal::read(dir.path())?;
        assert!(journal.entries.is_empty());
        journal.append(JournalEntry::Check(CheckEntry {
            lesson: 3,
            passed: true,
            time: 5,
            failed: vec![],
            figures: BTreeMap::new(),
        }))?;
        let again = Journal::read(dir.path())?;
        assert_eq!(again.entries, journal.entries);
        assert_eq!(again.checks(3).count(), 1);
        Ok(())
    }
}
