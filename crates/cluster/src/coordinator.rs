//! The coordinator: the one task per node that owns the node's membership
//! and its partition leases.
//!
//! Every tick (a quarter of the lease TTL) it renews the node's heartbeat
//! and every lease it holds (revision-checked updates), reaps the partition
//! tasks that ended (releasing their leases when they ended cleanly),
//! refreshes the view of live nodes and owners, and rebalances: it claims
//! free partitions (`create`, which succeeds only on a missing or deleted
//! lease — one whose owner stopped renewing it has aged out of the bucket)
//! up to its target share, and asks its extra partitions to release when
//! nodes joined (the task finishes its batch, commits, acks, stops; then
//! the lease is deleted).
//!
//! Target shares ([`target_share`]): with P partitions and N live nodes,
//! every node's target is `floor(P / N)`, plus one for the first `P mod N`
//! nodes in id order. All nodes compute the same targets from the same
//! view, the targets add up to P and differ by at most one, so a node that
//! rejoins gets its share back (its peers release down to their targets)
//! and no partition moves back and forth.
//!
//! Invariants:
//! - A lease is deleted only by the holder of its current revision, after
//!   its partition task has ended.
//! - A partition task whose lease renewal was refused (someone else holds
//!   it now) is told at once ([`PartitionControl::lose`]) and never commits
//!   again.
//! - Preference among partitions is rendezvous hashing of (node, partition),
//!   so claims and releases are stable across ticks and nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::ClusterError;
use crate::names;
use crate::node::{
    Counters, LeaseValue, Node, NodeRecord, PartitionControl, PartitionExit, View, read, write,
};

/// A partition held by this node.
struct Held {
    control: Arc<PartitionControl>,
    /// Revision of our lease entry (revision-checked renewals).
    lease_rev: u64,
    /// The lease was refused at renewal: not ours to delete.
    lost: bool,
    task: JoinHandle<PartitionExit>,
}

/// The coordinator's own state (only its task touches it).
pub(crate) struct Coordinator {
    node: Arc<Node>,
    held: HashMap<u32, Held>,
    node_rev: u64,
    started: Instant,
    record: NodeRecord,
}

/// Registers the node in the nodes bucket. Waits (up to twice the TTL) for
/// an entry of the same id left by a previous process to age out.
pub(crate) async fn register(node: &Node, record: &NodeRecord) -> Result<u64, ClusterError> {
    let payload = bytes::Bytes::from(serde_json::to_vec(record).unwrap_or_default());
    let give_up = Instant::now() + node.infra.lease_ttl * 2 + Duration::from_secs(1);
    let mut told = false;
    loop {
        match node
            .infra
            .nodes
            .create(&node.config.node_id, payload.clone())
            .await
        {
            Ok(rev) => return Ok(rev),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                if Instant::now() > give_up {
                    return Err(ClusterError::NodeIdInUse(node.config.node_id.clone()));
                }
                if !told {
                    told = true;
                    tracing::info!(
                        node = node.config.node_id,
                        "an entry for this node id is live (a previous process?); waiting for it to expire"
                    );
                }
                tokio::time::sleep(node.tick()).await;
            }
            Err(e) => return Err(ClusterError::nats("registering the node", e)),
        }
    }
}

impl Coordinator {
    pub fn new(node: Arc<Node>, node_rev: u64, record: NodeRecord) -> Self {
        Coordinator {
            node,
            held: HashMap::new(),
            node_rev,
            started: Instant::now(),
            record,
        }
    }

    /// Runs until `stop` turns true, then releases everything and
    /// deregisters.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let tick = self.node.tick();
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
            self.heartbeat().await;
            self.keepalive().await;
            self.reap().await;
            self.refresh_view().await;
            // Let peers that start at the same time register before the
            // first claims, so the first assignment is already fair.
            if self.started.elapsed() >= tick * 2 {
                self.rebalance().await;
            }
        }
        self.release_all().await;
    }

    async fn heartbeat(&mut self) {
        let payload = bytes::Bytes::from(serde_json::to_vec(&self.record).unwrap_or_default());
        let nodes = &self.node.infra.nodes;
        match nodes
            .update(&self.node.config.node_id, payload.clone(), self.node_rev)
            .await
        {
            Ok(rev) => self.node_rev = rev,
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                // Our entry aged out (a pause longer than the TTL): register anew.
                match nodes.create(&self.node.config.node_id, payload).await {
                    Ok(rev) => self.node_rev = rev,
                    Err(e) => tracing::error!(
                        node = self.node.config.node_id,
                        error = %e,
                        "the node entry is held by another process with the same node id"
                    ),
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }

    async fn keepalive(&mut self) {
        let value =
            bytes::Bytes::from(serde_json::to_vec(&self.node.lease_value()).unwrap_or_default());
        let node = &self.node;
        let renewals = self
            .held
            .iter()
            .filter(|(_, h)| !h.lost)
            .map(|(&p, h)| {
                let value = value.clone();
                let rev = h.lease_rev;
                async move {
                    let sent = node.now_ms();
                    let r = node
                        .infra
                        .leases
                        .update(names::lease_key(p), value, rev)
                        .await;
                    (p, sent, r)
                }
            })
            .collect::<Vec<_>>();
        for (p, sent, result) in futures::future::join_all(renewals).await {
            let Some(h) = self.held.get_mut(&p) else {
                continue;
            };
            match result {
                Ok(rev) => {
                    h.lease_rev = rev;
                    h.control
                        .deadline_ms
                        .fetch_max(node.deadline_after(sent), Ordering::AcqRel);
                }
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    h.lost = true;
                    h.control.lose();
                    Counters::add(&node.counters.leases_lost, 1);
                    tracing::warn!(
                        partition = p,
                        "lease lost (expired or taken over): the partition stops without committing"
                    );
                }
                Err(e) => tracing::warn!(partition = p, error = %e, "lease renewal failed"),
            }
        }
    }

    /// Collects the partition tasks that ended.
    async fn reap(&mut self) {
        let done: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, h)| h.task.is_finished())
            .map(|(&p, _)| p)
            .collect();
        for p in done {
            let Some(h) = self.held.remove(&p) else {
                continue;
            };
            write(&self.node.owned).remove(&p);
            let exit = h
                .task
                .await
                .unwrap_or_else(|e| PartitionExit::Failed(format!("the task panicked: {e}")));
            let give_back = match &exit {
                PartitionExit::Released => {
                    Counters::add(&self.node.counters.releases, 1);
                    tracing::info!(partition = p, "partition_released");
                    true
                }
                // The deadline passed without the lease being refused (a
                // renewal came late): the lease may still be ours; deleting
                // it at our revision frees the partition now instead of a
                // TTL later (a no-op if someone else holds it).
                PartitionExit::LeaseLost => {
                    tracing::warn!(partition = p, exit = ?exit, "partition stopped");
                    true
                }
                PartitionExit::Fenced => {
                    tracing::warn!(partition = p, exit = ?exit, "partition stopped");
                    false
                }
                PartitionExit::EngineClosed => true,
                PartitionExit::Failed(why) => {
                    tracing::error!(
                        partition = p,
                        error = why,
                        "partition task failed; releasing it"
                    );
                    cooldown(&self.node).insert(p, Instant::now());
                    true
                }
            };
            if give_back
                && !h.lost
                && let Err(e) = self
                    .node
                    .infra
                    .leases
                    .delete_expect_revision(names::lease_key(p), Some(h.lease_rev))
                    .await
            {
                tracing::debug!(partition = p, error = %e, "deleting the lease failed (it will expire)");
            }
        }
    }

    async fn refresh_view(&mut self) {
        let infra = &self.node.infra;
        let mut view = View {
            nodes: Default::default(),
            owners: vec![None; infra.partitions as usize],
        };
        match infra.nodes.keys().await {
            Ok(mut keys) => {
                let mut ids = Vec::new();
                while let Some(k) = keys.next().await {
                    match k {
                        Ok(k) => ids.push(k),
                        Err(e) => {
                            tracing::debug!(error = %e, "listing nodes failed");
                            return;
                        }
                    }
                }
                let entries =
                    futures::future::join_all(ids.iter().map(|id| infra.nodes.entry(id.clone())))
                        .await;
                for (id, e) in ids.into_iter().zip(entries) {
                    if let Ok(Some(e)) = e
                        && e.operation == Operation::Put
                        && let Ok(rec) = serde_json::from_slice::<NodeRecord>(&e.value)
                    {
                        view.nodes.insert(id, rec);
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "listing nodes failed");
                return;
            }
        }
        let leases = futures::future::join_all(
            (0..infra.partitions).map(|p| infra.leases.entry(names::lease_key(p))),
        )
        .await;
        for (p, e) in leases.into_iter().enumerate() {
            match e {
                Ok(Some(e)) if e.operation == Operation::Put => {
                    if let Ok(v) = serde_json::from_slice::<LeaseValue>(&e.value) {
                        view.owners[p] = Some(v.node);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "reading leases failed");
                    return;
                }
            }
        }
        *write(&self.node.view) = view;
    }

    async fn rebalance(&mut self) {
        if self.node.closing.load(Ordering::Acquire) {
            return;
        }
        let me = self.node.config.node_id.clone();
        let (live, owners, fair) = {
            let v = read(&self.node.view);
            let live = v.nodes.len() + usize::from(!v.nodes.contains_key(&me));
            let fair = target_share(
                self.node.infra.partitions,
                v.nodes.keys().map(String::as_str),
                &me,
            );
            (live.max(1), v.owners.clone(), fair)
        };
        let partitions = self.node.infra.partitions;
        let active: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, h)| !h.control.release.load(Ordering::Acquire) && !h.lost)
            .map(|(&p, _)| p)
            .collect();
        if active.len() < fair {
            let cooling: Vec<u32> = {
                let mut c = cooldown(&self.node);
                let back_off = self.node.infra.lease_ttl;
                c.retain(|_, t| t.elapsed() < back_off);
                c.keys().copied().collect()
            };
            let mut free: Vec<u32> = (0..partitions)
                .filter(|p| {
                    owners.get(*p as usize).is_some_and(Option::is_none)
                        && !self.held.contains_key(p)
                        && !cooling.contains(p)
                })
                .collect();
            free.sort_by_key(|&p| std::cmp::Reverse(names::preference(&me, p)));
            for p in free.into_iter().take(fair - active.len()) {
                self.claim(p).await;
            }
        } else if active.len() > fair {
            let mut extra = active;
            extra.sort_by_key(|&p| names::preference(&me, p));
            for p in extra.iter().take(extra.len() - fair) {
                if let Some(h) = self.held.get(p) {
                    tracing::info!(
                        partition = p,
                        fair_share = fair,
                        live_nodes = live,
                        "releasing a partition to a peer"
                    );
                    h.control.ask_release();
                }
            }
        }
    }

    async fn claim(&mut self, p: u32) {
        let node = &self.node;
        let value = bytes::Bytes::from(serde_json::to_vec(&node.lease_value()).unwrap_or_default());
        let sent = node.now_ms();
        match node.infra.leases.create(names::lease_key(p), value).await {
            Ok(rev) => {
                let control = Arc::new(PartitionControl::new(p, node.deadline_after(sent)));
                write(&node.owned).insert(p, Arc::clone(&control));
                let task = tokio::spawn(crate::partition::run(
                    Arc::clone(&self.node),
                    Arc::clone(&control),
                ));
                tracing::info!(partition = p, lease_revision = rev, "partition_claimed");
                self.held.insert(
                    p,
                    Held {
                        control,
                        lease_rev: rev,
                        lost: false,
                        task,
                    },
                );
            }
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
            Err(e) => tracing::debug!(partition = p, error = %e, "claiming failed"),
        }
    }

    /// Shutdown: every partition finishes its batch, commits, acks and
    /// stops; leases are deleted; the node entry is deleted.
    async fn release_all(&mut self) {
        self.node.closing.store(true, Ordering::Release);
        for h in self.held.values() {
            h.control.ask_release();
        }
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut last_renewal = Instant::now();
        while !self.held.is_empty() {
            if Instant::now() > give_up {
                tracing::error!(
                    partitions = self.held.len(),
                    "partitions did not stop in 30 s; abandoning them (their leases will expire)"
                );
                for (_, h) in self.held.drain() {
                    h.task.abort();
                }
                break;
            }
            if last_renewal.elapsed() >= self.node.tick() {
                last_renewal = Instant::now();
                self.keepalive().await;
            }
            self.reap().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(e) = self
            .node
            .infra
            .nodes
            .delete_expect_revision(&self.node.config.node_id, Some(self.node_rev))
            .await
        {
            tracing::debug!(error = %e, "deleting the node entry failed (it will expire)");
        }
        tracing::info!(node = self.node.config.node_id, "left the cluster");
    }
}

fn cooldown(node: &Node) -> std::sync::MutexGuard<'_, HashMap<u32, Instant>> {
    match node.cooldown.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The number of partitions node `me` should own among `live` nodes (ids;
/// `me` counted whether listed or not): `floor(P / N)`, plus one for the
/// first `P mod N` nodes in id order. Every node computes the same targets
/// from the same view; they add up to P and differ by at most one.
pub(crate) fn target_share<'a>(
    partitions: u32,
    live: impl Iterator<Item = &'a str>,
    me: &str,
) -> usize {
    let mut ids: Vec<&str> = live.collect();
    if !ids.contains(&me) {
        ids.push(me);
    }
    ids.sort_unstable();
    ids.dedup();
    let n = ids.len();
    let p = partitions as usize;
    let rank = ids.iter().position(|&id| id == me).unwrap_or(0);
    p / n + usize::from(rank < p % n)
}

#[cfg(test)]
mod tests {
    use super::target_share;

    #[test]
    fn target_shares_add_up_and_differ_by_at_most_one() {
        for p in [1u32, 6, 12, 16, 17, 64] {
            for n in 1..=7usize {
                let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
                let shares: Vec<usize> = ids
                    .iter()
                    .map(|me| target_share(p, ids.iter().map(String::as_str), me))
                    .collect();
                assert_eq!(shares.iter().sum::<usize>(), p as usize, "p={p} n={n}");
                let (lo, hi) = (shares.iter().min(), shares.iter().max());
                assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{shares:?}");
            }
        }
        // Not yet in the view: counted anyway.
        assert_eq!(target_share(16, ["a", "b"].into_iter(), "c"), 5);
        assert_eq!(target_share(16, ["a", "b", "c"].into_iter(), "a"), 6);
        assert_eq!(target_share(16, ["a", "b"].into_iter(), "a"), 8);
    }
}
