//! Lesson 5 checks: what an ack promises. With `STATECRAFT_DATA_DIR` set, an
//! acked event's effect survives `kill -9`, exactly once; state survives a clean
//! restart.
//!
//! The crash scenario: the checker sends a stream of `incr` events, kills the
//! program with `SIGKILL` after a pseudo-random number of acks (three times),
//! restarts it on the same data directory and re-sends every event it has not
//! seen acked, with the same ids, plus a few already-acked ones. A program that
//! applied an event durably but died before acking it sees that id again, so it
//! must remember applied ids across restarts and answer a repeat without
//! applying it again. At the end every event has been acked, so the state must
//! equal every event applied exactly once: a shortfall is a lost acked event, an
//! excess a doubled one.
//!
//! Invariant: the data directory is the checker's (fresh per check, removed
//! afterwards); the kill instants come from the run's seed, so a failure
//! reproduces.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::basics::{compare_state, finish, start};
use super::harness::{Harness, HarnessError, ProgramSpec};
use super::model::{Ev, Model, Rng, ids, mixed_events};
use super::{CheckFailure, Ctx, Measured, Verdict, thousands};

/// A spec with a data directory, whatever lesson runs the check.
pub(crate) fn durable_spec(ctx: &mut Ctx<'_>) -> Result<ProgramSpec, CheckFailure> {
    let mut spec = ctx.spec()?;
    if !spec.env.iter().any(|(k, _)| k == "STATECRAFT_DATA_DIR") {
        let dir = ctx.data_dir()?;
        spec.set("STATECRAFT_DATA_DIR", dir.display());
    }
    Ok(spec)
}

/// Waits until `want` more events of `ids` are acked than at the start, or `wait` passes.
pub(crate) fn wait_for_acks(
    h: &mut Harness,
    ids: &[String],
    want: usize,
    wait: Duration,
) -> Result<(), HarnessError> {
    let until = Instant::now() + wait;
    loop {
        let acked = ids
            .iter()
            .filter(|id| h.event_reply(id).is_some_and(|r| r.acked))
            .count();
        if acked >= want || Instant::now() >= until {
            return Ok(());
        }
        h.pump_for(Duration::from_millis(2))?;
    }
}

/// Lost and doubled effects: `incr` by 1 per event, so the counts are exact.
pub(crate) fn lost_and_doubled(
    expected: &HashMap<String, i64>,
    got: &HashMap<String, (Value, u64)>,
) -> (i64, i64, Vec<String>) {
    let mut lost = 0;
    let mut doubled = 0;
    let mut examples = Vec::new();
    let mut keys: Vec<&String> = expected.keys().collect();
    keys.sort();
    for key in keys {
        let want = expected[key];
        let have = got
            .get(key)
            .and_then(|(v, _)| v.as_f64())
            .map_or(0, |v| v as i64);
        if have < want {
            lost += want - have;
        } else {
            doubled += have - want;
        }
        if have != want && examples.len() < 3 {
            examples.push(format!("{key}: expected {want}, got {have}"));
        }
    }
    (lost, doubled, examples)
}

/// `durable_acks`: 3 kills at pseudo-random instants; 0 lost, 0 doubled.
pub(crate) fn durable_acks(ctx: &mut Ctx<'_>) -> Measured {
    const N: usize = 3000;
    const KEYS: usize = 20;
    const KILLS: usize = 3;
    const RESENT_ACKED: usize = 20;
    let spec = durable_spec(ctx)?;
    let mut rng: Rng = ctx.rng(5);
    let evs: Vec<Ev> = (1..=N)
        .map(|i| Ev::incr(format!("w{i}"), format!("dur{}", i % KEYS), 1))
        .collect();
    let mut acked: HashSet<String> = HashSet::new();
    let mut acked_before_kills = 0;
    for _kill in 0..KILLS {
        let mut h = start(&spec)?;
        let pending: Vec<&Ev> = evs.iter().filter(|e| !acked.contains(&e.id)).collect();
        let pending_ids: Vec<String> = pending.iter().map(|e| e.id.clone()).collect();
        h.send_lines(pending.iter().map(|e| e.line()));
        // Kill after 10–60 % of this round's events are acked (or 3 s).
        let want = pending.len() / 10 + rng.below((pending.len() / 2).max(1) as u64) as usize;
        wait_for_acks(&mut h, &pending_ids, want, Duration::from_secs(3))?;
        h.kill9()?;
        for id in &pending_ids {
            if h.event_reply(id).is_some_and(|r| r.acked) {
                acked.insert(id.clone());
            }
        }
        acked_before_kills = acked.len();
    }
    // Final round: everything not acked, plus a few acked ids again.
    let mut h = start(&spec)?;
    let mut resend: Vec<&Ev> = evs.iter().filter(|e| !acked.contains(&e.id)).collect();
    let already: Vec<&Ev> = evs.iter().filter(|e| acked.contains(&e.id)).collect();
    for _ in 0..RESENT_ACKED.min(already.len()) {
        resend.push(already[rng.below(already.len() as u64) as usize]);
    }
    // A resent id goes out once per round, whatever the sampling picked.
    let mut seen = HashSet::new();
    resend.retain(|e| seen.insert(e.id.clone()));
    h.send_lines(resend.iter().map(|e| e.line()));
    let resend_ids: Vec<String> = resend.iter().map(|e| e.id.clone()).collect();
    h.await_replies(&resend_ids)?;
    let nacked: Vec<&String> = resend_ids
        .iter()
        .filter(|id| h.event_reply(id).is_some_and(|r| !r.acked))
        .collect();
    let mut expected: HashMap<String, i64> = HashMap::new();
    for e in &evs {
        *expected.entry(e.key.clone()).or_default() += 1;
    }
    let keys: Vec<String> = (0..KEYS).map(|k| format!("dur{k}")).collect();
    let got = h.get_many(&keys)?;
    let _ = finish(&mut h)?;
    let (lost, doubled, examples) = lost_and_doubled(&expected, &got);
    let figure = format!(
        "{lost} lost, {doubled} doubled ({KILLS} kills, {} acks before them)",
        thousands(acked_before_kills as u64)
    );
    if !nacked.is_empty() {
        return Ok(Verdict::fail(
            figure,
            format!(
                "re-sent events were nacked ({}, first {}): a repeat of an applied id is acked (\"duplicate\":true) without applying it again",
                nacked.len(),
                nacked[0]
            ),
        ));
    }
    let mut detail = examples.join("; ");
    if lost > 0 {
        detail.push_str(
            "\nlost: an event was acked before its effect was durable (ack only after the write is fsynced)",
        );
    }
    if doubled > 0 {
        detail.push_str(
            "\ndoubled: a re-sent id was applied again (remember applied ids in the same durable write as their effect)",
        );
    }
    Ok(Verdict::judge(lost == 0 && doubled == 0, figure, detail))
}

/// `recovery`: a clean exit and a restart on the same data directory keep state.
pub(crate) fn recovery(ctx: &mut Ctx<'_>) -> Measured {
    let spec = durable_spec(ctx)?;
    let mut h = start(&spec)?;
    let mut rng = ctx.rng(6);
    let evs = mixed_events(&mut rng, "v", 300, 30);
    h.send_lines(evs.iter().map(Ev::line));
    h.await_replies(&ids(&evs))?;
    let mut model = Model::new();
    model.apply_all(&evs);
    if let Err(e) = finish(&mut h)? {
        return Ok(Verdict::fail("bad exit before restart", e));
    }
    drop(h);
    let mut h = start(&spec)?;
    let keys = model.keys();
    let got = h.get_many(&keys)?;
    let _ = finish(&mut h)?;
    let (equal, mismatches) = compare_state(&model, &keys, &got, true);
    Ok(Verdict::judge(
        equal == keys.len(),
        format!("{equal}/{} keys intact after restart", keys.len()),
        format!(
            "state after restart differs (values and versions must survive in STATECRAFT_DATA_DIR): {}",
            mismatches.join("; ")
        ),
    ))
}

/// System calls that make written data durable. A write on a descriptor
/// opened with `O_SYNC`/`O_DSYNC` is durable by itself and counts too.
const SYNC_CALLS: &[&str] = &[
    "fsync(",
    "fdatasync(",
    "sync_file_range(",
    "syncfs(",
    "msync(",
];

/// Whether `strace` can trace a child here; `Err(why)` when it cannot.
fn strace_usable() -> Result<(), String> {
    match std::process::Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .stdin(std::process::Stdio::null())
        .output()
    {
        Err(e) => Err(format!(
            "strace could not be run ({e}): install it (apt-get install strace) so the checker can see the program's fsync calls"
        )),
        Ok(out) if !out.status.success() => Err(format!(
            "this machine does not allow tracing a child process (strace: {}); a container may need --cap-add SYS_PTRACE",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => Ok(()),
    }
}

/// What the trace of the fsync run showed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SyncTrace {
    /// Acks written to stdout.
    pub acks: usize,
    /// Acks with no sync call (and no synchronous write) since the previous ack.
    pub unsynced: usize,
    /// Sync calls seen in all.
    pub syncs: usize,
}

/// Reads an `strace -f` log: for each write to stdout that carries an ack,
/// whether a sync call (or a write on an `O_SYNC`/`O_DSYNC` descriptor) came
/// since the previous ack.
pub(crate) fn read_sync_trace(trace: &str) -> SyncTrace {
    let mut out = SyncTrace::default();
    let mut synced_since_ack = false;
    // Descriptors opened with O_SYNC/O_DSYNC, by "pid fd" (descriptors are per process).
    let mut sync_fds: HashSet<(String, String)> = HashSet::new();
    for line in trace.lines() {
        let (pid, call) = match line.split_once(' ') {
            Some((p, rest)) if p.chars().all(|c| c.is_ascii_digit()) => (p, rest.trim_start()),
            _ => ("", line),
        };
        if call.starts_with("<...") {
            continue; // the end of a call already counted at its start
        }
        if SYNC_CALLS.iter().any(|s| call.starts_with(s)) {
            out.syncs += 1;
            synced_since_ack = true;
            continue;
        }
        if (call.starts_with("openat(") || call.starts_with("open("))
            && (call.contains("O_DSYNC") || call.contains("O_SYNC"))
        {
            if let Some(fd) = call.rsplit("= ").next() {
                sync_fds.insert((pid.to_string(), fd.trim().to_string()));
            }
            continue;
        }
        let Some(args) = ["write(", "writev(", "pwrite64(", "pwritev(", "pwritev2("]
            .iter()
            .find_map(|w| call.strip_prefix(w))
        else {
            continue;
        };
        let fd = args.split(',').next().unwrap_or("").trim();
        if fd == "1" {
            if args.contains("ack") {
                let n = args.matches("\\\"ack\\\"").count().max(1);
                out.acks += n;
                if !synced_since_ack {
                    out.unsynced += n;
                }
                synced_since_ack = false;
            }
        } else if sync_fds.contains(&(pid.to_string(), fd.to_string())) {
            out.syncs += 1;
            synced_since_ack = true;
        }
    }
    out
}

/// `fsync_before_ack`: the program runs under `strace -f`; 20 lone events, each
/// awaited before the next, then EOF. Every ack must follow a sync call
/// (`fsync`, `fdatasync`, …) made since the previous ack: `kill -9` cannot show
/// a missing fsync (the page cache survives a process crash), a power cut
/// would. A count of system calls, independent of the machine's speed. Where
/// the machine cannot trace, the objective is "not graded", never passed.
pub(crate) fn fsync_before_ack(ctx: &mut Ctx<'_>) -> Measured {
    const N: usize = 20;
    if let Err(why) = strace_usable() {
        return Ok(Verdict::fail("not graded", why));
    }
    let mut spec = durable_spec(ctx)?;
    let trace_dir = ctx.data_dir()?;
    let trace_path = trace_dir.join("strace.log");
    let mut cmd = vec![
        "strace".to_string(),
        "-f".to_string(),
        "-qq".to_string(),
        "-s".to_string(),
        "48".to_string(),
        "-e".to_string(),
        "trace=write,writev,pwrite64,pwritev,pwritev2,fsync,fdatasync,sync_file_range,syncfs,msync,open,openat".to_string(),
        "-o".to_string(),
        trace_path.display().to_string(),
        "--".to_string(),
    ];
    cmd.extend(spec.cmd.iter().cloned());
    spec.cmd = cmd;
    let mut h = start(&spec)?;
    for i in 1..=N {
        let ev = Ev::incr(format!("f{i}"), format!("fsync{}", i % 4), 1);
        h.send_line(&ev.line());
        h.await_replies(std::slice::from_ref(&ev.id))?;
    }
    let exit = finish(&mut h)?;
    let trace = std::fs::read_to_string(&trace_path).map_err(|source| {
        CheckFailure::Harness(HarnessError::Io {
            doing: format!("reading the trace {}", trace_path.display()),
            source,
        })
    })?;
    let t = read_sync_trace(&trace);
    if t.acks == 0 {
        return Ok(Verdict::fail(
            "not graded",
            format!(
                "the trace shows no ack written to stdout ({} lines traced){}: the checker cannot tell when acks left",
                trace.lines().count(),
                exit.err().map(|e| format!("; {e}")).unwrap_or_default()
            ),
        ));
    }
    Ok(Verdict::judge(
        t.unsynced == 0,
        format!(
            "{}/{} acks after a sync call since the previous ack ({} sync calls)",
            t.acks - t.unsynced,
            t.acks,
            t.syncs
        ),
        format!(
            "what an ack promises: {} of {} acks left with no fsync/fdatasync since the previous ack: the log was written but not forced to disk, so a power cut (not kill -9: the page cache survives a process crash) loses acked events; write, fsync, then ack",
            t.unsynced, t.acks
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_needs_a_sync_since_the_previous_one() {
        let trace = r#"100 openat(AT_FDCWD, "/d/events.log", O_WRONLY|O_CREAT|O_APPEND, 0644) = 3
100 write(3, "{\"i\": \"f1\"}\n", 12) = 12
100 fsync(3)                          = 0
100 write(1, "{\"ack\": \"f1\"}\n", 14) = 14
100 write(3, "{\"i\": \"f2\"}\n", 12) = 12
100 write(1, "{\"ack\": \"f2\"}\n", 14) = 14
101 fdatasync(3 <unfinished ...>
101 <... fdatasync resumed>)           = 0
100 write(1, "{\"ack\": \"f3\"}\n{\"ack\": \"f4\"}\n", 28) = 28
"#;
        let t = read_sync_trace(trace);
        assert_eq!(
            t,
            SyncTrace {
                acks: 4,
                unsynced: 1,
                syncs: 2
            }
        );
    }

    #[test]
    fn writes_on_a_dsync_descriptor_are_syncs() {
        let trace = r#"7 openat(AT_FDCWD, "/d/wal", O_WRONLY|O_CREAT|O_DSYNC, 0644) = 5
7 write(5, "x", 1) = 1
7 write(1, "{\"ack\":\"e1\"}\n", 13) = 13
"#;
        assert_eq!(read_sync_trace(trace).unsynced, 0);
    }
}
