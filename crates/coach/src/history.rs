//! `statecraft coach N --history`: what was asked, given and measured on a lesson.
//!
//! Invariant: a read-only view of the journal — listing history never writes.

use crate::journal::{Journal, JournalEntry};

/// The lesson's journal entries, oldest first.
pub fn entries(journal: &Journal, lesson: u32) -> Vec<&JournalEntry> {
    journal
        .entries
        .iter()
        .filter(|e| e.lesson() == lesson)
        .collect()
}

/// The history as Markdown-ish plain lines.
pub fn to_text(journal: &Journal, lesson: u32) -> String {
    let list = entries(journal, lesson);
    let mut out = format!("# Coaching history · lesson {lesson}\n\n");
    if list.is_empty() {
        out.push_str("Nothing yet: ask a question with `statecraft coach ");
        out.push_str(&format!(
            "{lesson} \"…\"` or run `statecraft coach {lesson} review`.\n"
        ));
        return out;
    }
    for e in list {
        match e {
            JournalEntry::Coach(c) => {
                let what = if c.mode == "discovery" {
                    "discovery".to_string()
                } else {
                    format!("level {}", c.level)
                };
                out.push_str(&format!(
                    "- {} · coach · {} · {} · {}{}\n",
                    utc(c.time),
                    if c.question_kind.is_empty() {
                        "question"
                    } else {
                        &c.question_kind
                    },
                    c.concept,
                    what,
                    if c.source == "llm" { " · llm" } else { "" }
                ));
                if !c.question.is_empty() {
                    out.push_str(&format!("  asked: \"{}\"\n", c.question));
                }
                if !c.given.is_empty() {
                    out.push_str(&format!("  given: {}\n", c.given.join(", ")));
                }
            }
            JournalEntry::Check(c) => {
                let result = if c.passed {
                    "all objectives passed".to_string()
                } else {
                    format!("failed: {}", c.failed.join(", "))
                };
                out.push_str(&format!("- {} · check · {result}\n", utc(c.time)));
            }
        }
    }
    out
}

/// The history as a JSON array.
pub fn to_json(journal: &Journal, lesson: u32) -> String {
    serde_json::to_string_pretty(&entries(journal, lesson)).unwrap_or_else(|_| "[]".into())
}

/// `YYYY-MM-DD HH:MM UTC` for unix seconds (proleptic Gregorian calendar).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
