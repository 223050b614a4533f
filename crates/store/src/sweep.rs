//! Bounded removal of expired keys and dedup ids, driven by the `expiry` index.
//!
//! Invariant: the sweep deletes a key only if its *current* stored state still
//! carries exactly the expiry the index entry names and that expiry is at or
//! before `now_ms` (likewise for dedup ids); otherwise the index entry is stale
//! (the key was rewritten, lost its TTL, or was deleted) and only the entry
//! goes. It runs under the materialize lock, so no checkpoint can write a key
//! between the sweep's read and its delete. Each call examines at most `max`
//! index entries and commits one atomic batch.

use crate::{
    error::{Result, StoreError},
    fault::Fault,
    keys,
    state::peek_expires_at,
    store::Store,
};
use std::ops::Bound;

/// What one [`Store::sweep_expired`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired keys deleted from `state`.
    pub keys_removed: usize,
    /// Expired idempotency ids deleted from `dedup`.
    pub dedup_removed: usize,
    /// Index entries that no longer matched their target (dropped).
    pub stale_entries: usize,
    /// True if the call stopped at `max` with due entries left: call again.
    pub more: bool,
}

impl SweepReport {
    /// Keys plus dedup ids removed.
    #[must_use]
    pub fn removed(&self) -> usize {
        self.keys_removed + self.dedup_removed
    }
}

impl Store {
    /// Removes up to `max` due entries of the expiry index: keys whose TTL
    /// passed at or before `now_ms`, and idempotency ids past their window.
    /// Waits for a running checkpoint. Expired keys are already invisible to
    /// [`get_live`](Self::get_live) and `scan` with `now_ms`; this reclaims space.
    ///
    /// The engine must not hold a newer, unmaterialized version of a key it
    /// expects the sweep to keep: a key rewritten in memory but not yet
    /// checkpointed may be swept from the store and is then restored by that
    /// checkpoint (or by log replay after a crash).
    ///
    /// # Errors
    ///
    /// [`StoreError::Poisoned`]; read errors; a failed commit poisons the store.
    pub fn sweep_expired(&self, now_ms: u64, max: usize) -> Result<SweepReport> {
        let inner = &*self.inner;
        inner.poison.check()?;
        let _materialize = inner.materialize_lock();
        let mut report = SweepReport::default();
        let upper = match now_ms.checked_add(1) {
            Some(n) => Bound::Excluded(n.to_be_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut batch = inner.db.batch();
        for (examined, guard) in inner
            .expiry
            .range::<Vec<u8>, _>((Bound::Unbounded, upper))
            .enumerate()
        {
            if examined == max {
                report.more = true;
                break;
            }
            let k = guard
                .key()
                .map_err(|e| StoreError::fjall("reading the expiry index", e))?;
            let (at, kind, target) = keys::parse_expiry_key(&k)?;
            let removed = match kind {
                keys::EXPIRY_STATE => {
                    let cur = inner
                        .state
                        .get(target)
                        .map_err(|e| StoreError::fjall("reading an expiring key", e))?;
                    match cur {
                        Some(v) if peek_expires_at(&v)? == Some(at) => {
                            batch.remove(&inner.state, target);
                            report.keys_removed += 1;
                            true
                        }
                        _ => false,
                    }
                }
                keys::EXPIRY_DEDUP => {
                    let cur = inner
                        .dedup
                        .get(target)
                        .map_err(|e| StoreError::fjall("reading an expiring dedup id", e))?;
                    match cur {
                        Some(v) if keys::u64_value(&v, "dedup expiry")? == at => {
                            batch.remove(&inner.dedup, target);
                            report.dedup_removed += 1;
                            true
                        }
                        _ => false,
                    }
                }
                other => {
                    return Err(StoreError::Corrupt {
                        what: format!("expiry index entry of unknown kind {other:#x}"),
                    });
                }
            };
            if !removed {
                report.stale_entries += 1;
            }
            batch.remove(&inner.expiry, k);
        }
        if !batch.is_empty() {
            inner.write(Fault::Sweep, "committing an expiry sweep", || {
                batch.commit()
            })?;
        }
        if report.removed() > 0 {
            tracing::debug!(
                keys = report.keys_removed,
                dedup = report.dedup_removed,
                stale = report.stale_entries,
                more = report.more,
                "expiry sweep"
            );
        }
        Ok(report)
    }
}
