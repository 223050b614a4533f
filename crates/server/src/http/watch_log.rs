//! `WatchLog`: the numbered recent changes behind `GET /v1/watch`'s SSE
//! `id:` lines and `Last-Event-ID` resume (docs/http-api.md, "Watch").
//!
//! One feeder task per server follows the engine's whole change feed while
//! anyone watches, numbers each change (`{epoch}-{seq}`: the epoch is the
//! server's start time in ms, the seq counts changes), keeps the last
//! [`WINDOW`] in a ring and re-broadcasts them to the watchers, which filter
//! by prefix. It stops [`LINGER`] after the last watcher left (so the engine
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
use tokio::sync::broadcast;

use crate::shutdown::Shutdown;

/// Changes kept for resume.
pub(crate) const WINDOW: usize = 10_000;
/// How long the feeder keeps following the engine after the last watcher left.
pub(crate) const LINGER: Duration = Duration::from_secs(60);

/// One numbered change.
pub(crate) type Numbered = (u64, Arc<Change>);

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
    live: Option<broadcast::Sender<Numbered>>,
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
    pub live: broadcast::Receiver<Numbered>,
    pub start: Start,
    pub guard: WatcherGuard,
}

/// Counts one watcher; dropping it records when the last one left.
pub(crate) struct WatcherGuard(Arc<WatchLog>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        let mut st = self.0.lock();
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
    ) -> Attached {
        let mut st = self.lock();
        st.watchers += 1;
        st.last_left = None;
        let live = match &st.live {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(4096);
                st.live = Some(tx.clone());
                tokio::spawn(feed(
                    Arc::clone(self),
                    engine.clone(),
                    server_stop.clone(),
                    tx,
                ));
                rx
            }
        };
        let start = match last_id {
            None => Start::Now,
            Some(id) => self.resume_locked(&st, id),
        };
        drop(st);
        Attached {
            live,
            start,
            guard: WatcherGuard(Arc::clone(self)),
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
async fn feed(
    log: Arc<WatchLog>,
    engine: Engine,
    mut server_stop: Shutdown,
    tx: broadcast::Sender<Numbered>,
) {
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
                        let _ = tx.send((seq, change));
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
    st.live = None;
    st.ring.clear();
    st.next_seq += 1;
    st.resumable_from = st.next_seq;
}
