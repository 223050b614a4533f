//! A node joining a running cluster takes its fair share of the partitions
//! (the others finish their batch, commit and release the extras) while the
//! producer keeps publishing, and no event is applied twice or lost. A node
//! that rejoins after a `kill -9` gets its share back: with 16 partitions
//! over 3 nodes the shares end within one of each other (6/5/5), not 6/6/4.

mod cluster_common;

use std::time::Duration;

use cluster_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_takes_its_share_without_loss_or_doubles() {
    let Some(nats) = nats() else { return };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let n1 = start_node(&nats.url, "n1", dirs[0].path(), &[]);
    let n2 = start_node(&nats.url, "n2", dirs[1].path(), &[]);
    let http = reqwest::Client::new();
    wait_balanced(&http, &[&n1, &n2], Duration::from_secs(20)).await;

    let producer = producer(&nats.url).await;
    let (events, expected) = workload(9_000, 300);
    let half = events.len() / 2;
    publish(&producer, &events[..half]).await;
    // The rest is published while the third node joins.
    let rest = events[half..].to_vec();
    let p2 = producer.clone();
    let publishing = tokio::spawn(async move { publish(&p2, &rest).await });
    let n3 = start_node(&nats.url, "n3", dirs[2].path(), &[]);
    let took = wait_balanced(&http, &[&n1, &n2, &n3], Duration::from_secs(30)).await;
    eprintln!("rebalanced {took:?} after the third node was ready");
    publishing.await.expect("publisher");
    assert_eq!(
        serving(&http, &n3).await.len(),
        2,
        "the new node's fair share"
    );
    assert!(total(&http, &[&n1, &n2], "releases").await >= 2);
    assert_exact(&http, &[&n1, &n2, &n3], &expected, Duration::from_secs(60)).await;
    stop(n1);
    stop(n2);
    stop(n3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoining_node_gets_a_share_within_one_of_its_peers() {
    let Some(nats) = nats() else { return };
    const P: u32 = 16;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let n1 = start_node_with(&nats.url, "n1", dirs[0].path(), P, &[]);
    let mut n2 = start_node_with(&nats.url, "n2", dirs[1].path(), P, &[]);
    let n3 = start_node_with(&nats.url, "n3", dirs[2].path(), P, &[]);
    let http = reqwest::Client::new();
    let shares = wait_shares_within_one(&http, &[&n1, &n2, &n3], P, Duration::from_secs(30)).await;
    eprintln!("shares at start: {shares:?}");
    signal(&n2, libc::SIGKILL);
    let _ = n2.child.wait();
    let shares = wait_shares_within_one(&http, &[&n1, &n3], P, Duration::from_secs(30)).await;
    eprintln!("shares without n2: {shares:?}");
    let n2 = start_node_with(&nats.url, "n2", dirs[1].path(), P, &[]);
    let shares = wait_shares_within_one(&http, &[&n1, &n2, &n3], P, Duration::from_secs(30)).await;
    eprintln!("shares after n2 rejoined: {shares:?}");
    stop(n1);
    stop(n2);
    stop(n3);
}
