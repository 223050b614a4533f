//! Each classic mistake fails exactly the objective that is about it, and the
//! other objectives of that lesson still pass: the checks can fail, and they
//! fail for the right reason. The objective a mistake is about is graded
//! again [`support::REPEAT`] times: its verdict must not flip between runs.

#[path = "learners/support.rs"]
mod support;

use support::{assert_only_failing, check, check_repeated, python_available, serial};

#[test]
fn global_queue_with_several_workers_breaks_per_key_order() {
    if !python_available("global_queue_with_several_workers_breaks_per_key_order") {
        return;
    }
    let _serial = serial();
    let report = check(1, "bad_global_queue.py");
    assert_only_failing(&report, &["per_key_order"]);
    check_repeated(1, "bad_global_queue.py", &["per_key_order"]);
}

#[test]
fn no_batch_deadline_misses_the_deadline() {
    if !python_available("no_batch_deadline_misses_the_deadline") {
        return;
    }
    let _serial = serial();
    let report = check(2, "bad_no_deadline.py");
    assert_only_failing(&report, &["deadline"]);
    check_repeated(2, "bad_no_deadline.py", &["deadline"]);
}

#[test]
fn unbounded_queue_breaks_depth_and_memory_bounds() {
    if !python_available("unbounded_queue_breaks_depth_and_memory_bounds") {
        return;
    }
    let _serial = serial();
    let report = check(3, "bad_unbounded.py");
    // An unbounded queue never overflows, so it never refuses anything: the
    // catalogue's exactly_one_reply demands some nacks under that load, so it
    // fails too — and says why.
    assert_only_failing(
        &report,
        &["bounded_depth", "bounded_memory", "exactly_one_reply"],
    );
    let detail = report
        .outcome("exactly_one_reply")
        .and_then(|o| o.detail.clone())
        .unwrap_or_default();
    assert!(detail.contains("no event was refused"), "{detail}");
    assert!(!detail.contains("more than one reply"), "{detail}");
    // The memory verdict once depended on the machine's speed (issue 12).
    check_repeated(3, "bad_unbounded.py", &["bounded_memory", "bounded_depth"]);
}

#[test]
fn acking_before_durable_loses_acked_events() {
    if !python_available("acking_before_durable_loses_acked_events") {
        return;
    }
    let _serial = serial();
    let report = check(5, "bad_early_ack.py");
    // Its acks leave before any fsync (the log is flushed every 100 ms), so
    // the trace shows them too.
    assert_only_failing(&report, &["durable_acks", "fsync_before_ack"]);
    let figure = &report
        .outcome("durable_acks")
        .map(|o| o.figure.clone())
        .unwrap_or_default();
    assert!(!figure.starts_with("0 lost"), "{figure}");
    check_repeated(5, "bad_early_ack.py", &["durable_acks"]);
}

#[test]
fn blocking_wait_on_the_event_loop_is_not_responsive() {
    if !python_available("blocking_wait_on_the_event_loop_is_not_responsive") {
        return;
    }
    let _serial = serial();
    let report = check(4, "bad_blocking_loop.py");
    assert_only_failing(&report, &["responsive"]);
    check_repeated(4, "bad_blocking_loop.py", &["responsive"]);
}
