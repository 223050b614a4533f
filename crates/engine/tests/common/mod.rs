//! What the model tests share: a plain single-threaded `HashMap` model of the
//! engine's semantics (versions, conflicts, duplicates, deletion) and the
//! proptest strategies for events. The model shares only the value
//! transformation (`ops::apply`, unit tested on its own) with the engine.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use serde_json::{Value, json};
use statecraft_engine::{Event, EventResult, Op, ops};

#[derive(Default)]
pub struct Model {
    pub state: HashMap<String, (Value, u64)>,
    pub ids: HashSet<(String, String)>,
}

impl Model {
    pub fn apply(&mut self, e: &Event) -> EventResult {
        if let Some(id) = &e.id
            && self.ids.contains(&(e.key.clone(), id.clone()))
        {
            return EventResult::Duplicate;
        }
        let current = self.state.get(&e.key).cloned();
        let version = current.as_ref().map_or(0, |(_, v)| *v);
        if let Some(expected) = e.if_version
            && expected != version
        {
            return EventResult::Conflict {
                current_version: version,
            };
        }
        let mut slot = current.map(|(v, _)| v);
        if let Err(r) = ops::apply(&mut slot, e, None) {
            return r.into();
        }
        if let Some(id) = &e.id {
            self.ids.insert((e.key.clone(), id.clone()));
        }
        match slot {
            Some(v) => {
                self.state.insert(e.key.clone(), (v, version + 1));
                EventResult::Applied {
                    version: version + 1,
                }
            }
            None => {
                self.state.remove(&e.key);
                EventResult::Applied { version: 0 }
            }
        }
    }
}

pub fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-5i64..5).prop_map(Value::from),
        (-5.0f64..5.0).prop_map(|f| json!(f)),
        "[a-c]{0,2}".prop_map(Value::from),
        Just(json!({"a": 1})),
        Just(json!({"a": null, "b": {"c": 2}})),
        Just(json!([1, 2])),
        Just(Value::Null),
    ]
}

pub fn arb_event() -> impl Strategy<Value = Event> {
    let op = prop_oneof![
        Just(Op::Set),
        Just(Op::Merge),
        Just(Op::Incr),
        Just(Op::Append),
        Just(Op::Max),
        Just(Op::Min),
        Just(Op::Delete),
    ];
    let path = prop_oneof![
        4 => Just(None),
        1 => Just(Some("/a".to_owned())),
        1 => Just(Some("/a/b".to_owned())),
        1 => Just(Some("/x~1y".to_owned())),
    ];
    (
        0u8..4,
        op,
        path,
        proptest::option::of(arb_value()),
        proptest::option::weighted(0.3, 0u8..6),
        proptest::option::weighted(0.2, 0u64..4),
        proptest::option::weighted(0.2, 1usize..3),
    )
        .prop_map(|(k, op, path, value, id, if_version, max_len)| Event {
            key: format!("k{k}"),
            op,
            path,
            value,
            id: id.map(|i| format!("id{i}")),
            if_version,
            ttl_s: None,
            max_len,
        })
}
