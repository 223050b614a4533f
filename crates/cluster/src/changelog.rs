//! The changelog: per partition, the after-image of every committed key
//! (`k.<p>.<base64url(key)>`) and a commit marker (`m.<p>`), in the KV
//! bucket `statecraft-changelog`.
//!
//! # What an entry means
//!
//! An entry `(key, state, seq)` states a fact about the event stream: *after
//! applying, in stream order, every event of the partition on `key` with a
//! stream sequence ≤ `seq`, the key holds `state`*. The marker's `seq` `S`
//! states: *every key touched by an event ≤ `S` has an entry whose `seq` is
//! at least that event's*. A node taking a partition over therefore
//! restores every entry, and replays the events after `S`, skipping an event
//! on `key` whose sequence is ≤ that key's entry `seq` (it is already in the
//! entry: the previous owner wrote it and died before moving the marker).
//!
//! # Invariants (what keeps those facts true with several writers)
//!
//! - **Entries never go back.** Each entry write carries
//!   `Nats-Expected-Last-Subject-Sequence` (the revision the writer last
//!   saw); on a conflict the writer reads the current entry and writes only
//!   if its own `seq` is higher. A stale owner that wakes up can add a true
//!   fact, never replace a newer one.
//! - **The marker is the fence.** Acquiring a partition bumps the marker
//!   with a revision-checked update; the new revision is the ownership
//!   epoch. Every batch commit moves the marker with a revision-checked
//!   update from the revision the owner last wrote, so once another node
//!   bumped it, the old owner's commit fails ([`CommitError::Fenced`]) and
//!   it stops before acknowledging anything to NATS.
//! - Entries of a batch are written before its marker move, so a marker
//!   never covers a missing entry.

use std::collections::{BTreeMap, HashMap};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{Operation, UpdateErrorKind};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ClusterError;
use crate::infra::Infra;
use crate::names;

/// The after-image of one key, as stored in the changelog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The value (`null` when deleted).
    #[serde(default)]
    pub v: Value,
    /// Deleted (or expired) as of `seq`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub d: bool,
    /// The version on the node that wrote it.
    #[serde(default)]
    pub ver: u64,
    /// Last write, ms since the epoch.
    #[serde(default)]
    pub upd: u64,
    /// Expiry, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// The stream sequence this state is exact at.
    pub seq: u64,
    /// The idempotency ids of the events applied to this key that are still
    /// inside the dedup window: id → expiry (ms since the epoch). Part of the
    /// key's committed state, so they move and roll back with it.
    #[serde(default, rename = "i", skip_serializing_if = "BTreeMap::is_empty")]
    pub ids: BTreeMap<String, u64>,
}

/// The commit marker of a partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Marker {
    /// Every event ≤ this is reflected in the entries.
    pub seq: u64,
    /// The node that wrote it.
    pub node: String,
    /// That node's process instance (tells its own lost-ack retries apart).
    pub instance: String,
}

/// A partition's changelog as read at acquisition.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Key → (entry, revision).
    pub entries: HashMap<String, (Entry, u64)>,
}

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommitError {
    /// Another node moved the marker: this node no longer owns the partition.
    #[error("fenced: another node took partition {0} over")]
    Fenced(u32),
    /// NATS failed.
    #[error(transparent)]
    Nats(#[from] ClusterError),
}

/// What an entry write did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WriteReport {
    /// Entries written.
    pub written: u64,
    /// Entries not written because a newer one was there.
    pub superseded: u64,
}

/// Bumps partition `p`'s marker (the fence): returns the new revision — the
/// ownership epoch — and the committed sequence it carries.
pub(crate) async fn acquire_marker(
    infra: &Infra,
    p: u32,
    node: &str,
    instance: &str,
) -> Result<(u64, u64), ClusterError> {
    let key = names::marker_key(p);
    for _ in 0..8 {
        let current = infra
            .changelog
            .entry(key.clone())
            .await
            .map_err(|e| ClusterError::nats("reading a commit marker", e))?;
        let (rev, seq) = match current {
            Some(e) if e.operation == Operation::Put => {
                let m: Marker = serde_json::from_slice(&e.value)
                    .map_err(|e| ClusterError::nats("decoding a commit marker", e))?;
                (e.revision, m.seq)
            }
            Some(e) => (e.revision, 0),
            None => (0, 0),
        };
        let marker = Marker {
            seq,
            node: node.to_owned(),
            instance: instance.to_owned(),
        };
        let payload = serde_json::to_vec(&marker).unwrap_or_default();
        match infra.changelog.update(&key, payload.into(), rev).await {
            Ok(epoch) => return Ok((epoch, seq)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
            Err(e) => return Err(ClusterError::nats("bumping a commit marker", e)),
        }
    }
    Err(ClusterError::nats(
        "bumping a commit marker",
        "it kept changing under us",
    ))
}

/// Reads every entry of partition `p` (the last revision of each key).
pub(crate) async fn read_partition(infra: &Infra, p: u32) -> Result<Snapshot, ClusterError> {
    let stream = &infra.changelog.stream;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: names::changelog_filter(p),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::nats("opening the changelog", e))?;
    let mut pending = consumer.cached_info().num_pending;
    let mut snapshot = Snapshot::default();
    if pending == 0 {
        return Ok(snapshot);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| ClusterError::nats("reading the changelog", e))?;
    let prefix = format!("$KV.{}.", names::CHANGELOG);
    while pending > 0 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), messages.next())
            .await
            .map_err(|_| ClusterError::nats("reading the changelog", "timed out"))?;
        let Some(msg) = next else { break };
        let msg = msg.map_err(|e| ClusterError::nats("reading the changelog", e))?;
        let info = msg
            .info()
            .map_err(|e| ClusterError::nats("reading the changelog", e))?;
        pending = info.pending;
        let revision = info.stream_sequence;
        let deleted = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("KV-Operation"))
            .is_some_and(|v| v.as_str() != "PUT");
        if deleted {
            continue;
        }
        let Some(key) = msg
            .subject
            .strip_prefix(prefix.as_str())
            .and_then(|kv| names::key_from_changelog(p, kv))
        else {
            continue;
        };
        match serde_json::from_slice::<Entry>(&msg.payload) {
            Ok(entry) => {
                snapshot.entries.insert(key, (entry, revision));
            }
            Err(e) => {
                tracing::warn!(partition = p, key, error = %e, "undecodable changelog entry skipped")
            }
        }
    }
    Ok(snapshot)
}

/// Writes the entries of one batch, never replacing a newer entry.
/// `revs` is the writer's view of each key's revision (updated here).
pub(crate) async fn write_entries(
    infra: &Infra,
    p: u32,
    entries: Vec<(String, Entry)>,
    revs: &mut HashMap<String, u64>,
) -> Result<WriteReport, ClusterError> {
    let mut report = WriteReport::default();
    let mut acks = Vec::with_capacity(entries.len());
    for (key, entry) in entries {
        let kv_key = names::changelog_key(p, &key);
        let payload = bytes::Bytes::from(serde_json::to_vec(&entry).unwrap_or_default());
        if payload.len() > infra.client.server_info().max_payload.saturating_sub(2048) {
            tracing::error!(
                partition = p,
                key,
                bytes = payload.len(),
                "the key's state is larger than NATS accepts: its changelog entry is skipped (it will not survive a takeover)"
            );
            continue;
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            async_nats::HeaderValue::from(revs.get(&key).copied().unwrap_or(0)),
        );
        let ack = infra
            .js
            .publish_with_headers(names::changelog_subject(&kv_key), headers, payload.clone())
            .await
            .map_err(|e| ClusterError::nats("writing the changelog", e))?;
        acks.push((key, kv_key, entry, payload, ack));
    }
    let mut conflicts = Vec::new();
    for (key, kv_key, entry, payload, ack) in acks {
        match ack.await {
            Ok(a) => {
                revs.insert(key, a.sequence);
                report.written += 1;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    PublishErrorKind::WrongLastSequence | PublishErrorKind::TimedOut
                ) =>
            {
                conflicts.push((key, kv_key, entry, payload));
            }
            Err(e) => return Err(ClusterError::nats("writing the changelog", e)),
        }
    }
    for (key, kv_key, entry, payload) in conflicts {
        if write_monotonic(
            infra,
            &kv_key,
            &entry,
            payload,
            revs.get_mut_or_insert(&key),
        )
        .await?
        {
            report.written += 1;
        } else {
            report.superseded += 1;
        }
    }
    Ok(report)
}

trait GetMutOrInsert {
    fn get_mut_or_insert(&mut self, key: &str) -> &mut u64;
}

impl GetMutOrInsert for HashMap<String, u64> {
    fn get_mut_or_insert(&mut self, key: &str) -> &mut u64 {
        self.entry(key.to_owned()).or_insert(0)
    }
}

/// The slow path of one entry after a conflict: read, compare, write only if
/// newer. True when written.
async fn write_monotonic(
    infra: &Infra,
    kv_key: &str,
    entry: &Entry,
    payload: bytes::Bytes,
    rev: &mut u64,
) -> Result<bool, ClusterError> {
    for _ in 0..16 {
        let current = infra
            .changelog
            .entry(kv_key.to_owned())
            .await
            .map_err(|e| ClusterError::nats("reading the changelog", e))?;
        let current_rev = match current {
            Some(e) if e.operation == Operation::Put => {
                if let Ok(there) = serde_json::from_slice::<Entry>(&e.value)
                    && there.seq >= entry.seq
                {
                    *rev = e.revision;
                    return Ok(false);
                }
                e.revision
            }
            Some(e) => e.revision,
            None => 0,
        };
        match infra
            .changelog
            .update(kv_key, payload.clone(), current_rev)
            .await
        {
            Ok(r) => {
                *rev = r;
                return Ok(true);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    UpdateErrorKind::WrongLastRevision | UpdateErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(ClusterError::nats("writing the changelog", e)),
        }
    }
    Err(ClusterError::nats(
        "writing the changelog",
        "an entry kept changing under us",
    ))
}

/// Moves partition `p`'s marker to `seq`, from revision `rev` (the last this
/// node wrote). Returns the new revision, or [`CommitError::Fenced`].
pub(crate) async fn commit_marker(
    infra: &Infra,
    p: u32,
    marker: &Marker,
    rev: u64,
) -> Result<u64, CommitError> {
    let key = names::marker_key(p);
    let payload = bytes::Bytes::from(serde_json::to_vec(marker).unwrap_or_default());
    for attempt in 0..3 {
        match infra.changelog.update(&key, payload.clone(), rev).await {
            Ok(r) => return Ok(r),
            Err(e)
                if matches!(
                    e.kind(),
                    UpdateErrorKind::WrongLastRevision | UpdateErrorKind::TimedOut
                ) =>
            {
                // Our own earlier attempt may have landed with its ack
                // lost: then the marker is exactly ours.
                let current = infra
                    .changelog
                    .entry(key.clone())
                    .await
                    .map_err(|e| ClusterError::nats("reading a commit marker", e))?;
                if let Some(e) = current
                    && let Ok(m) = serde_json::from_slice::<Marker>(&e.value)
                    && m == *marker
                {
                    return Ok(e.revision);
                }
                if e.kind() == UpdateErrorKind::WrongLastRevision || attempt == 2 {
                    return Err(CommitError::Fenced(p));
                }
            }
            Err(e) => return Err(ClusterError::nats("moving a commit marker", e).into()),
        }
    }
    Err(CommitError::Fenced(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_encode_compactly_and_round_trip() {
        let e = Entry {
            v: json!(3),
            d: false,
            ver: 3,
            upd: 10,
            exp: None,
            seq: 42,
            ids: BTreeMap::new(),
        };
        let text = serde_json::to_string(&e).expect("ser");
        assert_eq!(text, r#"{"v":3,"ver":3,"upd":10,"seq":42}"#);
        assert_eq!(serde_json::from_str::<Entry>(&text).expect("de"), e);
        let gone: Entry = serde_json::from_str(r#"{"d":true,"seq":7}"#).expect("de");
        assert!(gone.d && gone.v.is_null() && gone.ids.is_empty());
        let with_ids = Entry {
            ids: BTreeMap::from([("e1".to_owned(), 99)]),
            ..e
        };
        let text = serde_json::to_string(&with_ids).expect("ser");
        assert_eq!(text, r#"{"v":3,"ver":3,"upd":10,"seq":42,"i":{"e1":99}}"#);
        assert_eq!(serde_json::from_str::<Entry>(&text).expect("de"), with_ids);
    }
}
