//! A stale owner cannot commit over the new owner: a node paused with
//! SIGSTOP past its lease (while it holds a batch between its local commit
//! and its changelog commit, widened by the test hook) loses its partitions
//! to the other node; resumed with SIGCONT, it refuses to commit that batch
//! (its lease is no longer certain, or the marker moved), acknowledges
//! nothing, rejoins, and every key is exact.

mod cluster_common;

use std::time::Duration;

use cluster_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_resumed_after_its_lease_cannot_commit() {
    let Some(nats) = nats() else { return };
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
    // a's batches sit 400 ms between the local and the changelog commit.
    let a = start_node(
        &nats.url,
        "a",
        dirs[0].path(),
        &["--cluster-commit-delay-ms", "400"],
    );
    let b = start_node(&nats.url, "b", dirs[1].path(), &[]);
    let http = reqwest::Client::new();
    wait_balanced(&http, &[&a, &b], Duration::from_secs(20)).await;
    let a_partitions = serving(&http, &a).await;

    let producer = producer(&nats.url).await;
    let (events, expected) = workload(6_000, 200);
    let half = events.len() / 2;
    publish(&producer, &events[..half]).await;
    // a is now busy with its partitions' batches: pause it there.
    tokio::time::sleep(Duration::from_millis(150)).await;
    signal(&a, libc::SIGSTOP);
    let p2 = producer.clone();
    let rest = events[half..].to_vec();
    let publishing = tokio::spawn(async move { publish(&p2, &rest).await });
    // b takes every partition over once a's leases expire.
    let deadline = std::time::Instant::now() + TTL * 2 + Duration::from_secs(10);
    while serving(&http, &b).await.len() < PARTITIONS as usize {
        assert!(std::time::Instant::now() < deadline, "b did not take over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publishing.await.expect("publisher");
    signal(&a, libc::SIGCONT);

    // a refused to commit what it held, and rejoins for its share.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = stats(&http, &a).await;
        let refused = s["stale_commits_refused"].as_u64().unwrap_or(0)
            + s["fenced"].as_u64().unwrap_or(0)
            + s["leases_lost"].as_u64().unwrap_or(0);
        if refused > 0 {
            eprintln!(
                "a after SIGCONT: stale_commits_refused {} fenced {} leases_lost {} (held {a_partitions:?})",
                s["stale_commits_refused"], s["fenced"], s["leases_lost"]
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a never noticed: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_balanced(&http, &[&a, &b], Duration::from_secs(30)).await;
    assert_exact(&http, &[&a, &b], &expected, Duration::from_secs(60)).await;
    stop(a);
    stop(b);
}
