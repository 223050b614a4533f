//! All nodes stopped and started again on their data dirs: the state is
//! intact, and consumption resumes after the committed stream sequences —
//! the restarted nodes take only the events published since.

mod cluster_common;

use std::time::Duration;

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
