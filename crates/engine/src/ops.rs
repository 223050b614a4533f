//! Applying one event's op to one key's value (DESIGN.md §2): `set`,
//! `merge`, `incr`, `append`, `max`, `min`, `delete` and registered custom
//! ops.
//!
//! Owns: the semantics of each op on a key's whole current value
//! (`Option<Value>`, `None` = absent) and on the member its `path` names.
//!
//! Invariant: [`apply`] is all-or-nothing. Every check (operand, path,
//! target type, overflow) runs before the first change, and the pointer
//! helpers it writes through fail only before they create anything, so a
//! rejected event leaves the key exactly as it was. A shard worker relies on
//! this to reject one event and carry on with the rest of its batch; if it
//! broke, a rejected event would still leave a half-applied value behind.
//!
//! Depth: `apply` expects events that passed
//! [`Limits::validate`](crate::limits::Limits::validate), whose `max_depth`
//! bounds the parts of serde_json that recurse (`Value::clone` of an operand,
//! `drop`). `merge` itself walks the patch with an explicit stack.
//!
//! Hot path: `incr` with no path on an existing integer parses no pointer,
//! clones nothing and allocates nothing.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Map, Number, Value};

use crate::event::{Event, Op, RejectCode};
use crate::limits::Rejection;
use crate::pointer::{Pointer, type_name};

/// A user-registered op: given the key's whole current value (`None` =
/// absent) and the event, returns the key's new whole value (`None` =
/// delete the key), or a rejection that leaves the key untouched. The event's
/// `path`, if any, is the op's to interpret.
pub type CustomOp =
    Arc<dyn Fn(Option<&Value>, &Event) -> Result<Option<Value>, Rejection> + Send + Sync>;

/// Applies `event` to `slot`, a key's whole current value (`None` = absent).
/// On `Ok`, `slot` holds the new value (`None` = the key was deleted); on
/// `Err`, `slot` is exactly as it was.
///
/// `custom` is the registered op for an [`Op::Custom`] event (looked up by
/// the caller by name); it is ignored for built-in ops. An unregistered
/// custom op is [`RejectCode::UnknownOp`].
pub fn apply(
    slot: &mut Option<Value>,
    event: &Event,
    custom: Option<&CustomOp>,
) -> Result<(), Rejection> {
    match &event.op {
        Op::Incr => incr(slot, event),
        Op::Set => set(slot, event),
        Op::Merge => merge(slot, event),
        Op::Append => append(slot, event),
        Op::Max => keep_extreme(slot, event, Ordering::Greater),
        Op::Min => keep_extreme(slot, event, Ordering::Less),
        Op::Delete => delete(slot, event),
        Op::Custom(name) => match custom {
            Some(op) => {
                let new = op(slot.as_ref(), event)?;
                *slot = new;
                Ok(())
            }
            None => Err(Rejection::new(
                RejectCode::UnknownOp,
                format!("unknown op {name:?}: it is neither built in nor registered"),
            )),
        },
    }
}

/// Can [`apply_taking`] apply this event (an op that moves its operand)?
pub fn takes_operand(event: &Event) -> bool {
    match event.op {
        Op::Merge => true,
        Op::Set => matches!(event.path.as_deref(), None | Some("")),
        _ => false,
    }
}

/// [`apply`] with the event's operand taken out of it by the caller
/// (`operand`; the event's own `value` is not read): a `merge` patch is
/// moved into the document — its members become the document's, nothing is
/// cloned and nothing is left to drop — and a whole-value `set` moves its
/// value in. Only for events [`takes_operand`] accepts (others fall back to
/// [`apply`] with `operand` put back). Same result as [`apply`]; on `Err`,
/// `slot` is exactly as it was.
pub fn apply_taking(
    slot: &mut Option<Value>,
    event: &Event,
    operand: Option<Value>,
    custom: Option<&CustomOp>,
) -> Result<(), Rejection> {
    match event.op {
        Op::Merge => {
            let Some(patch) = operand else {
                return Err(missing_operand(event, "a merge patch"));
            };
            let target = match target_pointer(event)? {
                None => slot.get_or_insert(Value::Null),
                Some(pointer) => pointer.get_mut_or_create(slot)?,
            };
            merge_patch_owned(target, patch);
            Ok(())
        }
        Op::Set if takes_operand(event) => match operand {
            Some(v) => {
                *slot = Some(v);
                Ok(())
            }
            None => Err(missing_operand(event, "a value to set")),
        },
        _ => {
            let mut event = event.clone();
            event.value = operand;
            apply(slot, &event, custom)
        }
    }
}

/// `set`: the target becomes `value`; intermediates are created.
fn set(slot: &mut Option<Value>, event: &Event) -> Result<(), Rejection> {
    let value = required_operand(event, "a value to set")?;
    match target_pointer(event)? {
        None => *slot = Some(value.clone()),
        Some(pointer) => *pointer.get_mut_or_create(slot)? = value.clone(),
    }
    Ok(())
}

/// `merge`: RFC 7386 JSON Merge Patch of `value` into the target.
///
/// A missing target merges as if absent (an object patch yields an object
/// without the patch's nulls). The patch applies to the value at `path`: a
/// non-object patch, `null` included, replaces that value (use `delete` to
/// remove a member).
fn merge(slot: &mut Option<Value>, event: &Event) -> Result<(), Rejection> {
    let patch = required_operand(event, "a merge patch")?;
    let target = match target_pointer(event)? {
        None => slot.get_or_insert(Value::Null),
        Some(pointer) => pointer.get_mut_or_create(slot)?,
    };
    merge_patch(target, patch);
    Ok(())
}

/// `incr`: adds `value` (default 1) to the number at the target (missing =
/// 0). Integers stay integers (checked, i64 or u64 range); a float on either
/// side gives a float; an out-of-range result is [`RejectCode::Overflow`].
fn incr(slot: &mut Option<Value>, event: &Event) -> Result<(), Rejection> {
    let by = match &event.value {
        None => Num::Int(1),
        Some(Value::Number(n)) => Num::of(n),
        Some(other) => return Err(operand_not_a_number(event, other)),
    };
    update_target(
        slot,
        event,
        |current| match current {
            None => by.into_number().ok_or_else(|| overflow(event, None, by)),
            Some(Value::Number(n)) => {
                let old = Num::of(n);
                old.add(by)
                    .into_number()
                    .ok_or_else(|| overflow(event, Some(old), by))
            }
            Some(other) => Err(wrong_target(event, "a number", other)),
        },
        |target, sum| *target = Value::Number(sum),
    )
}

/// `max` / `min`: keeps the current number unless `value` is further in the
/// `keep` direction; a missing target takes `value`.
fn keep_extreme(slot: &mut Option<Value>, event: &Event, keep: Ordering) -> Result<(), Rejection> {
    let operand = match &event.value {
        Some(Value::Number(n)) => n,
        Some(other) => return Err(operand_not_a_number(event, other)),
        None => return Err(missing_operand(event, "a number")),
    };
    update_target(
        slot,
        event,
        |current| match current {
            None => Ok(Some(operand.clone())),
            Some(Value::Number(n)) => {
                let replace = Num::of(operand).compare(Num::of(n)) == keep;
                Ok(replace.then(|| operand.clone()))
            }
            Some(other) => Err(wrong_target(event, "a number", other)),
        },
        |target, new| {
            if let Some(n) = new {
                *target = Value::Number(n);
            }
        },
    )
}

/// `append`: pushes `value` onto the array at the target (missing = `[]`);
/// `max_len` (≥ 1) then keeps only the newest `max_len` elements.
fn append(slot: &mut Option<Value>, event: &Event) -> Result<(), Rejection> {
    let item = required_operand(event, "a value to append")?;
    if event.max_len == Some(0) {
        return Err(Rejection::new(
            RejectCode::InvalidOperand,
            "append's max_len must be at least 1 (use set to store an empty array)",
        ));
    }
    update_target(
        slot,
        event,
        |current| match current {
            None | Some(Value::Array(_)) => Ok(()),
            Some(other) => Err(wrong_target(event, "an array", other)),
        },
        |target, ()| {
            if !target.is_array() {
                // The target was missing: the pointer created a null placeholder.
                *target = Value::Array(Vec::new());
            }
            if let Value::Array(items) = target {
                if let Some(max_len) = event.max_len {
                    // Make room first so the push never grows past max_len.
                    let excess = (items.len() + 1).saturating_sub(max_len);
                    items.drain(..excess.min(items.len()));
                }
                items.push(item.clone());
            }
        },
    )
}

/// `delete`: without a path the key goes; with one, that member goes (a
/// missing member is a successful no-op).
fn delete(slot: &mut Option<Value>, event: &Event) -> Result<(), Rejection> {
    match target_pointer(event)? {
        None => *slot = None,
        Some(pointer) => {
            pointer.remove(slot)?;
        }
    }
    Ok(())
}

/// The event's path as a pointer; `None` for the whole value (no path, or
/// `""`), which parses nothing.
fn target_pointer(event: &Event) -> Result<Option<Pointer>, Rejection> {
    match event.path.as_deref() {
        None | Some("") => Ok(None),
        Some(path) => Pointer::parse(path).map(Some),
    }
}

/// The check-then-write skeleton of the typed ops: `plan` sees the current
/// target (`None` = missing) and either refuses or returns what to write;
/// only then is the target located (created as `null` if missing) and handed
/// to `write`, which cannot fail. So a refusal changes nothing.
fn update_target<T>(
    slot: &mut Option<Value>,
    event: &Event,
    plan: impl FnOnce(Option<&Value>) -> Result<T, Rejection>,
    write: impl FnOnce(&mut Value, T),
) -> Result<(), Rejection> {
    let (target, planned) = match target_pointer(event)? {
        None => {
            let planned = plan(slot.as_ref())?;
            (slot.get_or_insert(Value::Null), planned)
        }
        Some(pointer) => {
            let planned = plan(pointer.get_for_write(slot.as_ref())?)?;
            // Cannot fail: get_for_write just accepted the same path.
            (pointer.get_mut_or_create(slot)?, planned)
        }
    };
    write(target, planned);
    Ok(())
}

/// RFC 7386 MergePatch(target, patch), in place, walking nested object
/// patches with an explicit stack (no recursion over the patch's depth).
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_members) = patch else {
        *target = patch.clone();
        return;
    };
    /// One object being patched: the target's members (taken out of the
    /// tree while patched), the patch members left to apply, and the member
    /// name in the parent to put the result back under.
    struct Frame<'p> {
        members: Map<String, Value>,
        patch: serde_json::map::Iter<'p>,
        name_in_parent: &'p str,
    }
    let mut stack = vec![Frame {
        members: into_members(std::mem::take(target)),
        patch: patch_members.iter(),
        name_in_parent: "",
    }];
    while let Some(frame) = stack.last_mut() {
        match frame.patch.next() {
            Some((name, Value::Null)) => {
                frame.members.remove(name);
            }
            Some((name, Value::Object(nested))) => {
                // Take the child out (leaving null in its place, so member
                // order is kept) and patch it as its own frame.
                let child = match frame.members.get_mut(name) {
                    Some(existing) => std::mem::take(existing),
                    None => {
                        frame.members.insert(name.clone(), Value::Null);
                        Value::Null
                    }
                };
                stack.push(Frame {
                    members: into_members(child),
                    patch: nested.iter(),
                    name_in_parent: name,
                });
            }
            Some((name, value)) => match frame.members.get_mut(name) {
                Some(existing) => *existing = value.clone(),
                None => {
                    frame.members.insert(name.clone(), value.clone());
                }
            },
            None => {
                let Some(done) = stack.pop() else { break };
                let patched = Value::Object(done.members);
                match stack.last_mut() {
                    Some(parent) => match parent.members.get_mut(done.name_in_parent) {
                        Some(place) => *place = patched,
                        None => {
                            parent
                                .members
                                .insert(done.name_in_parent.to_owned(), patched);
                        }
                    },
                    None => {
                        *target = patched;
                        return;
                    }
                }
            }
        }
    }
}

/// [`merge_patch`] consuming the patch: its members are moved into the
/// target (a member name is cloned only when it is new and holds a nested
/// object patch). Same result, same explicit stack.
fn merge_patch_owned(target: &mut Value, patch: Value) {
    let Value::Object(patch_members) = patch else {
        *target = patch;
        return;
    };
    struct Frame {
        members: Map<String, Value>,
        patch: serde_json::map::IntoIter,
        name_in_parent: String,
    }
    let mut stack = vec![Frame {
        members: into_members(std::mem::take(target)),
        patch: patch_members.into_iter(),
        name_in_parent: String::new(),
    }];
    while let Some(frame) = stack.last_mut() {
        match frame.patch.next() {
            Some((name, Value::Null)) => {
                frame.members.remove(&name);
            }
            Some((name, Value::Object(nested))) => {
                // Take the child out (a null stays in its place, so member
                // order is kept) and patch it as its own frame.
                let child = match frame.members.get_mut(&name) {
                    Some(existing) => std::mem::take(existing),
                    None => {
                        frame.members.insert(name.clone(), Value::Null);
                        Value::Null
                    }
                };
                stack.push(Frame {
                    members: into_members(child),
                    patch: nested.into_iter(),
                    name_in_parent: name,
                });
            }
            Some((name, value)) => match frame.members.get_mut(&name) {
                Some(existing) => *existing = value,
                None => {
                    frame.members.insert(name, value);
                }
            },
            None => {
                let Some(done) = stack.pop() else { break };
                let patched = Value::Object(done.members);
                match stack.last_mut() {
                    Some(parent) => match parent.members.get_mut(&done.name_in_parent) {
                        Some(place) => *place = patched,
                        None => {
                            parent.members.insert(done.name_in_parent, patched);
                        }
                    },
                    None => {
                        *target = patched;
                        return;
                    }
                }
            }
        }
    }
}

/// An object's members; any other value is replaced by `{}` (RFC 7386).
fn into_members(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(members) => members,
        _ => Map::new(),
    }
}

/// A JSON number for arithmetic: every integer serde_json holds (i64 or u64)
/// fits i128 exactly, so integer sums never overflow here; the result is
/// range-checked when turned back into a [`Number`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn of(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            // Always Some without serde_json's arbitrary_precision; NaN
            // otherwise, which into_number refuses as not finite.
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            // Lossy above 2^53, as any int/float mix is.
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Num::Int(a + b),
            (a, b) => Num::Float(a.as_f64() + b.as_f64()),
        }
    }

    fn compare(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            // serde_json numbers are finite, so there is no NaN to order.
            (a, b) => a
                .as_f64()
                .partial_cmp(&b.as_f64())
                .unwrap_or(Ordering::Equal),
        }
    }

    /// Back to JSON: an integer in i64 or u64 range, or a finite float;
    /// `None` otherwise (overflow).
    fn into_number(self) -> Option<Number> {
        match self {
            Num::Int(i) => i64::try_from(i)
                .map(Number::from)
                .or_else(|_| u64::try_from(i).map(Number::from))
                .ok(),
            Num::Float(f) => Number::from_f64(f),
        }
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(x) => write!(f, "{x}"),
        }
    }
}

/// `" at /path"`, or nothing for the whole value.
fn at(event: &Event) -> String {
    match event.path.as_deref() {
        None | Some("") => String::new(),
        Some(path) => format!(" at {path}"),
    }
}

fn required_operand<'e>(event: &'e Event, what: &str) -> Result<&'e Value, Rejection> {
    event
        .value
        .as_ref()
        .ok_or_else(|| missing_operand(event, what))
}

fn missing_operand(event: &Event, what: &str) -> Rejection {
    Rejection::new(
        RejectCode::InvalidOperand,
        format!("{} needs {what} in the event's value field", event.op),
    )
}

fn operand_not_a_number(event: &Event, operand: &Value) -> Rejection {
    Rejection::new(
        RejectCode::InvalidOperand,
        format!(
            "{} needs a number as its value, found {}",
            event.op,
            type_name(operand)
        ),
    )
}

fn wrong_target(event: &Event, wanted: &str, found: &Value) -> Rejection {
    Rejection::new(
        RejectCode::TypeError,
        format!(
            "{} needs {wanted}{}, found {}",
            event.op,
            at(event),
            type_name(found)
        ),
    )
}

fn overflow(event: &Event, old: Option<Num>, by: Num) -> Rejection {
    let sum = match old {
        Some(old) => format!("{old} + {by}"),
        None => format!("{by}"),
    };
    Rejection::new(
        RejectCode::Overflow,
        format!(
            "{}{} would overflow: {sum} is outside the 64-bit integer range or not a \
             finite number",
            event.op,
            at(event)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(op: Op) -> Event {
        Event::new("k", op)
    }

    /// Applies `event` to `before`; returns the new value.
    fn run(before: Option<Value>, event: &Event) -> Option<Value> {
        let mut slot = before;
        apply(&mut slot, event, None).unwrap_or_else(|r| panic!("{event:?} rejected: {r}"));
        slot
    }

    /// Applies `event` to `before`, expects `code`, asserts the slot is
    /// untouched, and returns the message.
    fn refused(before: Option<Value>, event: &Event, code: RejectCode) -> String {
        let mut slot = before.clone();
        let rej = apply(&mut slot, event, None).expect_err("expected a rejection");
        assert_eq!(rej.code, code, "{rej}");
        assert_eq!(slot, before, "slot changed by a rejected {event:?}");
        rej.message
    }

    // --- set ---

    #[test]
    fn set_replaces_the_whole_value() {
        assert_eq!(run(None, &Event::set("k", json!(1))), Some(json!(1)));
        assert_eq!(
            run(Some(json!({"a": 1})), &Event::set("k", json!([2]))),
            Some(json!([2]))
        );
        assert_eq!(
            run(Some(json!(1)), &Event::set("k", Value::Null)),
            Some(Value::Null)
        );
        assert_eq!(
            run(Some(json!(1)), &Event::set("k", json!(2)).with_path("")),
            Some(json!(2))
        );
    }

    #[test]
    fn set_at_a_path_creates_intermediates() {
        let e = Event::set("k", json!(5)).with_path("/a/b");
        assert_eq!(run(None, &e), Some(json!({"a": {"b": 5}})));
        assert_eq!(
            run(Some(json!({"a": {"c": 1}, "d": 2})), &e),
            Some(json!({"a": {"b": 5, "c": 1}, "d": 2}))
        );
    }

    #[test]
    fn set_honours_pointer_escapes_and_array_tokens() {
        let before = Some(json!({"arr": [1, 2]}));
        let slot = run(before, &Event::set("k", json!(1)).with_path("/a~1b"));
        let slot = run(slot, &Event::set("k", json!(2)).with_path("/m~0n"));
        let slot = run(slot, &Event::set("k", json!(9)).with_path("/arr/0"));
        let slot = run(slot, &Event::set("k", json!(3)).with_path("/arr/-"));
        assert_eq!(slot, Some(json!({"a/b": 1, "m~n": 2, "arr": [9, 2, 3]})));
    }

    #[test]
    fn set_refusals_leave_the_key_untouched() {
        let before = Some(json!({"s": "x", "arr": [1]}));
        refused(before.clone(), &ev(Op::Set), RejectCode::InvalidOperand);
        refused(
            None,
            &ev(Op::Set).with_path("/a"),
            RejectCode::InvalidOperand,
        );
        for path in ["/s/deeper", "/arr/1", "/arr/x", "nope", "/a~2"] {
            let e = Event::set("k", json!(1)).with_path(path);
            let msg = refused(before.clone(), &e, RejectCode::InvalidPath);
            assert!(msg.contains(path), "{msg}");
        }
        refused(
            Some(json!(5)),
            &Event::set("k", json!(1)).with_path("/a"),
            RejectCode::InvalidPath,
        );
    }

    // --- merge ---

    #[test]
    fn merge_passes_the_rfc_7386_examples() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            let e = ev(Op::Merge).with_value(patch.clone());
            assert_eq!(
                run(Some(target.clone()), &e),
                Some(expected),
                "{target} + {patch}"
            );
        }
    }

    #[test]
    fn merge_into_absent_key_or_path() {
        let patch = json!({"a": 1, "gone": null, "o": {"x": null, "y": 2}});
        let e = ev(Op::Merge).with_value(patch);
        assert_eq!(run(None, &e), Some(json!({"a": 1, "o": {"y": 2}})));
        let at_path = e.clone().with_path("/p/q");
        assert_eq!(
            run(Some(json!({"keep": true})), &at_path),
            Some(json!({"keep": true, "p": {"q": {"a": 1, "o": {"y": 2}}}}))
        );
        let existing = Some(json!({"p": {"q": {"a": 0, "b": 1}, "r": 2}}));
        assert_eq!(
            run(existing, &at_path),
            Some(json!({"p": {"q": {"a": 1, "b": 1, "o": {"y": 2}}, "r": 2}}))
        );
    }

    #[test]
    fn merge_refusals_leave_the_key_untouched() {
        let before = Some(json!({"s": "x"}));
        refused(before.clone(), &ev(Op::Merge), RejectCode::InvalidOperand);
        let e = ev(Op::Merge).with_value(json!({"a": 1})).with_path("/s/t");
        refused(before, &e, RejectCode::InvalidPath);
    }

    #[test]
    fn merge_walks_a_very_deep_patch_without_recursion() {
        let depth = 100_000;
        let mut patch = json!(1);
        for _ in 0..depth {
            let mut m = Map::new();
            m.insert("a".to_owned(), patch);
            patch = Value::Object(m);
        }
        let mut event = ev(Op::Merge).with_value(patch);
        let mut slot = Some(json!({"a": {"b": 2}}));
        apply(&mut slot, &event, None).expect("merged");
        let merged = slot.take().expect("a value");
        assert_eq!(crate::limits::value_depth(&merged), depth);
        assert_eq!(merged["a"]["b"], json!(2));
        drop_iteratively(merged);
        if let Some(patch) = event.value.take() {
            drop_iteratively(patch);
        }
    }

    /// serde_json's `Drop` for `Value` recurses; take deep test values apart
    /// by hand.
    fn drop_iteratively(value: Value) {
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Value::Array(items) => stack.extend(items),
                Value::Object(members) => stack.extend(members.into_iter().map(|(_, v)| v)),
                _ => {}
            }
        }
    }

    // --- incr ---

    #[test]
    fn incr_adds_with_defaults() {
        assert_eq!(run(None, &ev(Op::Incr)), Some(json!(1)));
        assert_eq!(run(None, &Event::incr("k", 5)), Some(json!(5)));
        assert_eq!(run(Some(json!(41)), &ev(Op::Incr)), Some(json!(42)));
        assert_eq!(run(Some(json!(3)), &Event::incr("k", -10)), Some(json!(-7)));
        let e = Event::incr("k", 2).with_path("/stats/clicks");
        let once = run(Some(json!({"name": "x"})), &e);
        assert_eq!(
            run(once, &e),
            Some(json!({"name": "x", "stats": {"clicks": 4}}))
        );
    }

    #[test]
    fn incr_keeps_ints_and_mixes_floats() {
        let r = run(Some(json!(1)), &ev(Op::Incr).with_value(json!(2)));
        assert!(r.as_ref().is_some_and(Value::is_i64), "{r:?}");
        assert_eq!(
            run(Some(json!(1)), &ev(Op::Incr).with_value(json!(0.5))),
            Some(json!(1.5))
        );
        assert_eq!(
            run(Some(json!(1.5)), &ev(Op::Incr).with_value(json!(1))),
            Some(json!(2.5))
        );
        let r = run(Some(json!(1.5)), &ev(Op::Incr).with_value(json!(1.5)));
        assert!(
            r.as_ref().is_some_and(Value::is_f64),
            "a float stays a float: {r:?}"
        );
        // u64 range is kept, and can come back down into i64.
        assert_eq!(
            run(Some(json!(i64::MAX)), &ev(Op::Incr)),
            Some(json!(i64::MAX as u64 + 1))
        );
        assert_eq!(
            run(Some(json!(u64::MAX)), &Event::incr("k", -1)),
            Some(json!(u64::MAX - 1))
        );
        assert_eq!(
            run(Some(json!(u64::MAX)), &Event::incr("k", i64::MIN)),
            Some(json!(u64::MAX - (1 << 63)))
        );
    }

    #[test]
    fn incr_overflow_is_refused() {
        let msg = refused(Some(json!(u64::MAX)), &ev(Op::Incr), RejectCode::Overflow);
        assert!(msg.contains("overflow"), "{msg}");
        refused(
            Some(json!(i64::MIN)),
            &Event::incr("k", -1),
            RejectCode::Overflow,
        );
        refused(
            Some(json!({"n": f64::MAX})),
            &ev(Op::Incr).with_value(json!(f64::MAX)).with_path("/n"),
            RejectCode::Overflow,
        );
    }

    #[test]
    fn incr_type_errors_name_the_path() {
        let e = Event::incr("k", 1).with_path("/clicks");
        let msg = refused(Some(json!({"clicks": "many"})), &e, RejectCode::TypeError);
        assert_eq!(msg, "incr needs a number at /clicks, found a string");
        let msg = refused(Some(json!("x")), &ev(Op::Incr), RejectCode::TypeError);
        assert_eq!(msg, "incr needs a number, found a string");
        refused(Some(json!({})), &ev(Op::Incr), RejectCode::TypeError);
        refused(Some(json!(null)), &ev(Op::Incr), RejectCode::TypeError);
        refused(
            Some(json!({"c": null})),
            &ev(Op::Incr).with_path("/c"),
            RejectCode::TypeError,
        );
    }

    #[test]
    fn incr_operand_must_be_a_number() {
        let msg = refused(
            Some(json!(1)),
            &ev(Op::Incr).with_value(json!("2")),
            RejectCode::InvalidOperand,
        );
        assert!(msg.contains("found a string"), "{msg}");
        refused(
            None,
            &ev(Op::Incr).with_value(Value::Null),
            RejectCode::InvalidOperand,
        );
        refused(
            Some(json!({"a": "s"})),
            &ev(Op::Incr).with_path("/a/b"),
            RejectCode::InvalidPath,
        );
    }

    // --- append ---

    #[test]
    fn append_pushes_and_creates() {
        let e = ev(Op::Append).with_value(json!(1));
        let once = run(None, &e);
        assert_eq!(once, Some(json!([1])));
        assert_eq!(run(once, &e), Some(json!([1, 1])));
        let at = ev(Op::Append).with_value(json!({"x": 1})).with_path("/log");
        assert_eq!(
            run(Some(json!({"log": ["a"]})), &at),
            Some(json!({"log": ["a", {"x": 1}]}))
        );
        assert_eq!(run(Some(json!({})), &at), Some(json!({"log": [{"x": 1}]})));
        assert_eq!(
            run(Some(json!([1])), &ev(Op::Append).with_value(Value::Null)),
            Some(json!([1, null]))
        );
    }

    #[test]
    fn append_max_len_keeps_the_newest() {
        let e = |v: i64| ev(Op::Append).with_value(json!(v)).with_max_len(3);
        let mut slot = None;
        for v in 1..=5 {
            slot = run(slot, &e(v));
        }
        assert_eq!(slot, Some(json!([3, 4, 5])));
        // A longer existing array is cut down on the next append.
        assert_eq!(
            run(Some(json!([1, 2, 3, 4, 5, 6])), &e(7)),
            Some(json!([5, 6, 7]))
        );
        assert_eq!(
            run(
                Some(json!([1, 2])),
                &ev(Op::Append).with_value(json!(3)).with_max_len(1)
            ),
            Some(json!([3]))
        );
    }

    #[test]
    fn append_refusals_leave_the_key_untouched() {
        let msg = refused(
            Some(json!({"log": "text"})),
            &ev(Op::Append).with_value(json!(1)).with_path("/log"),
            RejectCode::TypeError,
        );
        assert_eq!(msg, "append needs an array at /log, found a string");
        refused(
            Some(json!(5)),
            &ev(Op::Append).with_value(json!(1)),
            RejectCode::TypeError,
        );
        refused(
            Some(json!([1])),
            &ev(Op::Append),
            RejectCode::InvalidOperand,
        );
        refused(
            Some(json!([1])),
            &ev(Op::Append).with_value(json!(2)).with_max_len(0),
            RejectCode::InvalidOperand,
        );
    }

    // --- max / min ---

    #[test]
    fn max_and_min_keep_the_extreme() {
        let max = |v: Value| ev(Op::Max).with_value(v);
        let min = |v: Value| ev(Op::Min).with_value(v);
        assert_eq!(run(None, &max(json!(3))), Some(json!(3)));
        assert_eq!(run(Some(json!(5)), &max(json!(3))), Some(json!(5)));
        assert_eq!(run(Some(json!(2)), &max(json!(3))), Some(json!(3)));
        assert_eq!(run(None, &min(json!(3))), Some(json!(3)));
        assert_eq!(run(Some(json!(5)), &min(json!(3))), Some(json!(3)));
        assert_eq!(run(Some(json!(2)), &min(json!(3))), Some(json!(2)));
        // Mixed int and float, and u64 beyond i64.
        assert_eq!(run(Some(json!(2)), &max(json!(2.5))), Some(json!(2.5)));
        assert_eq!(run(Some(json!(2.5)), &min(json!(-1))), Some(json!(-1)));
        assert_eq!(
            run(Some(json!(u64::MAX)), &max(json!(-1))),
            Some(json!(u64::MAX))
        );
        assert_eq!(
            run(Some(json!(-1)), &max(json!(u64::MAX))),
            Some(json!(u64::MAX))
        );
        // Equal keeps the current representation.
        assert_eq!(run(Some(json!(2)), &max(json!(2.0))), Some(json!(2)));
        let at = max(json!(7)).with_path("/hi");
        assert_eq!(run(Some(json!({})), &at), Some(json!({"hi": 7})));
        assert_eq!(run(Some(json!({"hi": 9})), &at), Some(json!({"hi": 9})));
    }

    #[test]
    fn max_and_min_refusals_leave_the_key_untouched() {
        for op in [Op::Max, Op::Min] {
            let msg = refused(
                Some(json!({"hi": [1]})),
                &ev(op.clone()).with_value(json!(1)).with_path("/hi"),
                RejectCode::TypeError,
            );
            assert_eq!(msg, format!("{op} needs a number at /hi, found an array"));
            refused(Some(json!(1)), &ev(op.clone()), RejectCode::InvalidOperand);
            refused(
                Some(json!(1)),
                &ev(op.clone()).with_value(json!("9")),
                RejectCode::InvalidOperand,
            );
            refused(
                Some(json!(1)),
                &ev(op.clone()).with_value(json!(1)).with_path("/x"),
                RejectCode::InvalidPath,
            );
        }
    }

    // --- delete ---

    #[test]
    fn delete_whole_key_or_member() {
        assert_eq!(run(Some(json!({"a": 1})), &ev(Op::Delete)), None);
        assert_eq!(run(None, &ev(Op::Delete)), None);
        assert_eq!(run(Some(json!(1)), &ev(Op::Delete).with_path("")), None);
        let before = Some(json!({"a": {"b": 1, "c": 2}, "x/y": 3, "arr": [1, 2, 3]}));
        let slot = run(before, &ev(Op::Delete).with_path("/a/b"));
        let slot = run(slot, &ev(Op::Delete).with_path("/x~1y"));
        let slot = run(slot, &ev(Op::Delete).with_path("/arr/0"));
        assert_eq!(slot, Some(json!({"a": {"c": 2}, "arr": [2, 3]})));
    }

    #[test]
    fn delete_of_a_missing_member_is_a_no_op() {
        let before = Some(json!({"a": {"b": 1}, "arr": [1]}));
        for path in ["/zz", "/a/zz", "/zz/deeper", "/arr/5", "/arr/-"] {
            assert_eq!(run(before.clone(), &ev(Op::Delete).with_path(path)), before);
        }
        assert_eq!(run(None, &ev(Op::Delete).with_path("/a")), None);
    }

    #[test]
    fn delete_refusals_leave_the_key_untouched() {
        let before = Some(json!({"s": "x", "arr": [1]}));
        for path in ["/s/t", "/arr/x", "bad"] {
            refused(
                before.clone(),
                &ev(Op::Delete).with_path(path),
                RejectCode::InvalidPath,
            );
        }
    }

    // --- custom ---

    #[test]
    fn unregistered_custom_op_is_unknown() {
        let msg = refused(
            Some(json!(1)),
            &ev(Op::parse("double")),
            RejectCode::UnknownOp,
        );
        assert!(msg.contains("\"double\""), "{msg}");
    }

    #[test]
    fn registered_custom_op_replaces_the_value() {
        let double: CustomOp = Arc::new(|current, _event| match current {
            Some(Value::Number(n)) => Ok(n.as_i64().map(|i| json!(i * 2))),
            None => Ok(Some(json!(0))),
            Some(other) => Err(Rejection::new(
                RejectCode::TypeError,
                format!("double needs a number, found {}", type_name(other)),
            )),
        });
        let e = ev(Op::parse("double"));
        let mut slot = Some(json!(21));
        apply(&mut slot, &e, Some(&double)).expect("applied");
        assert_eq!(slot, Some(json!(42)));
        let mut slot = None;
        apply(&mut slot, &e, Some(&double)).expect("applied");
        assert_eq!(slot, Some(json!(0)));

        let mut slot = Some(json!("s"));
        let rej = apply(&mut slot, &e, Some(&double)).expect_err("refused");
        assert_eq!(rej.code, RejectCode::TypeError);
        assert_eq!(slot, Some(json!("s")));

        let delete_it: CustomOp = Arc::new(|_, _| Ok(None));
        let mut slot = Some(json!(1));
        apply(&mut slot, &ev(Op::parse("forget")), Some(&delete_it)).expect("applied");
        assert_eq!(slot, None);
        // A custom op passed for a built-in op is ignored.
        let mut slot = Some(json!(1));
        apply(&mut slot, &ev(Op::Incr), Some(&delete_it)).expect("applied");
        assert_eq!(slot, Some(json!(2)));
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..3).prop_map(Value::from),
            "[ab]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The owned path (patch moved into the document) gives exactly
        /// what the borrowing path gives, accepted or refused, whatever the
        /// document, the patch and the path.
        #[test]
        fn apply_owned_matches_apply(
            before in proptest::option::of(arb_json()),
            operand in proptest::option::of(arb_json()),
            op in proptest::prop_oneof![proptest::strategy::Just(Op::Merge), proptest::strategy::Just(Op::Set)],
            path in proptest::prop_oneof![
                proptest::strategy::Just(None),
                proptest::strategy::Just(Some(String::new())),
                proptest::strategy::Just(Some("/a".to_owned())),
                proptest::strategy::Just(Some("/b/c".to_owned())),
                proptest::strategy::Just(Some("/0".to_owned())),
            ],
        ) {
            let mut event = ev(op);
            event.value = operand;
            event.path = path;
            let mut borrowed = before.clone();
            let r1 = apply(&mut borrowed, &event, None);
            let mut owned = before.clone();
            let mut taken = event.clone();
            let operand = taken.value.take();
            let r2 = apply_taking(&mut owned, &taken, operand, None);
            proptest::prop_assert_eq!(r1.is_ok(), r2.is_ok());
            proptest::prop_assert_eq!(&borrowed, &owned);
            if r2.is_err() {
                proptest::prop_assert_eq!(&owned, &before);
            }
        }
    }
}
