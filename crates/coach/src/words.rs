//! Word matching shared by classification and concept finding.
//!
//! Invariant: every comparison goes through [`tokens`], so "Locks", "lock," and
//! "LOCK" match the cue `lock` the same way everywhere, and matching is a pure
//! function of its inputs (the offline coach stays deterministic).

/// Words too common to carry meaning when comparing a question to a misconception.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "if", "then", "so", "to", "of", "in", "on", "at", "by",
    "for", "with", "from", "as", "is", "are", "was", "were", "be", "been", "it", "its", "this",
    "that", "these", "those", "i", "my", "me", "you", "your", "we", "our", "do", "does", "did",
    "can", "could", "should", "would", "will", "just", "not", "no", "all", "any", "every", "than",
    "there", "here", "what", "why", "how", "when", "which", "who", "make", "makes", "have", "has",
    "had", "into", "about", "also", "only", "one", "same", "more", "most", "very", "always",
];

/// Lowercase, split on anything that is not alphanumeric or `_`, light stemming
/// (a trailing plural `s` on words longer than 3 letters).
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(stem)
        .collect()
}

fn stem(word: &str) -> String {
    let w = word.to_lowercase();
    if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w[..w.len() - 1].to_string()
    } else {
        w
    }
}

/// Whether `phrase` (one or more words) occurs as consecutive tokens in `haystack`.
pub fn contains_phrase(haystack: &[String], phrase: &str) -> bool {
    let needle = tokens(phrase);
    if needle.is_empty() || needle.len() > haystack.len() {
        return false;
    }
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_slice())
}

/// The meaningful words of `text` (tokens minus stopwords), deduplicated, in order.
pub fn content_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tokens(text) {
        if t.len() > 1 && !STOPWORDS.contains(&t.as_str()) && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Whether a question states (a close paraphrase of) a misconception: at least
/// 60 % of the misconception's content words, and at least 2, appear in it.
pub fn states_belief(question: &[String], belief: &str) -> bool {
    let words = content_words(belief);
    if words.is_empty() {
        return false;
    }
    let hits = words.iter().filter(|w| question.contains(w)).count();
    hits >= 2 && hits * 10 >= words.len() * 6
}

/// Whether `fragment` (an error message piece) occurs in `text`, ignoring case
/// and runs of whitespace.
pub fn contains_fragment(text: &str, fragment: &str) -> bool {
    let squash = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let f = squash(fragment);
    !f.is_empty() && squash(text).contains(&f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_match_on_word_boundaries_and_plurals() {
        let q = tokens("Why do I get Lost Updates with two workers?");
        assert!(contains_phrase(&q, "lost update"));
        assert!(contains_phrase(&q, "worker"));
        assert!(!contains_phrase(&q, "work"));
    }

    #[test]
    fn beliefs_need_most_of_their_words() {
        let q = tokens("I put a lock around the dict, so the ordering should be correct now");
        assert!(states_belief(
            &q,
            "A lock around the dict makes ordering correct."
        ));
        assert!(!states_belief(
            &q,
            "Batching always adds latency to every event."
        ));
    }

    #[test]
    fn fragments_ignore_case_and_spacing() {
        assert!(contains_fragment(
            "Traceback ...\nRuntimeError:  dictionary changed size during iteration",
            "RuntimeError: dictionary changed size"
        ));
    }
}
