//! The `nats://` target of `statecraft load`: events published straight to a
//! cluster's JetStream stream with [`statecraft_cluster::Producer`] (one
//! `Nats-Msg-Id` per event), `ack=durable` = the stream acknowledged,
//! `ack=applied` = the partition's owner applied it.
//!
//! Invariant: every generated event is counted once, as a result or as lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use statecraft_cluster::{Producer, ProducerOptions};
use statecraft_engine::{Event, EventResult, Op};

use super::generator::{EventGen, GenOp, merge_patch, set_patch_seq};
use super::recorder::{FrameTally, Recorder};
use super::{ConnOutcome, ConnPlan, pace};

/// Connects one producer, shared by the run's connections (tasks).
pub(super) async fn connect(url: &str) -> anyhow::Result<Arc<Producer>> {
    let producer = Producer::connect(url, ProducerOptions::default())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "connecting to {url}: {e} (is a `statecraft serve --nats {url}` cluster running?)"
            )
        })?;
    Ok(Arc::new(producer))
}

/// Runs one connection's share of the load.
pub(super) async fn drive(
    producer: Arc<Producer>,
    plan: ConnPlan,
    mut source: EventGen,
    progress: &AtomicU64,
) -> ConnOutcome {
    let mut pacer = plan.pacer;
    let mut rec = Recorder::default();
    let mut tally = FrameTally::default();
    let mut patch = merge_patch(0);
    let mut sent = 0u64;
    let mut failure = None;
    while sent < plan.events {
        let n = (plan.events - sent).min(plan.batch as u64);
        let late = pace(&mut pacer).await;
        let mut events = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let e = source.next_event();
            events.push(match e.op {
                GenOp::Incr => Event::incr(e.key, 1),
                GenOp::Set => Event::set(e.key, e.n.into()),
                GenOp::Merge => {
                    set_patch_seq(&mut patch, e.n);
                    Event::new(e.key, Op::Merge).with_value(patch.clone())
                }
            });
        }
        let origin = late.unwrap_or_else(Instant::now);
        sent += n;
        tally.clear();
        match producer.publish_events(events, plan.ack).await {
            Ok(results) => {
                for r in &results {
                    match r {
                        EventResult::Applied { .. }
                        | EventResult::Duplicate
                        | EventResult::Accepted => tally.ok += 1,
                        EventResult::Overloaded => tally.error_named("overloaded", 1),
                        EventResult::Conflict { .. } => tally.error_named("conflict", 1),
                        EventResult::Rejected { code, .. } => {
                            tally.error_named(&format!("rejected:{code}"), 1)
                        }
                        other => tally.error_named(other.status(), 1),
                    }
                }
            }
            Err(e) => {
                rec.lost("connection", n);
                failure = Some(format!("publishing failed: {e}"));
            }
        }
        if tally.total() > 0 {
            rec.frame(origin.elapsed(), &tally);
        }
        progress.fetch_add(n, Ordering::Relaxed);
        if failure.is_some() {
            break;
        }
    }
    ConnOutcome {
        rec,
        not_sent: plan.events - sent,
        failure,
    }
}
