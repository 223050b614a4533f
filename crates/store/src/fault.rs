//! Poisoning and the fault-injection hook.
//!
//! [`Poison`] owns the store's "refuse writes" state. Invariant: once set it is
//! never cleared (only a reopen, i.e. a new `Store`, starts unpoisoned), every
//! write path checks it before touching fjall, and the first cause wins — so a
//! caller never sees success from a write or sync issued after one failed
//! (fsync errors are sticky on Linux only by luck; we make it a rule).
//!
//! [`FaultInjector`] lets tests make the next append, sync, checkpoint, sweep
//! or point read fail as if the disk had refused it. It costs one relaxed atomic load per
//! write when unused.

use crate::error::StoreError;
use std::sync::{
    OnceLock,
    atomic::{AtomicU8, Ordering},
};

/// The "writes refused" state, set by the first failed write or sync.
#[derive(Debug, Default)]
pub(crate) struct Poison {
    cause: OnceLock<String>,
}

impl Poison {
    /// `Err(Poisoned)` once poisoned.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match self.cause.get() {
            Some(cause) => Err(StoreError::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Poisons with `cause` unless already poisoned (the first cause is kept).
    pub(crate) fn set(&self, cause: String) {
        if self.cause.set(cause).is_ok() {
            tracing::error!(
                cause = self.cause.get().map(String::as_str),
                "store poisoned: writes refused until reopen"
            );
        }
    }

    pub(crate) fn cause(&self) -> Option<&str> {
        self.cause.get().map(String::as_str)
    }
}

/// Which write path a [`FaultInjector`] should fail next.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next `append`/`append_encoded`.
    Append = 1,
    /// The next `sync`.
    Sync = 2,
    /// The next checkpoint commit.
    Checkpoint = 4,
    /// The next expiry sweep commit.
    Sweep = 8,
    /// The next point read (`get`, `dedup_get`, `offset`): it fails with an
    /// I/O error; reads never poison.
    Read = 16,
}

/// Test hook: arms one-shot failures of the store's write paths. An injected
/// failure behaves like a real one (the call fails with an I/O error and the
/// store is poisoned), but nothing reaches the disk.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct FaultInjector {
    armed: AtomicU8,
}

impl FaultInjector {
    /// Makes the next operation of kind `fault` fail.
    pub fn fail_next(&self, fault: Fault) {
        self.armed.fetch_or(fault as u8, Ordering::SeqCst);
    }

    /// Consumes an armed fault of this kind, if any.
    pub(crate) fn take(&self, fault: Fault, op: &'static str) -> Result<(), StoreError> {
        let bit = fault as u8;
        // Fast path: nothing armed (the normal case).
        if self.armed.load(Ordering::Relaxed) & bit == 0 {
            return Ok(());
        }
        if self.armed.fetch_and(!bit, Ordering::SeqCst) & bit != 0 {
            return Err(StoreError::Io {
                op,
                source: std::io::Error::other(format!("injected fault ({fault:?})")),
            });
        }
        Ok(())
    }
}
