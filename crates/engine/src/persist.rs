//! The shard's side of durability (placeholder until the store lands): what a
//! batch changed ([`StagedBatch`]) and the hook that hands it to the group
//! committer ([`ShardPersistence`]).

use rustc_hash::FxHashMap;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::event::{EventResult, StateRecord};
use crate::shard::Entry;

/// What one batch changed: the keys it touched (their after-images are read
/// from the shard's map when the batch is committed, so a key changed many
/// times in a batch is logged once) and the idempotency ids it consumed.
#[derive(Debug, Default)]
pub(crate) struct StagedBatch {
    pub touched: Vec<Box<str>>,
    pub dedup: Vec<(Box<str>, Box<str>, u64)>,
}

impl StagedBatch {
    pub fn touch(&mut self, key: &str) {
        self.touched.push(Box::from(key));
    }

    pub fn dedup(&mut self, key: &str, id: &str, expires_at: u64) {
        self.dedup.push((Box::from(key), Box::from(id), expires_at));
    }
}

/// Durability figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DurabilityStats {}

/// The shard's handle on the store and the group committer.
pub(crate) struct ShardPersistence {}

impl ShardPersistence {
    pub fn load(&mut self, _key: &str) -> Option<Entry> {
        None
    }
    pub fn seen_id(&mut self, _key: &str, _id: &str, _now_ms: u64) -> bool {
        false
    }
    pub fn scan(
        &mut self,
        _prefix: &str,
        _after: Option<&str>,
        _limit: usize,
        _now_ms: u64,
    ) -> Vec<StateRecord> {
        Vec::new()
    }
    pub fn tick(&mut self, _now_ms: u64) {}
    pub fn commit(
        &mut self,
        _staged: StagedBatch,
        _map: &FxHashMap<Box<str>, Entry>,
        _durable: Vec<(oneshot::Sender<Vec<EventResult>>, Vec<EventResult>)>,
    ) {
    }
    pub fn shutdown(&mut self) {}
}
