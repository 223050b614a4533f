//! The one shutdown protocol of the server (STYLE.md): a "stop" signal every
//! task listens to, and a barrier every task holds a piece of.
//!
//! - **Stop**: a `watch<bool>` channel flipped to `true` once. It is a
//!   broadcast whose late subscribers still see the flip (a connection
//!   accepted while the stop is being sent cannot miss it, as it could with a
//!   `broadcast` channel).
//! - **Barrier**: an `mpsc::Sender<()>` clone ([`TaskGuard`]) held by every
//!   task that must finish before the engine shuts down (the HTTP server, the
//!   TCP accept loop, each TCP connection). Nothing is ever sent on it: when
//!   the last clone is dropped, the coordinator's `recv()` returns `None`,
//!   which means every task has finished.
//!
//! Order (driven by [`crate::RunningServer::shutdown`]): flip stop → listeners
//! stop accepting, connections stop reading new frames, SSE streams end,
//! in-flight requests and frames are answered → every guard dropped →
//! `engine.shutdown()` (drain, commit, ack) → done.

use tokio::sync::{mpsc, watch};

/// The coordinator's side: sends the stop and waits at the barrier.
#[derive(Debug)]
pub(crate) struct ShutdownCoordinator {
    /// The stop flag. Receivers: every [`Shutdown`] (one per task). Set to
    /// `true` once, never back; dropping it also reads as "stop".
    stop: watch::Sender<bool>,
    /// The barrier's original sender: cloned into every [`TaskGuard`], and
    /// dropped by [`ShutdownCoordinator::stop_and_wait`] so that the last
    /// guard's drop closes the channel. Capacity 1: nothing is sent.
    guard: Option<mpsc::Sender<()>>,
    /// The barrier's receiver: `recv() == None` once every guard is gone.
    done: mpsc::Receiver<()>,
}

impl ShutdownCoordinator {
    pub(crate) fn new() -> Self {
        let (stop, _) = watch::channel(false);
        // Nothing is ever sent: the channel only counts its senders (the
        // guards), so the smallest capacity will do.
        let (guard, done) = mpsc::channel(1);
        ShutdownCoordinator {
            stop,
            guard: Some(guard),
            done,
        }
    }

    /// A stop listener and a barrier guard for a new task.
    pub(crate) fn task(&self) -> (Shutdown, TaskGuard) {
        (self.listener(), self.guard())
    }

    /// A stop listener alone (for work that need not finish before the
    /// engine shuts down, e.g. a watch stream).
    pub(crate) fn listener(&self) -> Shutdown {
        Shutdown {
            rx: self.stop.subscribe(),
        }
    }

    /// A barrier guard. After `stop_and_wait` began, the guard is inert.
    pub(crate) fn guard(&self) -> TaskGuard {
        TaskGuard(self.guard.clone())
    }

    /// True once the stop was sent.
    pub(crate) fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sends the stop (idempotent).
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Sends the stop and waits until every task holding a guard finished.
    pub(crate) async fn stop_and_wait(&mut self) {
        self.stop();
        // Drop our own sender: otherwise `recv` would wait for it forever.
        drop(self.guard.take());
        let _ = self.done.recv().await;
    }
}

/// A task's view of the stop signal.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    /// The coordinator holds the sender; `true` (or a dropped sender) = stop.
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// True once the stop was sent.
    pub(crate) fn is_stopping(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once the stop is sent (at once if it already was).
    /// Cancel-safe: use it in `select!`.
    pub(crate) async fn recv(&mut self) {
        // `wait_for` fails only when the sender is gone, which means stop too.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// A piece of the barrier: the task holding it has not finished yet.
/// Dropping it is the task's "I am done". A clone is another piece (a
/// listener hands one to each connection it spawns).
#[derive(Debug, Clone)]
pub(crate) struct TaskGuard(#[allow(dead_code)] Option<mpsc::Sender<()>>);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn barrier_waits_for_every_task() {
        let mut c = ShutdownCoordinator::new();
        let (mut stop, guard) = c.task();
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = finished.clone();
        tokio::spawn(async move {
            stop.recv().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            f.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(guard);
        });
        c.stop_and_wait().await;
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn late_listener_sees_the_stop() {
        let c = ShutdownCoordinator::new();
        c.stop();
        let mut late = c.listener();
        assert!(late.is_stopping());
        tokio::time::timeout(Duration::from_secs(1), late.recv())
            .await
            .expect("resolves at once");
    }
}
