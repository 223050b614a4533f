//! A program that hangs, crashes or speaks something else fails with a message
//! that says what the checker waited for, for how long, and what the program
//! last wrote on stderr — and the checker never hangs with it.

#[path = "learners/support.rs"]
mod support;

use std::time::{Duration, Instant};

use statecraft_learn::check::{CheckOptions, CheckReport, ObjectiveRef, run_objectives};
use support::{learners_dir, python_available, serial};

/// Answers `sync` (so it looks alive), then misbehaves as `on_event` says.
fn script(on_event: &str) -> String {
    format!(
        r#"
import json, os, signal, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("cmd") == "sync":
        print(json.dumps({{"synced": True}}), flush=True)
    elif msg.get("cmd") == "get":
        print(json.dumps({{"key": msg["key"], "value": None, "version": 0}}), flush=True)
    else:
{on_event}
"#
    )
}

fn protocol(cmd: Vec<String>) -> CheckReport {
    let mut opts = CheckOptions::new(learners_dir());
    opts.reply_timeout = Duration::from_secs(1);
    let objectives = vec![ObjectiveRef {
        id: "protocol".into(),
        check: "protocol".into(),
    }];
    run_objectives(1, &objectives, &cmd, &opts, &mut |_| {})
}

fn python(code: &str) -> Vec<String> {
    vec!["python3".into(), "-c".into(), code.into()]
}

fn detail(report: &CheckReport) -> String {
    report.objectives[0].detail.clone().unwrap_or_default()
}

#[test]
fn a_hanging_program_names_the_id_it_owes_and_its_stderr() {
    if !python_available("a_hanging_program_names_the_id_it_owes_and_its_stderr") {
        return;
    }
    let _serial = serial();
    let started = Instant::now();
    let report = protocol(python(&script(
        "        print('thinking about ' + msg['id'], file=sys.stderr, flush=True)",
    )));
    let detail = detail(&report);
    assert!(!report.passed);
    assert!(detail.contains("no reply to e1 within 1 s"), "{detail}");
    assert!(detail.contains("thinking about e"), "{detail}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the checker must not hang"
    );
}

#[test]
fn a_silent_program_is_asked_whether_it_flushes() {
    let _serial = serial();
    let report = protocol(vec!["sh".into(), "-c".into(), "cat > /dev/null".into()]);
    let detail = detail(&report);
    assert!(detail.contains("no reply to sync within 1 s"), "{detail}");
    assert!(detail.contains("flush stdout"), "{detail}");
}

#[test]
fn a_crash_reports_the_exit_status_and_the_traceback() {
    if !python_available("a_crash_reports_the_exit_status_and_the_traceback") {
        return;
    }
    let _serial = serial();
    let report = protocol(python(&script(
        "        raise RuntimeError('boom in apply')",
    )));
    let detail = detail(&report);
    assert_eq!(report.objectives[0].figure, "program exited");
    assert!(detail.contains("exited with status 1"), "{detail}");
    assert!(detail.contains("RuntimeError: boom in apply"), "{detail}");
}

#[test]
fn a_signal_death_is_named() {
    if !python_available("a_signal_death_is_named") {
        return;
    }
    let _serial = serial();
    let report = protocol(python(&script(
        "        os.kill(os.getpid(), signal.SIGSEGV)",
    )));
    let detail = detail(&report);
    assert!(detail.contains("killed by signal 11 (SIGSEGV)"), "{detail}");
}

#[test]
fn logs_on_stdout_are_quoted() {
    let _serial = serial();
    let report = protocol(vec![
        "sh".into(),
        "-c".into(),
        "echo 'starting up...'; cat > /dev/null".into(),
    ]);
    let detail = detail(&report);
    assert_eq!(report.objectives[0].figure, "non-JSON on stdout");
    assert!(detail.contains("\"starting up...\""), "{detail}");
    assert!(detail.contains("stderr"), "{detail}");
}

#[test]
fn another_protocol_is_recognised() {
    if !python_available("another_protocol_is_recognised") {
        return;
    }
    let _serial = serial();
    let report = protocol(python(&script(
        "        print(json.dumps({'status': 'ok', 'event': msg['id']}), flush=True)",
    )));
    let detail = detail(&report);
    assert_eq!(report.objectives[0].figure, "unexpected reply");
    assert!(detail.contains("not a pipe-protocol reply"), "{detail}");
}

#[test]
fn a_double_ack_fails_protocol() {
    if !python_available("a_double_ack_fails_protocol") {
        return;
    }
    let _serial = serial();
    let code = r#"
import json, sys
state = {}
for line in sys.stdin:
    msg = json.loads(line)
    cmd = msg.get("cmd")
    if cmd == "sync":
        print(json.dumps({"synced": True}), flush=True)
    elif cmd == "get":
        v = state.get(msg["key"], [None, 0])
        print(json.dumps({"key": msg["key"], "value": v[0], "version": v[1]}), flush=True)
    else:
        v = state.get(msg["key"], [None, 0])
        val = (v[0] or 0) + msg.get("value", 1) if msg["op"] == "incr" else msg["value"]
        state[msg["key"]] = [val, v[1] + 1]
        print(json.dumps({"ack": msg["id"]}), flush=True)
        if msg["id"] == "e7":
            print(json.dumps({"ack": msg["id"]}), flush=True)
"#;
    let report = protocol(python(code));
    let detail = detail(&report);
    assert!(!report.passed);
    assert!(detail.contains("e7 (2×)"), "{detail}");
}
