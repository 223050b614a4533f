//! JSON Pointer (RFC 6901): parsing a path and finding, creating or removing
//! the member it names inside a key's value.
//!
//! Owns: the `path` field of an event, from its wire string to the place in a
//! [`Value`] that an op reads or writes.
//!
//! Invariant: every navigation helper either fails **before** it changes
//! anything or succeeds. Errors can only arise at nodes that already exist (a
//! scalar in the way, a bad or out-of-range array index); once a helper has
//! created a node, every deeper token lands in that fresh object, where nothing
//! can fail. Ops rely on this to leave a key untouched when they reject an
//! event.
//!
//! Paths in this crate:
//! - `""` is the whole value; otherwise the path starts with `/` and each `/`
//!   begins one reference token; `~1` decodes to `/` and `~0` to `~`; any other
//!   `~` escape is an error.
//! - In an array a token is a decimal index without leading zeros (`0`, `17`),
//!   or `-`, the position after the last element (append).
//! - Writes create missing intermediates as **objects** (a missing `/a` in
//!   `/a/0` becomes `{"0": …}`, never an array); `-` in an existing array
//!   appends a new element. A numeric index must point at an existing element.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::event::RejectCode;
use crate::limits::Rejection;

/// A parsed JSON Pointer (RFC 6901): the unescaped reference tokens.
///
/// Invariant: `tokens` are already unescaped; [`Pointer::root`] (no tokens)
/// addresses the whole value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Pointer {
    /// Unescaped reference tokens, outermost first.
    tokens: Vec<String>,
}

impl Pointer {
    /// The pointer to the whole value (`""`).
    pub fn root() -> Pointer {
        Pointer { tokens: Vec::new() }
    }

    /// Parses a JSON Pointer: `""` is the whole value; anything else must start
    /// with `/`; `~0` is `~`, `~1` is `/`, any other `~` is an
    /// [`RejectCode::InvalidPath`] rejection.
    pub fn parse(path: &str) -> Result<Pointer, Rejection> {
        Pointer::check(path)?;
        let tokens = raw_tokens(path)
            .map(|raw| unescape(raw).into_owned())
            .collect();
        Ok(Pointer { tokens })
    }

    /// Checks `path`'s syntax without allocating and returns how many
    /// reference tokens it has (0 for `""`).
    pub fn check(path: &str) -> Result<usize, Rejection> {
        if path.is_empty() {
            return Ok(0);
        }
        if !path.starts_with('/') {
            return Err(Rejection::new(
                RejectCode::InvalidPath,
                format!("invalid JSON Pointer {path:?}: it must be empty or start with '/'"),
            ));
        }
        let bytes = path.as_bytes();
        let mut tokens = 0;
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'/' => tokens += 1,
                b'~' if !matches!(bytes.get(i + 1), Some(b'0' | b'1')) => {
                    return Err(Rejection::new(
                        RejectCode::InvalidPath,
                        format!(
                            "invalid JSON Pointer {path:?}: '~' at byte {i} must be followed by \
                             '0' (for '~') or '1' (for '/')"
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(tokens)
    }

    /// The unescaped reference tokens, outermost first.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// True for `""`, the pointer to the whole value.
    pub fn is_root(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Reads the member this pointer names: `Ok(None)` when it does not exist
    /// (a missing object member, an index past the end, `-`).
    ///
    /// Errors ([`RejectCode::InvalidPath`]): the path leads through a scalar,
    /// or a token inside an array is not an index.
    pub fn get<'v>(&self, value: &'v Value) -> Result<Option<&'v Value>, Rejection> {
        let mut cur = value;
        for (depth, token) in self.tokens.iter().enumerate() {
            let next = match cur {
                Value::Object(map) => map.get(token.as_str()),
                Value::Array(items) => match ArrayToken::parse(token) {
                    Some(ArrayToken::Index(i)) => items.get(i),
                    Some(ArrayToken::End) => None,
                    None => return Err(self.not_an_index(depth)),
                },
                scalar => return Err(self.through_scalar(depth, scalar)),
            };
            match next {
                Some(v) => cur = v,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// What a write at this pointer would find, without creating anything:
    /// `Ok(Some(v))` when the target exists, `Ok(None)` when it (or one of its
    /// parents) is missing and [`Pointer::get_mut_or_create`] would create it.
    ///
    /// `slot` is a key's whole value (`None` = the key is absent). Fails with
    /// the same errors as [`Pointer::get_mut_or_create`], so an op can check
    /// the old target, then create it knowing the creation will succeed.
    pub fn get_for_write<'v>(
        &self,
        slot: Option<&'v Value>,
    ) -> Result<Option<&'v Value>, Rejection> {
        let Some(mut cur) = slot else {
            return Ok(None);
        };
        for (depth, token) in self.tokens.iter().enumerate() {
            let next = match cur {
                Value::Object(map) => map.get(token.as_str()),
                Value::Array(items) => match self.write_index(depth, token, items.len())? {
                    ArrayToken::Index(i) => items.get(i),
                    ArrayToken::End => None,
                },
                scalar => return Err(self.through_scalar(depth, scalar)),
            };
            match next {
                Some(v) => cur = v,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// The member this pointer names, created if missing, for a write.
    ///
    /// `slot` is a key's whole value (`None` = the key is absent; a non-root
    /// pointer then makes it an object). Missing intermediates become empty
    /// objects; `-` in an existing array pushes a new element; a missing
    /// target is created as `null` for the caller to overwrite.
    ///
    /// Errors ([`RejectCode::InvalidPath`]), always before anything changed:
    /// the path leads through a scalar; a token in an existing array is not an
    /// index or `-`; an index is out of range.
    pub fn get_mut_or_create<'v>(
        &self,
        slot: &'v mut Option<Value>,
    ) -> Result<&'v mut Value, Rejection> {
        let fresh_root = if self.is_root() {
            Value::Null
        } else {
            Value::Object(Map::new())
        };
        let mut cur = slot.get_or_insert(fresh_root);
        let last = self.tokens.len().saturating_sub(1);
        for (depth, token) in self.tokens.iter().enumerate() {
            let fresh = || {
                if depth == last {
                    Value::Null
                } else {
                    Value::Object(Map::new())
                }
            };
            cur = match cur {
                Value::Object(map) => {
                    // Two lookups on the existing-member path so that no key
                    // String is allocated unless a member is created.
                    if !map.contains_key(token.as_str()) {
                        map.insert(token.clone(), fresh());
                    }
                    match map.get_mut(token.as_str()) {
                        Some(v) => v,
                        None => return Err(self.internal(depth)),
                    }
                }
                Value::Array(items) => {
                    let index = match self.write_index(depth, token, items.len())? {
                        ArrayToken::Index(i) => i,
                        ArrayToken::End => {
                            items.push(fresh());
                            items.len() - 1
                        }
                    };
                    match items.get_mut(index) {
                        Some(v) => v,
                        None => return Err(self.internal(depth)),
                    }
                }
                scalar => return Err(self.through_scalar(depth, scalar)),
            };
        }
        Ok(cur)
    }

    /// Removes the member this pointer names and returns it; `Ok(None)` when
    /// it does not exist (nothing changes). The root pointer takes the whole
    /// value out of `slot`. Removing an array element shifts the later ones.
    ///
    /// Errors ([`RejectCode::InvalidPath`]), always before anything changed:
    /// the path leads through a scalar, or a token in an array is not an index.
    pub fn remove(&self, slot: &mut Option<Value>) -> Result<Option<Value>, Rejection> {
        let Some((last_token, parents)) = self.tokens.split_last() else {
            return Ok(slot.take());
        };
        let Some(mut cur) = slot.as_mut() else {
            return Ok(None);
        };
        for (depth, token) in parents.iter().enumerate() {
            let next = match cur {
                Value::Object(map) => map.get_mut(token.as_str()),
                Value::Array(items) => match ArrayToken::parse(token) {
                    Some(ArrayToken::Index(i)) => items.get_mut(i),
                    Some(ArrayToken::End) => None,
                    None => return Err(self.not_an_index(depth)),
                },
                scalar => return Err(self.through_scalar(depth, scalar)),
            };
            match next {
                Some(v) => cur = v,
                None => return Ok(None),
            }
        }
        let depth = parents.len();
        match cur {
            Value::Object(map) => Ok(map.remove(last_token.as_str())),
            Value::Array(items) => match ArrayToken::parse(last_token) {
                Some(ArrayToken::Index(i)) if i < items.len() => Ok(Some(items.remove(i))),
                Some(_) => Ok(None),
                None => Err(self.not_an_index(depth)),
            },
            scalar => Err(self.through_scalar(depth, scalar)),
        }
    }

    /// The pointer made of the first `n` tokens, as a display string
    /// (`"/a/b"`, or `"the root"` for none).
    fn prefix_display(&self, n: usize) -> String {
        if n == 0 {
            return "the root".to_owned();
        }
        let prefix = Pointer {
            tokens: self.tokens.iter().take(n).cloned().collect(),
        };
        prefix.to_string()
    }

    /// Resolves an array token for a write: an in-range index, or `-`.
    fn write_index(&self, depth: usize, token: &str, len: usize) -> Result<ArrayToken, Rejection> {
        match ArrayToken::parse(token) {
            Some(ArrayToken::Index(i)) if i >= len => Err(Rejection::new(
                RejectCode::InvalidPath,
                format!(
                    "path {self}: index {i} is out of range for the array of length {len} at {} \
                     (use '-' to append)",
                    self.prefix_display(depth)
                ),
            )),
            Some(t) => Ok(t),
            None => Err(self.not_an_index(depth)),
        }
    }

    fn not_an_index(&self, depth: usize) -> Rejection {
        let token = self.tokens.get(depth).map_or("", String::as_str);
        Rejection::new(
            RejectCode::InvalidPath,
            format!(
                "path {self}: {} is an array, and {token:?} is not an array index or '-'",
                self.prefix_display(depth)
            ),
        )
    }

    fn through_scalar(&self, depth: usize, scalar: &Value) -> Rejection {
        Rejection::new(
            RejectCode::InvalidPath,
            format!(
                "path {self} leads through {} at {}, which has no members",
                type_name(scalar),
                self.prefix_display(depth)
            ),
        )
    }

    /// A member just ensured to exist was not found: cannot happen; reported
    /// rather than panicking.
    fn internal(&self, depth: usize) -> Rejection {
        Rejection::new(
            RejectCode::InvalidPath,
            format!(
                "path {self}: internal error: member at {} vanished",
                self.prefix_display(depth + 1)
            ),
        )
    }
}

impl fmt::Display for Pointer {
    /// Writes the pointer in its escaped wire form (`/a~1b/m~0n`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for token in &self.tokens {
            f.write_str("/")?;
            for c in token.chars() {
                match c {
                    '~' => f.write_str("~0")?,
                    '/' => f.write_str("~1")?,
                    c => fmt::Write::write_char(f, c)?,
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Pointer {
    type Err = Rejection;

    fn from_str(s: &str) -> Result<Pointer, Rejection> {
        Pointer::parse(s)
    }
}

/// "a string", "an object", … for error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A reference token applied to an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayToken {
    /// An element index.
    Index(usize),
    /// `-`: the position after the last element.
    End,
}

impl ArrayToken {
    /// RFC 6901 `array-index = "0" / ( %x31-39 *DIGIT )`, or `-`; `None` for
    /// anything else (including an index too large for `usize`).
    fn parse(token: &str) -> Option<ArrayToken> {
        if token == "-" {
            return Some(ArrayToken::End);
        }
        let bytes = token.as_bytes();
        let well_formed = match bytes {
            [] => false,
            [b'0'] => true,
            [b'0', ..] => false,
            _ => bytes.iter().all(u8::is_ascii_digit),
        };
        if !well_formed {
            return None;
        }
        token.parse().ok().map(ArrayToken::Index)
    }
}

/// The raw (still escaped) tokens of a syntactically valid, non-empty path.
fn raw_tokens(path: &str) -> impl Iterator<Item = &str> {
    // `path` starts with '/', so the first split piece is "" and skipped.
    path.split('/').skip(1)
}

/// Decodes `~1` → `/` then `~0` → `~` (in that order, per RFC 6901 §4, so
/// `~01` is `~1`). Borrows when there is nothing to decode.
fn unescape(raw: &str) -> Cow<'_, str> {
    if raw.contains('~') {
        Cow::Owned(raw.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Pointer {
        Pointer::parse(s).expect("valid pointer")
    }

    fn err_code(r: Result<impl fmt::Debug, Rejection>) -> RejectCode {
        r.expect_err("expected a rejection").code
    }

    #[test]
    fn parses_root_and_tokens() {
        assert!(p("").is_root());
        assert_eq!(p("/").tokens(), [""]);
        assert_eq!(p("/a/b").tokens(), ["a", "b"]);
        assert_eq!(p("//x/").tokens(), ["", "x", ""]);
        assert!(!p("/a").is_root());
        assert_eq!(Pointer::root(), p(""));
    }

    #[test]
    fn decodes_escapes() {
        assert_eq!(p("/a~1b").tokens(), ["a/b"]);
        assert_eq!(p("/m~0n").tokens(), ["m~n"]);
        // ~01 is "~1", not "/": ~1 is decoded before ~0.
        assert_eq!(p("/~01").tokens(), ["~1"]);
        assert_eq!(p("/~10").tokens(), ["/0"]);
    }

    #[test]
    fn refuses_bad_syntax() {
        for bad in ["a", "a/b", "/a~", "/a~2", "/~x/b", "/ok/~"] {
            let rej = Pointer::parse(bad).expect_err(bad);
            assert_eq!(rej.code, RejectCode::InvalidPath, "{bad}");
            assert!(rej.message.contains(&format!("{bad:?}")), "{}", rej.message);
        }
    }

    #[test]
    fn check_counts_tokens_without_parsing() {
        assert_eq!(Pointer::check("").ok(), Some(0));
        assert_eq!(Pointer::check("/").ok(), Some(1));
        assert_eq!(Pointer::check("/a~1b/c").ok(), Some(2));
        assert!(Pointer::check("x").is_err());
    }

    #[test]
    fn display_round_trips_escapes() {
        for s in ["", "/", "/a~1b/m~0n", "/~01", "/x/0/-"] {
            assert_eq!(p(s).to_string(), s);
            assert_eq!(s.parse::<Pointer>().ok(), Some(p(s)));
        }
    }

    #[test]
    fn array_tokens_follow_rfc() {
        assert_eq!(ArrayToken::parse("0"), Some(ArrayToken::Index(0)));
        assert_eq!(ArrayToken::parse("17"), Some(ArrayToken::Index(17)));
        assert_eq!(ArrayToken::parse("-"), Some(ArrayToken::End));
        for bad in [
            "",
            "01",
            "+1",
            "-1",
            "1a",
            " 1",
            "99999999999999999999999999",
        ] {
            assert_eq!(ArrayToken::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn get_reads_members_escapes_and_indexes() {
        let v = json!({"a/b": 1, "m~n": 2, "arr": [10, {"x": 3}], "": {"": 4}});
        assert_eq!(p("").get(&v).ok(), Some(Some(&v)));
        assert_eq!(p("/a~1b").get(&v).ok(), Some(Some(&json!(1))));
        assert_eq!(p("/m~0n").get(&v).ok(), Some(Some(&json!(2))));
        assert_eq!(p("/arr/1/x").get(&v).ok(), Some(Some(&json!(3))));
        assert_eq!(p("//").get(&v).ok(), Some(Some(&json!(4))));
        assert_eq!(p("/missing/deeper").get(&v).ok(), Some(None));
        assert_eq!(p("/arr/2").get(&v).ok(), Some(None));
        assert_eq!(p("/arr/-").get(&v).ok(), Some(None));
    }

    #[test]
    fn get_refuses_scalars_in_the_way_and_non_indexes() {
        let v = json!({"s": "text", "arr": [1]});
        let rej = p("/s/x").get(&v).expect_err("through a string");
        assert_eq!(rej.code, RejectCode::InvalidPath);
        assert!(rej.message.contains("/s/x"), "{}", rej.message);
        assert!(rej.message.contains("a string at /s"), "{}", rej.message);
        assert_eq!(err_code(p("/arr/x").get(&v)), RejectCode::InvalidPath);
        assert_eq!(err_code(p("/arr/01").get(&v)), RejectCode::InvalidPath);
        assert_eq!(err_code(p("/a").get(&json!(5))), RejectCode::InvalidPath);
    }

    #[test]
    fn creates_intermediate_objects_in_an_absent_key() {
        let mut slot = None;
        *p("/a/b/c").get_mut_or_create(&mut slot).expect("creates") = json!(1);
        assert_eq!(slot, Some(json!({"a": {"b": {"c": 1}}})));
        // A numeric token under a created intermediate is an object key.
        *p("/x/0").get_mut_or_create(&mut slot).expect("creates") = json!(2);
        assert_eq!(slot, Some(json!({"a": {"b": {"c": 1}}, "x": {"0": 2}})));
    }

    #[test]
    fn root_pointer_creates_null_placeholder() {
        let mut slot = None;
        assert_eq!(
            p("").get_mut_or_create(&mut slot).ok().cloned(),
            Some(Value::Null)
        );
        let mut slot = Some(json!(7));
        assert_eq!(
            p("").get_mut_or_create(&mut slot).ok().cloned(),
            Some(json!(7))
        );
    }

    #[test]
    fn writes_by_index_and_appends_with_dash() {
        let mut slot = Some(json!({"arr": [1, 2]}));
        *p("/arr/0").get_mut_or_create(&mut slot).expect("index") = json!(9);
        *p("/arr/-").get_mut_or_create(&mut slot).expect("append") = json!(3);
        *p("/arr/-/k")
            .get_mut_or_create(&mut slot)
            .expect("append obj") = json!(4);
        assert_eq!(slot, Some(json!({"arr": [9, 2, 3, {"k": 4}]})));
    }

    #[test]
    fn write_errors_leave_the_value_untouched() {
        let original = json!({"s": "text", "arr": [1, 2], "n": null});
        for (path, needle) in [
            ("/s/x", "a string at /s"),
            ("/n/x", "null at /n"),
            ("/arr/5", "out of range"),
            ("/arr/2", "out of range"),
            ("/arr/x/y", "not an array index"),
            ("/arr/01", "not an array index"),
        ] {
            let mut slot = Some(original.clone());
            let rej = p(path).get_mut_or_create(&mut slot).expect_err(path);
            assert_eq!(rej.code, RejectCode::InvalidPath, "{path}");
            assert!(rej.message.contains(needle), "{path}: {}", rej.message);
            assert!(rej.message.contains(path), "{path}: {}", rej.message);
            assert_eq!(slot.as_ref(), Some(&original), "{path}");
            let probe = p(path).get_for_write(Some(&original));
            assert_eq!(probe.map_err(|r| r.code), Err(RejectCode::InvalidPath));
        }
        let mut scalar = Some(json!(5));
        assert!(p("/a").get_mut_or_create(&mut scalar).is_err());
        assert_eq!(scalar, Some(json!(5)));
    }

    #[test]
    fn get_for_write_reports_existing_or_missing() {
        let v = json!({"a": {"b": 1}, "arr": [1]});
        assert_eq!(
            p("/a/b").get_for_write(Some(&v)).ok(),
            Some(Some(&json!(1)))
        );
        assert_eq!(p("/a/c/d").get_for_write(Some(&v)).ok(), Some(None));
        assert_eq!(p("/arr/-").get_for_write(Some(&v)).ok(), Some(None));
        assert_eq!(p("/x").get_for_write(None).ok(), Some(None));
        assert_eq!(p("").get_for_write(Some(&v)).ok(), Some(Some(&v)));
    }

    #[test]
    fn remove_members_elements_and_missing() {
        let mut slot = Some(json!({"a/b": 1, "arr": [1, 2, 3], "o": {"x": 1}}));
        assert_eq!(p("/a~1b").remove(&mut slot).ok(), Some(Some(json!(1))));
        assert_eq!(p("/arr/1").remove(&mut slot).ok(), Some(Some(json!(2))));
        assert_eq!(p("/arr/9").remove(&mut slot).ok(), Some(None));
        assert_eq!(p("/arr/-").remove(&mut slot).ok(), Some(None));
        assert_eq!(p("/o/missing").remove(&mut slot).ok(), Some(None));
        assert_eq!(p("/gone/deeper").remove(&mut slot).ok(), Some(None));
        assert_eq!(slot, Some(json!({"arr": [1, 3], "o": {"x": 1}})));
        assert_eq!(p("/x").remove(&mut None).ok(), Some(None));
        assert!(p("").remove(&mut slot).ok().flatten().is_some());
        assert_eq!(slot, None);
    }

    #[test]
    fn remove_errors_leave_the_value_untouched() {
        let original = json!({"s": "text", "arr": [1]});
        for path in ["/s/x", "/arr/x", "/s/x/y"] {
            let mut slot = Some(original.clone());
            assert_eq!(err_code(p(path).remove(&mut slot)), RejectCode::InvalidPath);
            assert_eq!(slot.as_ref(), Some(&original));
        }
    }
}
