//! `WatchLog`: the numbered recent changes behind `GET /v1/watch`'s SSE
//! `id:` lines and `Last-Event-ID` resume (docs/http-api.md, "Watch").
//!
//! One feeder task per server follows the engine's whole change feed while
//! anyone watches, numbers each change (`{epoch}-{seq}`: the epoch is the
//! server's start time in ms, the seq counts changes), keeps the last
//! [`WINDOW`] in a ring and routes each to the watchers whose prefix it
//! matches (a registry of watcher prefixes): a change wakes no watcher it
//! does not match. Each watcher has a bounded buffer ([`WATCHER_BUFFER`]);
//! what does not fit is counted and the watcher is told (`lagged`). It stops [`LINGER`] after the last watcher left (so the engine
//! builds no changes for nobody), and a watcher that comes back within that
//! time resumes where it was.
//!
//! Invariants: seqs are strictly increasing and never reused within an
//! epoch; a resume replays exactly the ring's changes after the given id, in
//! order, then continues live without a gap or a repeat — or, when the ring
//! cannot prove it has everything after that id (another epoch, the feeder
//! was stopped or fell behind, the id is older than the ring), it says so
//! (`reset`, or `lagged` with the count) instead of skipping silently.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use statecraft_engine::{Change, Engine};
use tokio::sync::mpsc;

use crate::shutdown::Shutdown;

/// Changes kept for resume.
pub(crate) const WINDOW: usize = 10_000;
/// How long the feeder keeps following the engine after the last watcher left.
pub(crate) const LINGER: Duration = Duration::from_secs(60);

/// One numbered change.
pub(crate) type Numbered = (u64, Arc<Change>);

/// Changes buffered per watcher; past it the watcher is `lagged`.
pub(crate) const WATCHER_BUFFER: usize = 4096;

/// One watcher in the registry: its prefix and its bounded buffer.
#[derive(Debug)]
struct Route {
    id: u64,
    prefix: String,
    tx: mpsc::Sender<Numbered>,
    missed: Arc<std::sync::atomic::AtomicU64>,
}

/// A watcher's live feed: the changes routed to it, and how many it missed
/// because its buffer was full.
#[derive(Debug)]
pub(crate) struct Live {
    /// Changes matching the watcher's prefix, in seq order.
    pub rx: mpsc::Receiver<Numbered>,
    /// Changes dropped since last read (buffer full); swap to 0 to report.
    pub missed: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, Default)]
struct State {
    ring: VecDeque<Numbered>,
    /// The seq the next change gets (seqs start at 1).
    next_seq: u64,
    /// Resume from an id below this is impossible: the changes in between
    /// were never numbered (no feeder) or were missed by the feeder.
    resumable_from: u64,
    watchers: usize,
    last_left: Option<Instant>,
    /// The feeder runs.
    feeding: bool,
    /// The watchers, by prefix.
    routes: Vec<Route>,
    next_route: u64,
    /// Changes handed to watchers (matching ones only), for tests.
    deliveries: u64,
}

/// The server's numbered change log (one per server, in `Shared`).
#[derive(Debug)]
pub(crate) struct WatchLog {
    epoch: u64,
    state: Mutex<State>,
}

impl Default for WatchLog {
    fn default() -> Self {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        WatchLog {
            epoch,
            state: Mutex::new(State {
                next_seq: 1,
                resumable_from: 1,
                ..State::default()
            }),
        }
    }
}

/// Where a new watcher starts.
#[derive(Debug)]
pub(crate) enum Start {
    /// From now on (no `Last-Event-ID`).
    Now,
    /// After a replay of these changes (possibly none).
    Resume(Vec<Numbered>),
    /// The id cannot be resumed; why.
    Reset(&'static str),
    /// Resumed, but this many changes after the id had already left the
    /// ring; the replay holds the ones still there.
    Lagged(u64, Vec<Numbered>),
}

/// A watcher's attachment: live changes, where it starts, and a guard that
/// counts it until dropped.
pub(crate) struct Attached {
    pub live: Live,
    pub start: Start,
    pub guard: WatcherGuard,
}

/// Counts one watcher; dropping it records when the last one left.
pub(crate) struct WatcherGuard(Arc<WatchLog>, u64);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        let id = self.1;
        st.routes.retain(|r| r.id != id);
        st.watchers = st.watchers.saturating_sub(1);
        if st.watchers == 0 {
            st.last_left = Some(Instant::now());
        }
    }
}

impl WatchLog {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The SSE id of a seq.
    pub(crate) fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.epoch)
    }

    /// Attaches a watcher (starting the feeder if it is not running), with
    /// its `Last-Event-ID` if it sent one.
    pub(crate) fn attach(
        self: &Arc<Self>,
        engine: &Engine,
        server_stop: &Shutdown,
        last_id: Option<&str>,
        prefix: &str,
    ) -> Attached {
        let mut st = self.lock();
        st.watchers += 1;
        st.last_left = None;
        if !st.feeding {
            st.feeding = true;
            tokio::spawn(feed(Arc::clone(self), engine.clone(), server_stop.clone()));
        }
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        let missed = Arc::default();
        let route_id = st.next_route;
        st.next_route += 1;
        st.routes.push(Route {
            id: route_id,
            prefix: prefix.to_owned(),
            tx,
            missed: Arc::clone(&missed),
        });
        let live = Live { rx, missed };
        let start = match last_id {
            None => Start::Now,
            Some(id) => self.resume_locked(&st, id),
        };
        drop(st);
        Attached {
            live,
            start,
            guard: WatcherGuard(Arc::clone(self), route_id),
        }
    }

    fn resume_locked(&self, st: &State, id: &str) -> Start {
        let parsed = id
            .trim()
            .split_once('-')
            .and_then(|(e, s)| Some((e.parse::<u64>().ok()?, s.parse::<u64>().ok()?)));
        let Some((epoch, seq)) = parsed else {
            return Start::Reset("Last-Event-ID is not an id this server sent");
        };
        if epoch != self.epoch {
            return Start::Reset("the server restarted since that id");
        }
        if seq >= st.next_seq {
            return Start::Reset("that id is ahead of the server");
        }
        if seq + 1 < st.resumable_from {
            return Start::Reset(
                "the changes after that id were not kept (no watcher for a while, or the log fell behind)",
            );
        }
        let replay: Vec<Numbered> = st.ring.iter().filter(|(s, _)| *s > seq).cloned().collect();
        let oldest = st.ring.front().map_or(st.next_seq, |(s, _)| *s);
        if seq + 1 < oldest {
            Start::Lagged(oldest - seq - 1, replay)
        } else {
            Start::Resume(replay)
        }
    }
}

/// The feeder: numbers the engine's changes while anyone watches.
async fn feed(log: Arc<WatchLog>, engine: Engine, mut server_stop: Shutdown) {
    let mut changes = Box::pin(engine.watch(""));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            item = changes.next() => {
                let mut st = log.lock();
                match item {
                    Some(Ok(change)) => {
                        let seq = st.next_seq;
                        st.next_seq += 1;
                        if st.ring.len() == WINDOW {
                            st.ring.pop_front();
                        }
                        st.ring.push_back((seq, Arc::clone(&change)));
                        st.deliveries += route(&st.routes, seq, &change);
                    }
                    Some(Err(missed)) => {
                        // The feeder fell behind the engine: those changes
                        // have no number; nothing before them can resume.
                        st.next_seq += missed;
                        st.ring.clear();
                        st.resumable_from = st.next_seq;
                    }
                    None => {
                        stop(&mut st);
                        return;
                    }
                }
            }
            _ = server_stop.recv() => {
                stop(&mut log.lock());
                return;
            }
            _ = tick.tick() => {
                let mut st = log.lock();
                if st.watchers == 0 && st.last_left.is_some_and(|t| t.elapsed() >= LINGER) {
                    stop(&mut st);
                    return;
                }
            }
        }
    }
}

/// The feeder stops: changes from now on get no number, so no id given so
/// far can resume (the seq skips one to mark the gap).
fn stop(st: &mut State) {
    // Dropping the senders ends every watcher's stream.
    st.routes.clear();
    st.feeding = false;
    st.ring.clear();
    st.next_seq += 1;
    st.resumable_from = st.next_seq;
}

/// Hands change `seq` to the watchers whose prefix it matches (and to no
/// other); a full buffer counts a miss instead of waiting. Returns how many
/// watchers it was handed to.
fn route(routes: &[Route], seq: u64, change: &Arc<Change>) -> u64 {
    let mut delivered = 0;
    for r in routes.iter().filter(|r| change.key.starts_with(&r.prefix)) {
        delivered += 1;
        if r.tx.try_send((seq, Arc::clone(change))).is_err() {
            r.missed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    delivered
}

impl WatchLog {
    /// Changes handed to watchers so far (each counted once per watcher it
    /// matched).
    #[cfg(test)]
    pub(crate) fn deliveries(&self) -> u64 {
        self.lock().deliveries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::ShutdownCoordinator;
    use statecraft_engine::Event;

    /// 100 watchers on a prefix nothing matches and one on `a:`: each
    /// change is handed to the one watcher it matches, never to the others
    /// (before the registry, every change went to every watcher: 101 per
    /// change).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_is_handed_only_to_the_watchers_it_matches() {
        const CHANGES: u64 = 50;
        let engine = Engine::builder().shards(2).open().await.expect("engine");
        let coordinator = ShutdownCoordinator::new();
        let stop = coordinator.listener();
        let log = Arc::new(WatchLog::default());
        let idle: Vec<Attached> = (0..100)
            .map(|_| log.attach(&engine, &stop, None, "nothing:"))
            .collect();
        let mut one = log.attach(&engine, &stop, None, "a:");
        // The feeder subscribes to the engine asynchronously: write until
        // the matching watcher sees changes, then count from there.
        let mut seen = 0u64;
        for i in 0..CHANGES * 100 {
            engine
                .submit(vec![Event::set(
                    format!("a:{}", i % 7),
                    serde_json::json!(i),
                )])
                .await
                .expect("submit");
            while let Ok(c) = one.live.rx.try_recv() {
                assert!(c.1.key.starts_with("a:"));
                seen += 1;
            }
            if seen >= CHANGES {
                break;
            }
        }
        assert!(seen >= CHANGES, "the matching watcher got {seen} changes");
        // Every routed change went to exactly one watcher: what was handed
        // out is what the matching watcher receives (a hang fails).
        let mut received = seen;
        while received < log.deliveries() {
            tokio::time::timeout(Duration::from_secs(30), one.live.rx.recv())
                .await
                .expect("a counted delivery never arrived: it went to another watcher")
                .expect("open");
            received += 1;
        }
        assert_eq!(log.deliveries(), received);
        for mut w in idle {
            assert!(
                w.live.rx.try_recv().is_err(),
                "a non-matching watcher was handed a change"
            );
        }
        drop(coordinator);
    }

    /// A watcher whose buffer is full misses changes and is told how many.
    #[test]
    fn a_full_buffer_counts_misses_instead_of_waiting() {
        let (tx, mut rx) = mpsc::channel(2);
        let missed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let routes = vec![Route {
            id: 0,
            prefix: "a".into(),
            tx,
            missed: Arc::clone(&missed),
        }];
        let change = Arc::new(Change {
            key: "a1".into(),
            op: statecraft_engine::Op::Set,
            value: Some(serde_json::json!(1)),
            version: 1,
            updated_at: 0,
        });
        for seq in 1..=5 {
            assert_eq!(route(&routes, seq, &change), 1);
        }
        assert_eq!(missed.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert_eq!(rx.try_recv().map(|c| c.0).ok(), Some(1));
        assert_eq!(rx.try_recv().map(|c| c.0).ok(), Some(2));
    }
}
