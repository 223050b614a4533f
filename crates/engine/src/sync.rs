//! The synchronization primitives the queue hand-offs are built from, behind a
//! facade so that `loom` can stand in for `std` under `--cfg loom`.
//!
//! Invariant: `queue.rs` takes every lock and atomic it uses from here, never
//! from `std::sync` directly; otherwise the loom models would not see them.

#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, recovering the guard if a previous holder panicked: the
/// queue's state stays consistent across a panic because every mutation is
/// completed before any call that could panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
