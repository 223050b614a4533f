//! `statecraft lessons init`'s starter workspaces: what is written, what is
//! refused, and that the Python starter runs out of the box and passes the
//! `protocol` objective (its gaps are where the other objectives fail).

#[path = "learners/support.rs"]
mod support;

use std::time::{Duration, UNIX_EPOCH};

use statecraft_learn::check::{CheckOptions, ObjectiveRef, run_objectives};
use statecraft_learn::workspace::{
    Lang, WorkspaceError, append_check_journal, init, read_config, record_pass,
};
use support::{python_available, serial};

#[test]
fn python_starter_is_complete_and_refuses_a_non_empty_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ws");
    let report = init(&dir, Lang::Python, false).expect("init");
    for file in [
        "main.py",
        "README.md",
        ".statecraft/workspace.toml",
        "lessons/001_basics.md",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    assert!(report.files.iter().any(|f| f.ends_with("main.py")));
    let config = read_config(&dir).expect("read").expect("config present");
    assert_eq!(config.command, vec!["python3", "main.py"]);
    assert_eq!(config.lang, "python");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("readme");
    assert!(readme.contains("statecraft check 1") && readme.contains("statecraft coach 1"));
    assert!(!readme.contains("{{"), "unfilled placeholder in README");

    let again = init(&dir, Lang::Python, false);
    assert!(
        matches!(again, Err(WorkspaceError::NotEmpty { .. })),
        "{again:?}"
    );
    std::fs::write(dir.join("notes.txt"), "mine").expect("write");
    init(&dir, Lang::Python, true).expect("forced init");
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).expect("kept"),
        "mine"
    );
}

#[test]
fn rust_starter_is_its_own_cargo_workspace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init(tmp.path(), Lang::Rust, false).expect("init");
    let manifest = std::fs::read_to_string(tmp.path().join("Cargo.toml")).expect("manifest");
    assert!(manifest.contains("\n[workspace]"), "{manifest}");
    assert!(manifest.contains("tokio"));
    let main = std::fs::read_to_string(tmp.path().join("src/main.rs")).expect("main.rs");
    assert!(main.contains("TODO: YOUR CODE HERE"));
    let config = read_config(tmp.path()).expect("read").expect("config");
    assert_eq!(
        config.build.as_deref().map(|b| b[0].as_str()),
        Some("cargo")
    );
}

#[test]
fn python_starter_passes_protocol_out_of_the_box() {
    if !python_available("python_starter_passes_protocol_out_of_the_box") {
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    init(tmp.path(), Lang::Python, false).expect("init");
    let config = read_config(tmp.path()).expect("read").expect("config");
    let objectives: Vec<ObjectiveRef> = ["protocol", "final_state", "deadline", "batching"]
        .iter()
        .map(|c| ObjectiveRef {
            id: c.to_string(),
            check: c.to_string(),
        })
        .collect();
    let report = run_objectives(
        2,
        &objectives,
        &config.command,
        &CheckOptions::new(tmp.path()),
        &mut |o| eprintln!("{} {}: {} {:?}", o.passed, o.id, o.figure, o.detail),
    );
    let outcome = |id: &str| report.outcome(id).map(|o| o.passed);
    assert_eq!(outcome("protocol"), Some(true));
    // One worker, no routing gap filled: still correct.
    assert_eq!(outcome("final_state"), Some(true));
    // The batching gap: one event per batch, so a trickle is never collected
    // (the starter's README says exactly this).
    assert_eq!(outcome("deadline"), Some(false));
    assert_eq!(outcome("batching"), Some(false));
    // The routing gap: every key on one worker, nothing concurrent.
    let order = [ObjectiveRef {
        id: "per_key_order".into(),
        check: "per_key_order".into(),
    }];
    let report = run_objectives(
        1,
        &order,
        &config.command,
        &CheckOptions::new(tmp.path()),
        &mut |o| eprintln!("{} {}: {} {:?}", o.passed, o.id, o.figure, o.detail),
    );
    assert_eq!(
        report.outcome("per_key_order").map(|o| o.passed),
        Some(false)
    );
}

#[test]
fn progress_merges_and_journal_appends() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t1 = UNIX_EPOCH + Duration::from_secs(1_795_621_567);
    record_pass(tmp.path(), 1, t1).expect("record 1");
    record_pass(tmp.path(), 2, t1 + Duration::from_secs(60)).expect("record 2");
    let text = std::fs::read_to_string(tmp.path().join(".statecraft/progress.json")).expect("read");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["passed"]["1"], "2026-11-25T15:46:07Z");
    assert_eq!(v["passed"]["2"], "2026-11-25T15:47:07Z");

    append_check_journal(tmp.path(), 1, false, &["throughput".to_string()], t1).expect("j1");
    append_check_journal(tmp.path(), 1, true, &[], t1).expect("j2");
    let journal =
        std::fs::read_to_string(tmp.path().join(".statecraft/journal.jsonl")).expect("journal");
    let lines: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).expect("line json"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["kind"], "check");
    assert_eq!(lines[0]["failed"][0], "throughput");
    assert_eq!(lines[1]["passed"], true);
    assert_eq!(lines[1]["time"], 1_795_621_567u64);
}
