//! Three `statecraft serve --nats` processes and one producer: N `incr`
//! events with ids; one node is `kill -9`ed in the middle of the stream; its
//! partitions move to the survivors within the lease TTL (plus a tick and
//! the changelog rebuild); at the end every key equals exactly the number
//! of events sent for it, read from every surviving node.

mod cluster_common;

use std::time::{Duration, Instant};

use cluster_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_partitions_move_and_every_event_counts_once() {
    let Some(nats) = nats() else { return };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let n1 = start_node(&nats.url, "n1", dirs[0].path(), &[]);
    let n2 = start_node(&nats.url, "n2", dirs[1].path(), &[]);
    let n3 = start_node(&nats.url, "n3", dirs[2].path(), &[]);
    let http = reqwest::Client::new();
    wait_balanced(&http, &[&n1, &n2, &n3], Duration::from_secs(20)).await;

    let producer = producer(&nats.url).await;
    let (events, expected) = workload(9_000, 300);
    let third = events.len() / 3;
    publish(&producer, &events[..third]).await;
    // Let the owners get into the stream, then kill one mid-flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut n2 = n2;
    signal(&n2, libc::SIGKILL);
    let killed_at = Instant::now();
    let _ = n2.child.wait();
    // The rest is published while the partitions move.
    let rest = events[third..].to_vec();
    let p2 = producer.clone();
    let publishing = tokio::spawn(async move { publish(&p2, &rest).await });
    wait_balanced(&http, &[&n1, &n3], Duration::from_secs(20)).await;
    let failover = killed_at.elapsed();
    publishing.await.expect("publisher");
    eprintln!(
        "partitions of the killed node served again {:?} after the kill",
        failover
    );
    assert!(
        failover <= TTL + TTL / 4 + Duration::from_secs(3),
        "failover took {failover:?} with a {TTL:?} lease"
    );
    assert_exact(&http, &[&n1, &n3], &expected, Duration::from_secs(60)).await;
    let s1 = stats(&http, &n1).await;
    let s3 = stats(&http, &n3).await;
    eprintln!(
        "recovery ms n1 {} n3 {}; acquisitions {} {}",
        s1["max_recovery_ms"], s3["max_recovery_ms"], s1["acquisitions"], s3["acquisitions"]
    );
    stop(n1);
    stop(n3);
}
