//! Restarts. All nodes stopped and started again on their data dirs: the
//! state is intact, and consumption resumes after the committed stream
//! sequences — the restarted nodes take only the events published since.
//!
//! And the adversary of issue 19: a node `kill -9`ed in the middle of a
//! batch (between its local fsync and its changelog commit, a window the
//! commit-delay hook widens) and restarted at once on the same data dir,
//! in a loop, while four producers publish (with and without ids,
//! `ack=applied` and `ack=durable`, one message per event and record
//! batches): every key must be exact, and no producer may be told
//! `duplicate` for an event it sent once.

mod cluster_common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use statecraft_engine::AckMode;

use cluster_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_restart_keeps_the_state_and_resumes_after_the_stored_sequences() {
    let Some(nats) = nats() else { return };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let ids = ["n1", "n2", "n3"];
    let start_all = || -> Vec<Node> {
        ids.iter()
            .zip(&dirs)
            .map(|(id, d)| start_node(&nats.url, id, d.path(), &[]))
            .collect()
    };
    let http = reqwest::Client::new();
    let nodes = start_all();
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_balanced(&http, &refs, Duration::from_secs(20)).await;
    let producer = producer(&nats.url).await;
    let (events, expected_all) = workload(8_000, 250);
    let half = events.len() / 2;
    let (_, expected_half) = workload(half, 250);
    publish(&producer, &events[..half]).await;
    assert_exact(&http, &refs, &expected_half, Duration::from_secs(60)).await;
    drop(refs);
    for n in nodes {
        stop(n);
    }

    let nodes = start_all();
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_balanced(&http, &refs, Duration::from_secs(30)).await;
    // Intact before anything new arrives.
    assert_exact(&http, &refs, &expected_half, Duration::from_secs(10)).await;
    assert_eq!(
        total(&http, &refs, "consumed").await,
        0,
        "nothing committed before the restart is consumed again"
    );
    publish(&producer, &events[half..]).await;
    assert_exact(&http, &refs, &expected_all, Duration::from_secs(60)).await;
    assert_eq!(
        total(&http, &refs, "consumed").await,
        (events.len() - half) as u64,
        "only the events published after the restart were consumed"
    );
    drop(refs);
    for n in nodes {
        stop(n);
    }
}

/// One producer of the kill-and-restart loop: publishes calls of 50 events
/// (keys `<prefix>:<k>`) until told to stop; returns the count per key of
/// what it published and the results per kind (see [`publish_counting`]).
async fn keep_publishing(
    producer: statecraft_cluster::Producer,
    prefix: &'static str,
    ids: bool,
    ack: AckMode,
    stop: Arc<AtomicBool>,
) -> (HashMap<String, i64>, [u64; 4]) {
    let mut expected: HashMap<String, i64> = HashMap::new();
    let mut counts = [0u64; 4];
    let mut sent = 0usize;
    while !stop.load(Ordering::Acquire) {
        // Event i of this producer is `<prefix>-<i>` on key (i*7919)%97.
        let (all, _) = workload_named(prefix, sent + 50, 97, ids);
        let part = &all[sent..];
        for e in part {
            *expected.entry(e.key.clone()).or_default() += 1;
        }
        let got = publish_counting(&producer, part, 50, ack).await;
        for (c, g) in counts.iter_mut().zip(got) {
            *c += g;
        }
        sent += part.len();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    (expected, counts)
}

/// `rounds` times: let the producers run, `kill -9` one node (in turn),
/// restart it at once on its data dir. Then every key must be exact on
/// every node and no producer was told `duplicate` or an error.
async fn kill_and_restart_loop(node_count: usize, rounds: usize) {
    let Some(nats) = nats() else { return };
    let dirs: Vec<_> = (0..node_count)
        .map(|_| tempfile::tempdir().expect("dir"))
        .collect();
    let ids: Vec<String> = (1..=node_count).map(|i| format!("n{i}")).collect();
    // Each batch waits 40 ms between its local commit and its changelog
    // commit: a kill lands in that window most of the time.
    let hook = ["--cluster-commit-delay-ms", "40"];
    let mut nodes: Vec<Node> = ids
        .iter()
        .zip(&dirs)
        .map(|(id, d)| start_node(&nats.url, id, d.path(), &hook))
        .collect();
    let http = reqwest::Client::new();
    wait_balanced(
        &http,
        &nodes.iter().collect::<Vec<_>>(),
        Duration::from_secs(30),
    )
    .await;
    let single = producer(&nats.url).await;
    let batching = batching_producer(&nats.url).await;
    let halt = Arc::new(AtomicBool::new(false));
    // Two producers send one message per event, two send record batches.
    let streams = [
        ("ids_applied", true, AckMode::Applied, &single),
        ("ids_durable_batched", true, AckMode::Durable, &batching),
        ("noid_applied_batched", false, AckMode::Applied, &batching),
        ("noid_durable", false, AckMode::Durable, &single),
    ];
    let publishers: Vec<_> = streams
        .iter()
        .map(|&(prefix, with_ids, ack, producer)| {
            tokio::spawn(keep_publishing(
                producer.clone(),
                prefix,
                with_ids,
                ack,
                Arc::clone(&halt),
            ))
        })
        .collect();
    let began = std::time::Instant::now();
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(500 + 170 * round as u64)).await;
        let i = round % node_count;
        signal(&nodes[i], libc::SIGKILL);
        let _ = nodes[i].child.wait();
        // start_node blocks until the node is ready (its old entry must age
        // out first): keep the producers' worker free meanwhile.
        let fresh =
            tokio::task::block_in_place(|| start_node(&nats.url, &ids[i], dirs[i].path(), &hook));
        nodes[i] = fresh;
        eprintln!(
            "round {round}: {} killed and restarted ({:?} into the loop)",
            ids[i],
            began.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    halt.store(true, Ordering::Release);
    let mut expected = HashMap::new();
    let mut total = 0u64;
    for (task, (prefix, _, ack, _)) in publishers.into_iter().zip(streams) {
        let (exp, counts) = task.await.expect("publisher");
        let sent: i64 = exp.values().sum();
        total += sent as u64;
        eprintln!(
            "{prefix}: {sent} events; applied {} accepted {} duplicate {} other {}",
            counts[0], counts[1], counts[2], counts[3]
        );
        assert_eq!(
            counts[2], 0,
            "{prefix}: told `duplicate` for an event sent once"
        );
        assert_eq!(counts[3], 0, "{prefix}: failed results");
        if ack == AckMode::Durable {
            assert_eq!(counts[1], sent as u64, "{prefix}: every event accepted");
        }
        expected.extend(exp);
    }
    eprintln!("producers done {:?} into the loop", began.elapsed());
    let refs: Vec<&Node> = nodes.iter().collect();
    assert_exact(&http, &refs, &expected, Duration::from_secs(90)).await;
    eprintln!(
        "{node_count} node(s), {rounds} kill -9 + restart rounds, {total} events over {} keys: every key exact ({:?} into the loop)",
        expected.len(),
        began.elapsed()
    );
    drop(refs);
    for n in nodes {
        stop(n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_killed_mid_batch_and_restarted_in_a_loop_loses_nothing() {
    kill_and_restart_loop(1, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_killed_mid_batch_and_restarted_in_a_loop_lose_nothing() {
    kill_and_restart_loop(3, 3).await;
}
