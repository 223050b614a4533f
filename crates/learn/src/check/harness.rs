//! The harness: starts the learner's program and speaks the pipe protocol to it.
//!
//! It owns the child process and three threads around it:
//! - a **writer** thread that owns the child's stdin and writes the lines the
//!   checks queue (so a program that stops reading never blocks the checker;
//!   [`Harness::wait_written`] notices instead);
//! - a **stdout reader** that parses every line as JSON, stamps it with the
//!   instant it arrived and hands it over a channel;
//! - a **stderr reader** that keeps the last lines in a bounded ring, quoted in
//!   every error so the learner sees their own traceback.
//!
//! Invariant: every wait is bounded. A reply that does not come, a program that
//! crashes, stops reading or prints something that is not the protocol becomes a
//! [`HarnessError`] naming what was awaited, how long, and the last stderr
//! lines; nothing here blocks forever or panics on the program's output.
//!
//! The child runs in its own process group: `SIGKILL` goes to the whole group
//! (a wrapper such as `sh -c` or `cargo run` dies with its program), `SIGTERM`
//! only to the started process, as a service manager would send it.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Inherited variables removed from the child's environment (besides every
/// `STATECRAFT_*`): they change its I/O behaviour, so a mistake the lesson
/// teaches (stdout not flushed after each reply) would pass in one shell and
/// fail in another.
pub const CLEANED_ENV: &[&str] = &["PYTHONUNBUFFERED"];

/// How many stderr lines the ring keeps.
const STDERR_RING_LINES: usize = 40;
/// How many of them an error message quotes.
const STDERR_QUOTED_LINES: usize = 8;
/// Longest stderr or stdout line quoted, in characters.
const QUOTE_CHARS: usize = 300;

/// What went wrong while driving the learner's program.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The program could not be started at all.
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line, joined with spaces.
        command: String,
        /// Why the operating system refused.
        source: io::Error,
    },
    /// A reply did not come in time.
    #[error("no reply to {what} within {waited}{hint}; last stderr lines:{stderr}")]
    NoReply {
        /// What was awaited (`e17`, `get k3`, `sync`, …).
        what: String,
        /// How long the checker waited, for humans (`5 s`).
        waited: String,
        /// An extra hint (empty or starting with `; `).
        hint: String,
        /// The last stderr lines, formatted.
        stderr: String,
    },
    /// The program exited (or closed stdout) while a reply was awaited.
    #[error(
        "the program {status} while the checker was waiting for {what}; last stderr lines:{stderr}"
    )]
    Exited {
        /// `exited with status 1`, `was killed by signal 11`, `closed stdout`.
        status: String,
        /// What was awaited.
        what: String,
        /// The last stderr lines, formatted.
        stderr: String,
    },
    /// A stdout line is not JSON.
    #[error(
        "stdout line {line_no} is not JSON: {line:?}; the protocol wants exactly one JSON object per line on stdout (print logs to stderr); last stderr lines:{stderr}"
    )]
    NotJson {
        /// 1-based line number on stdout.
        line_no: u64,
        /// The line, quoted (shortened).
        line: String,
        /// The last stderr lines, formatted.
        stderr: String,
    },
    /// A stdout line is JSON but not a protocol reply: the program speaks something else.
    #[error(
        "stdout line {line_no} is JSON but not a pipe-protocol reply: {line}; expected {{\"ack\":ID}}, {{\"nack\":ID,\"reason\":…}}, {{\"key\":…,\"value\":…,\"version\":N}}, {{\"stats\":{{…}}}}, {{\"synced\":true}}, {{\"pong\":true}} or {{\"error\":…}}"
    )]
    UnknownReply {
        /// 1-based line number on stdout.
        line_no: u64,
        /// The line (shortened).
        line: String,
    },
    /// The program stopped reading its stdin.
    #[error(
        "the program stopped reading stdin: {written} of {queued} lines written after {waited}; last stderr lines:{stderr}"
    )]
    NotReading {
        /// Lines the writer got into the pipe.
        written: u64,
        /// Lines the checker had queued.
        queued: u64,
        /// How long the checker waited, for humans.
        waited: String,
        /// The last stderr lines, formatted.
        stderr: String,
    },
    /// The program's stdin broke (it closed it or exited) before the checker was done.
    #[error(
        "writing to the program's stdin failed after {written} lines: {message}; last stderr lines:{stderr}"
    )]
    StdinBroken {
        /// Lines written before the failure.
        written: u64,
        /// The I/O error.
        message: String,
        /// The last stderr lines, formatted.
        stderr: String,
    },
    /// A local I/O error of the checker itself.
    #[error("{doing}: {source}")]
    Io {
        /// What the checker was doing.
        doing: String,
        /// The error.
        source: io::Error,
    },
}

/// How to start the learner's program.
#[derive(Debug, Clone)]
pub struct ProgramSpec {
    /// The command vector; `cmd[0]` relative with a `/` is resolved against `dir`.
    pub cmd: Vec<String>,
    /// The working directory (the learner's workspace).
    pub dir: PathBuf,
    /// `STATECRAFT_*` settings; every inherited `STATECRAFT_*` variable (and those of
    /// [`CLEANED_ENV`]) is removed first.
    pub env: Vec<(String, String)>,
    /// The idle timeout of every wait for a reply.
    pub reply_timeout: Duration,
}

impl ProgramSpec {
    /// Sets (or replaces) one environment setting.
    pub fn set(&mut self, name: &str, value: impl ToString) -> &mut Self {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// A copy with one more setting.
    pub fn with(&self, name: &str, value: impl ToString) -> ProgramSpec {
        let mut spec = self.clone();
        spec.set(name, value);
        spec
    }
}

/// One parsed reply of the program.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `{"ack":ID}` (with `"duplicate":true` for a skipped repeat).
    Ack {
        /// The event id.
        id: String,
        /// The program says it did not apply it again.
        duplicate: bool,
    },
    /// `{"nack":ID,"reason":R}`.
    Nack {
        /// The event id.
        id: String,
        /// The reason (`overloaded`, `not_owner`, `invalid`, …).
        reason: String,
    },
    /// `{"key":K,"value":V,"version":N}`, the answer to `get`.
    Value {
        /// The key.
        key: String,
        /// Its value (`null` when absent).
        value: Value,
        /// Its version (0 when absent).
        version: u64,
    },
    /// `{"stats":{…}}`.
    Stats(Value),
    /// `{"synced":true}`.
    Synced,
    /// `{"pong":true}`.
    Pong,
    /// `{"error":…}` for a line without an id.
    Error(String),
}

impl Reply {
    /// Classifies one JSON line; `None` when it is not a protocol reply.
    pub fn classify(value: &Value) -> Option<Reply> {
        let obj = value.as_object()?;
        if let Some(id) = obj.get("ack") {
            return Some(Reply::Ack {
                id: id_text(id)?,
                duplicate: obj.get("duplicate") == Some(&Value::Bool(true)),
            });
        }
        if let Some(id) = obj.get("nack") {
            let reason = match obj.get("reason") {
                Some(Value::String(r)) => r.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            return Some(Reply::Nack {
                id: id_text(id)?,
                reason,
            });
        }
        if obj.contains_key("synced") {
            return Some(Reply::Synced);
        }
        if obj.contains_key("pong") {
            return Some(Reply::Pong);
        }
        if let Some(stats) = obj.get("stats") {
            return Some(Reply::Stats(stats.clone()));
        }
        if let Some(Value::String(key)) = obj.get("key") {
            return Some(Reply::Value {
                key: key.clone(),
                value: obj.get("value").cloned().unwrap_or(Value::Null),
                version: obj.get("version").and_then(Value::as_u64).unwrap_or(0),
            });
        }
        if let Some(err) = obj.get("error") {
            let text = match err {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return Some(Reply::Error(text));
        }
        None
    }
}

fn id_text(id: &Value) -> Option<String> {
    match id {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What the program answered for one event id.
#[derive(Debug, Clone)]
pub struct EventReply {
    /// `true` for an ack, `false` for a nack (of the first reply).
    pub acked: bool,
    /// The ack said `"duplicate":true`.
    pub duplicate: bool,
    /// The nack's reason.
    pub reason: Option<String>,
    /// When the first reply arrived.
    pub at: Instant,
    /// How many replies this id got (more than 1 is a protocol error).
    pub count: u32,
}

/// Memory of the program's process group, from `/proc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemorySample {
    /// Resident set size now, summed over the group, KiB.
    pub rss_kib: u64,
    /// Peak resident set size (VmHWM), summed over the group, KiB.
    pub hwm_kib: u64,
}

/// One stdout line as the reader thread saw it.
enum StdoutLine {
    Json(Value, String, Instant),
    NotJson(String),
    Eof,
}

/// What one [`Harness::pump`] got.
enum Pumped {
    Line,
    Timeout,
    Eof,
}

/// A running learner program and the protocol state around it.
pub struct Harness {
    child: Child,
    pid: i32,
    spec_label: String,
    reply_timeout: Duration,
    /// Sending end of the writer thread's queue; `None` once stdin is closed.
    /// Dropping it lets the writer finish what is queued and close the pipe (EOF).
    writer: Option<Sender<Vec<u8>>>,
    /// Bytes queued for the writer and not yet written (the writer subtracts).
    unwritten_bytes: Arc<AtomicUsize>,
    /// Lines the writer has written into the pipe.
    lines_written: Arc<AtomicU64>,
    /// Lines queued so far.
    lines_queued: u64,
    /// Capacity of the pipe to the child's stdin, bytes (`F_GETPIPE_SZ`).
    pipe_bytes: usize,
    /// The writer's first error, if any.
    write_error: Arc<Mutex<Option<String>>>,
    /// Receiving end of the stdout reader thread; it ends with `Eof`.
    stdout_rx: Receiver<StdoutLine>,
    stdout_closed: bool,
    stdout_lines: u64,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Replies to events, by id.
    events: HashMap<String, EventReply>,
    /// Replies to commands, in arrival order, not yet taken.
    commands: VecDeque<(Reply, Instant)>,
    /// `{"error":…}` lines seen.
    errors: Vec<String>,
    exit: Option<ExitStatus>,
    group_killed: bool,
}

impl Harness {
    /// Starts the program with `spec`.
    pub fn spawn(spec: &ProgramSpec) -> Result<Harness, HarnessError> {
        let label = spec.cmd.join(" ");
        let Some(program) = spec.cmd.first() else {
            return Err(HarnessError::Spawn {
                command: label,
                source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
            });
        };
        let program_path = PathBuf::from(program);
        let program_path = if program_path.is_relative() && program.contains('/') {
            // Absolute: the child resolves a relative path after changing into `dir`.
            std::path::absolute(spec.dir.join(program_path)).map_err(|source| {
                HarnessError::Spawn {
                    command: label.clone(),
                    source,
                }
            })?
        } else {
            program_path
        };
        let mut command = Command::new(program_path);
        command
            .args(&spec.cmd[1..])
            .current_dir(&spec.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (name, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
            if name.starts_with("STATECRAFT_") || CLEANED_ENV.contains(&name.as_str()) {
                command.env_remove(name);
            }
        }
        for (name, value) in &spec.env {
            command.env(name, value);
        }
        let mut child = command.spawn().map_err(|source| HarnessError::Spawn {
            command: label.clone(),
            source,
        })?;
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        let io_missing = |what: &str| HarnessError::Io {
            doing: format!("taking the child's {what}"),
            source: io::Error::other("not piped"),
        };
        let stdin = child.stdin.take().ok_or_else(|| io_missing("stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| io_missing("stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| io_missing("stderr"))?;
        let pipe_bytes = pipe_capacity(&stdin);

        let unwritten_bytes = Arc::new(AtomicUsize::new(0));
        let lines_written = Arc::new(AtomicU64::new(0));
        let write_error = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        spawn_writer(
            stdin,
            rx,
            Arc::clone(&unwritten_bytes),
            Arc::clone(&lines_written),
            Arc::clone(&write_error),
        );
        let (out_tx, stdout_rx) = mpsc::channel();
        spawn_stdout_reader(stdout, out_tx);
        let ring = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_RING_LINES)));
        spawn_stderr_reader(stderr, Arc::clone(&ring));

        Ok(Harness {
            child,
            pid,
            spec_label: label,
            reply_timeout: spec.reply_timeout,
            writer: Some(tx),
            unwritten_bytes,
            lines_written,
            lines_queued: 0,
            pipe_bytes,
            write_error,
            stdout_rx,
            stdout_closed: false,
            stdout_lines: 0,
            stderr: ring,
            events: HashMap::new(),
            commands: VecDeque::new(),
            errors: Vec::new(),
            exit: None,
            group_killed: false,
        })
    }

    /// The started process's id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The idle timeout of every wait.
    pub fn reply_timeout(&self) -> Duration {
        self.reply_timeout
    }

    /// Queues lines (each without its newline) for the program's stdin.
    pub fn send_lines<I, S>(&mut self, lines: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut buf = Vec::new();
        let mut n = 0u64;
        for line in lines {
            buf.extend_from_slice(line.as_ref().as_bytes());
            buf.push(b'\n');
            n += 1;
        }
        if n == 0 {
            return;
        }
        if let Some(writer) = &self.writer {
            self.unwritten_bytes.fetch_add(buf.len(), Ordering::SeqCst);
            self.lines_queued += n;
            if writer.send(buf).is_err() {
                // The writer thread ended after an error; `write_error` has it and
                // the next wait reports it.
            }
        }
    }

    /// Queues one line.
    pub fn send_line(&mut self, line: &str) {
        self.send_lines([line]);
    }

    /// Bytes queued and not yet written into the pipe.
    pub fn unwritten_bytes(&self) -> usize {
        self.unwritten_bytes.load(Ordering::SeqCst)
    }

    /// Lines queued so far.
    pub fn lines_queued(&self) -> u64 {
        self.lines_queued
    }

    /// Lines the writer has put into the pipe so far (whole write calls only).
    pub fn lines_written(&self) -> u64 {
        self.lines_written.load(Ordering::SeqCst)
    }

    /// Capacity of the pipe to the program's stdin, in bytes: lines written but
    /// not yet read by the program are at most this much.
    pub fn pipe_bytes(&self) -> usize {
        self.pipe_bytes
    }

    /// Closes stdin (after what is queued): the program sees EOF.
    pub fn close_stdin(&mut self) {
        // Dropping the only sender ends the writer's loop once the queue is drained;
        // the writer then drops `ChildStdin`, which closes the pipe.
        self.writer = None;
    }

    /// Waits until every queued line is in the pipe, processing replies meanwhile.
    pub fn wait_written(&mut self) -> Result<(), HarnessError> {
        let started = Instant::now();
        let mut last_progress = Instant::now();
        let mut last_written = self.lines_written.load(Ordering::SeqCst);
        loop {
            self.check_writer()?;
            let written = self.lines_written.load(Ordering::SeqCst);
            if written >= self.lines_queued {
                return Ok(());
            }
            if written != last_written {
                last_written = written;
                last_progress = Instant::now();
            }
            if last_progress.elapsed() > self.reply_timeout {
                return Err(HarnessError::NotReading {
                    written,
                    queued: self.lines_queued,
                    waited: human(started.elapsed()),
                    stderr: self.stderr_tail(),
                });
            }
            // Keep stdout flowing: a program blocked writing replies stops reading.
            match self.pump(Instant::now() + Duration::from_millis(5))? {
                Pumped::Eof => {
                    return Err(self.exited_error(&format!(
                        "stdin to be read (line {} of {})",
                        written + 1,
                        self.lines_queued
                    )));
                }
                Pumped::Line | Pumped::Timeout => {}
            }
        }
    }

    fn check_writer(&self) -> Result<(), HarnessError> {
        let err = self
            .write_error
            .lock()
            .map(|guard| guard.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        match err {
            Some(message) => Err(HarnessError::StdinBroken {
                written: self.lines_written.load(Ordering::SeqCst),
                message,
                stderr: self.stderr_tail(),
            }),
            None => Ok(()),
        }
    }

    /// Receives at most one stdout line, waiting until `until`.
    fn pump(&mut self, until: Instant) -> Result<Pumped, HarnessError> {
        if self.stdout_closed {
            return Ok(Pumped::Eof);
        }
        let wait = until.saturating_duration_since(Instant::now());
        let line = match self.stdout_rx.recv_timeout(wait) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => return Ok(Pumped::Timeout),
            Err(RecvTimeoutError::Disconnected) => StdoutLine::Eof,
        };
        match line {
            StdoutLine::Eof => {
                self.stdout_closed = true;
                Ok(Pumped::Eof)
            }
            StdoutLine::NotJson(line) => {
                self.stdout_lines += 1;
                Err(HarnessError::NotJson {
                    line_no: self.stdout_lines,
                    line: shorten(&line),
                    stderr: self.stderr_tail(),
                })
            }
            StdoutLine::Json(value, raw, at) => {
                self.stdout_lines += 1;
                let Some(reply) = Reply::classify(&value) else {
                    return Err(HarnessError::UnknownReply {
                        line_no: self.stdout_lines,
                        line: shorten(&raw),
                    });
                };
                self.record(reply, at);
                Ok(Pumped::Line)
            }
        }
    }

    fn record(&mut self, reply: Reply, at: Instant) {
        match reply {
            Reply::Ack { id, duplicate } => self.record_event(id, true, duplicate, None, at),
            Reply::Nack { id, reason } => self.record_event(id, false, false, Some(reason), at),
            Reply::Error(text) => self.errors.push(text),
            other => self.commands.push_back((other, at)),
        }
    }

    fn record_event(
        &mut self,
        id: String,
        acked: bool,
        duplicate: bool,
        reason: Option<String>,
        at: Instant,
    ) {
        self.events
            .entry(id)
            .and_modify(|r| r.count += 1)
            .or_insert(EventReply {
                acked,
                duplicate,
                reason,
                at,
                count: 1,
            });
    }

    /// Processes every reply already available, without waiting.
    pub fn drain_ready(&mut self) -> Result<(), HarnessError> {
        while let Pumped::Line = self.pump(Instant::now())? {}
        Ok(())
    }

    /// Processes replies for up to `wait`, returning early at EOF.
    pub fn pump_for(&mut self, wait: Duration) -> Result<(), HarnessError> {
        let until = Instant::now() + wait;
        loop {
            match self.pump(until)? {
                Pumped::Line => {}
                Pumped::Timeout | Pumped::Eof => return Ok(()),
            }
        }
    }

    /// The reply recorded for an event id.
    pub fn event_reply(&self, id: &str) -> Option<&EventReply> {
        self.events.get(id)
    }

    /// Every event reply recorded so far.
    pub fn event_replies(&self) -> &HashMap<String, EventReply> {
        &self.events
    }

    /// The `{"error":…}` lines seen so far.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Waits until every id in `ids` has a reply. Times out when no new reply
    /// arrives for the reply timeout, naming the first id still missing.
    pub fn await_replies(&mut self, ids: &[String]) -> Result<(), HarnessError> {
        self.await_replies_until(ids, None).map(|_| ())
    }

    /// Like [`Harness::await_replies`], but also stops at `deadline`; returns
    /// whether every id has a reply.
    pub fn await_replies_until(
        &mut self,
        ids: &[String],
        deadline: Option<Instant>,
    ) -> Result<bool, HarnessError> {
        let mut next = 0;
        let mut last_progress = Instant::now();
        loop {
            while next < ids.len() && self.events.contains_key(&ids[next]) {
                next += 1;
            }
            if next == ids.len() {
                return Ok(true);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            self.check_writer()?;
            let idle_until = last_progress + self.reply_timeout;
            if now >= idle_until {
                return Err(self.no_reply(&ids[next], self.reply_timeout));
            }
            let until = deadline.map_or(idle_until, |d| d.min(idle_until));
            match self.pump(until)? {
                Pumped::Line => last_progress = Instant::now(),
                Pumped::Timeout => {}
                Pumped::Eof => return Err(self.exited_error(&ids[next])),
            }
        }
    }

    /// Waits for one event's reply for at most `wait`; `None` when none came.
    pub fn await_reply_within(
        &mut self,
        id: &str,
        wait: Duration,
    ) -> Result<Option<EventReply>, HarnessError> {
        let until = Instant::now() + wait;
        loop {
            if let Some(reply) = self.events.get(id) {
                return Ok(Some(reply.clone()));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            match self.pump(until)? {
                Pumped::Line | Pumped::Timeout => {}
                Pumped::Eof => return Err(self.exited_error(id)),
            }
        }
    }

    /// Sends a command and waits for the next command reply.
    pub fn command(
        &mut self,
        command: &Value,
        what: &str,
    ) -> Result<(Reply, Instant), HarnessError> {
        self.send_line(&command.to_string());
        self.next_command_reply(what)
    }

    /// Waits for the next command reply (commands are answered in order).
    pub fn next_command_reply(&mut self, what: &str) -> Result<(Reply, Instant), HarnessError> {
        let mut last_progress = Instant::now();
        loop {
            if let Some(reply) = self.commands.pop_front() {
                return Ok(reply);
            }
            self.check_writer()?;
            let idle_until = last_progress + self.reply_timeout;
            if Instant::now() >= idle_until {
                return Err(self.no_reply(what, self.reply_timeout));
            }
            match self.pump(idle_until)? {
                // Event acks still arriving before a barrier count as progress.
                Pumped::Line => last_progress = Instant::now(),
                Pumped::Timeout => {}
                Pumped::Eof => return Err(self.exited_error(what)),
            }
        }
    }

    /// Takes the oldest command reply already received, without waiting.
    pub fn try_command_reply(&mut self) -> Option<(Reply, Instant)> {
        self.commands.pop_front()
    }

    /// `{"cmd":"sync"}`; fails unless answered `{"synced":true}`.
    pub fn sync(&mut self) -> Result<(), HarnessError> {
        match self.command(&serde_json::json!({"cmd": "sync"}), "sync")? {
            (Reply::Synced, _) => Ok(()),
            (other, _) => Err(self.wrong_reply("sync", &other)),
        }
    }

    /// `{"cmd":"stats"}` → the `stats` object.
    pub fn stats(&mut self) -> Result<Value, HarnessError> {
        match self.command(&serde_json::json!({"cmd": "stats"}), "stats")? {
            (Reply::Stats(stats), _) => Ok(stats),
            (other, _) => Err(self.wrong_reply("stats", &other)),
        }
    }

    /// `{"cmd":"get","key":K}` → (value, version).
    pub fn get(&mut self, key: &str) -> Result<(Value, u64), HarnessError> {
        let what = format!("get {key}");
        match self.command(&serde_json::json!({"cmd": "get", "key": key}), &what)? {
            (
                Reply::Value {
                    key: k,
                    value,
                    version,
                },
                _,
            ) if k == key => Ok((value, version)),
            (other, _) => Err(self.wrong_reply(&what, &other)),
        }
    }

    /// Pipelines one `get` per key and collects the answers by key.
    pub fn get_many(
        &mut self,
        keys: &[String],
    ) -> Result<HashMap<String, (Value, u64)>, HarnessError> {
        self.send_lines(
            keys.iter()
                .map(|k| serde_json::json!({"cmd": "get", "key": k}).to_string()),
        );
        let mut out = HashMap::with_capacity(keys.len());
        for key in keys {
            let what = format!("get {key}");
            match self.next_command_reply(&what)? {
                (
                    Reply::Value {
                        key,
                        value,
                        version,
                    },
                    _,
                ) => {
                    out.insert(key, (value, version));
                }
                (other, _) => return Err(self.wrong_reply(&what, &other)),
            }
        }
        Ok(out)
    }

    fn wrong_reply(&self, what: &str, got: &Reply) -> HarnessError {
        HarnessError::UnknownReply {
            line_no: self.stdout_lines,
            line: format!("{got:?} (in answer to {what})"),
        }
    }

    /// Sends a signal to the started process only.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we spawned; no memory is shared.
        unsafe {
            libc::kill(self.pid, signal);
        }
    }

    /// `SIGKILL` to the whole process group, then reaps the child and drains
    /// what it had written to stdout before it died.
    pub fn kill9(&mut self) -> Result<(), HarnessError> {
        self.kill_group();
        let status = self.child.wait().map_err(|source| HarnessError::Io {
            doing: "waiting for the killed program".into(),
            source,
        })?;
        self.exit = Some(status);
        let until = Instant::now() + Duration::from_secs(2);
        while let Pumped::Line = self.pump(until)? {}
        Ok(())
    }

    fn kill_group(&mut self) {
        if !self.group_killed {
            // SAFETY: kill(2) on the process group we created with process_group(0).
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
            }
            self.group_killed = true;
        }
    }

    /// Waits for the program to exit (draining stdout meanwhile) for at most `wait`.
    /// `None` when it is still running.
    pub fn wait_exit(&mut self, wait: Duration) -> Result<Option<ExitStatus>, HarnessError> {
        let until = Instant::now() + wait;
        loop {
            if let Some(status) = self.try_status()? {
                // Collect the replies it wrote before exiting.
                let drain_until = Instant::now() + Duration::from_secs(2);
                while let Pumped::Line = self.pump(drain_until)? {}
                return Ok(Some(status));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            let step = (Instant::now() + Duration::from_millis(10)).min(until);
            if let Pumped::Eof = self.pump(step)? {
                thread::sleep(Duration::from_millis(5));
            }
        }
    }

    fn try_status(&mut self) -> Result<Option<ExitStatus>, HarnessError> {
        if let Some(status) = self.exit {
            return Ok(Some(status));
        }
        let status = self.child.try_wait().map_err(|source| HarnessError::Io {
            doing: "polling the program's exit status".into(),
            source,
        })?;
        self.exit = status;
        Ok(status)
    }

    /// Memory of the process group now (RSS) and at its peak (VmHWM).
    pub fn memory(&self) -> Option<MemorySample> {
        group_memory(self.pid)
    }

    /// The last stderr lines, formatted for an error message.
    pub fn stderr_tail(&self) -> String {
        format_tail(&self.stderr)
    }

    /// The whole stderr ring (the last lines), joined.
    pub fn stderr_text(&self) -> String {
        let ring = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn no_reply(&self, what: &str, waited: Duration) -> HarnessError {
        let hint = if self.stdout_lines == 0 {
            "; nothing at all on stdout yet: does the program flush stdout after each reply?"
                .to_string()
        } else if let Some(last) = self.errors.last() {
            format!(
                "; the program's last {{\"error\"}} line said: {}",
                shorten(last)
            )
        } else {
            String::new()
        };
        HarnessError::NoReply {
            what: what.to_string(),
            waited: human(waited),
            hint,
            stderr: self.stderr_tail(),
        }
    }

    fn exited_error(&mut self, what: &str) -> HarnessError {
        // Give the process a moment to be reapable after closing stdout.
        let mut status = None;
        for _ in 0..50 {
            if let Ok(Some(s)) = self.try_status() {
                status = Some(s);
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        // Let the stderr reader catch the traceback.
        thread::sleep(Duration::from_millis(30));
        HarnessError::Exited {
            status: status.map_or_else(|| "closed stdout".to_string(), describe_status),
            what: what.to_string(),
            stderr: self.stderr_tail(),
        }
    }

    /// The command line, for messages.
    pub fn label(&self) -> &str {
        &self.spec_label
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // A check that ends early must not leave the program running.
        if self.exit.is_none() && !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

/// `exited with status 1`, `was killed by signal 9 (SIGKILL)`.
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGTERM => " (SIGTERM)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGABRT => " (SIGABRT)",
            libc::SIGPIPE => " (SIGPIPE)",
            libc::SIGINT => " (SIGINT)",
            _ => "",
        };
        format!("was killed by signal {sig}{name}")
    } else {
        "ended".to_string()
    }
}

/// `5 s`, `250 ms`.
pub fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) && d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else if d >= Duration::from_secs(1) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= QUOTE_CHARS {
        text.to_string()
    } else {
        let cut: String = text.chars().take(QUOTE_CHARS).collect();
        format!("{cut}…")
    }
}

fn format_tail(ring: &Mutex<VecDeque<String>>) -> String {
    let ring = ring.lock().unwrap_or_else(|p| p.into_inner());
    if ring.is_empty() {
        return " (none)".to_string();
    }
    let skip = ring.len().saturating_sub(STDERR_QUOTED_LINES);
    ring.iter()
        .skip(skip)
        .map(|l| format!("\n  | {l}"))
        .collect()
}

/// The capacity of the pipe behind `stdin` (`F_GETPIPE_SZ`); 1 MiB, the
/// default maximum a program may raise it to, when the call fails.
fn pipe_capacity(stdin: &ChildStdin) -> usize {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl(2) on a descriptor we own; F_GETPIPE_SZ reads, changes nothing.
    let size = unsafe { libc::fcntl(stdin.as_raw_fd(), libc::F_GETPIPE_SZ) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(1 << 20)
}

fn spawn_writer(
    mut stdin: ChildStdin,
    rx: Receiver<Vec<u8>>,
    unwritten: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
) {
    thread::spawn(move || {
        // Each chunk is already a batch of whole lines: one write per chunk, no
        // extra buffering, so `written` counts lines that really are in the pipe.
        while let Ok(chunk) = rx.recv() {
            let lines = chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            if let Err(e) = stdin.write_all(&chunk) {
                let mut slot = error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| e.to_string());
                return;
            }
            unwritten.fetch_sub(chunk.len(), Ordering::SeqCst);
            written.fetch_add(lines, Ordering::SeqCst);
        }
        // The sender was dropped (close_stdin): dropping `stdin` closes the pipe.
    });
}

fn spawn_stdout_reader(stdout: impl Read + Send + 'static, tx: Sender<StdoutLine>) {
    thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 * 1024, stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(StdoutLine::Eof);
                    return;
                }
                Ok(_) => {
                    let at = Instant::now();
                    let text = String::from_utf8_lossy(&buf);
                    let text = text.trim_end_matches(['\n', '\r']);
                    let msg = match serde_json::from_str::<Value>(text) {
                        Ok(v) => StdoutLine::Json(v, text.to_string(), at),
                        Err(_) => StdoutLine::NotJson(text.to_string()),
                    };
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

fn spawn_stderr_reader(stderr: impl Read + Send + 'static, ring: Arc<Mutex<VecDeque<String>>>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = shorten(line.trim_end_matches(['\n', '\r']));
                    let mut ring = ring.lock().unwrap_or_else(|p| p.into_inner());
                    if ring.len() == STDERR_RING_LINES {
                        ring.pop_front();
                    }
                    ring.push_back(line);
                }
            }
        }
    });
}

/// CPU time used so far by the processes of group `pgid` (user + system,
/// including reaped children), in clock ticks.
pub fn group_cpu_ticks(pgid: i32) -> u64 {
    let mut total = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        // After the command: state(0) ppid(1) pgrp(2) … utime(11) stime(12) cutime(13) cstime(14).
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.get(2).and_then(|f| f.parse::<i32>().ok()) != Some(pgid) {
            continue;
        }
        total += fields
            .iter()
            .skip(11)
            .take(4)
            .filter_map(|f| f.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// CPU time the whole machine has spent busy (not idle, not waiting for I/O), in clock ticks.
pub fn machine_busy_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    total.saturating_sub(idle)
}

/// Sums VmRSS and VmHWM over the processes of group `pgid`.
fn group_memory(pgid: i32) -> Option<MemorySample> {
    let mut total = MemorySample::default();
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let in_group = pid == pgid
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(2)?.parse::<i32>().ok()
                })
                == Some(pgid);
        if !in_group {
            continue;
        }
        if let Some(sample) = process_memory(pid) {
            total.rss_kib += sample.rss_kib;
            total.hwm_kib += sample.hwm_kib;
            found = true;
        }
    }
    found.then_some(total)
}

/// VmRSS and VmHWM of one process, from `/proc/PID/status`.
fn process_memory(pid: i32) -> Option<MemorySample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(MemorySample {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_every_reply_shape() {
        assert_eq!(
            Reply::classify(&json!({"ack": "e1"})),
            Some(Reply::Ack {
                id: "e1".into(),
                duplicate: false
            })
        );
        assert_eq!(
            Reply::classify(&json!({"ack": "e1", "duplicate": true})),
            Some(Reply::Ack {
                id: "e1".into(),
                duplicate: true
            })
        );
        assert_eq!(
            Reply::classify(&json!({"nack": "e2", "reason": "overloaded"})),
            Some(Reply::Nack {
                id: "e2".into(),
                reason: "overloaded".into()
            })
        );
        assert_eq!(
            Reply::classify(&json!({"key": "k", "value": null, "version": 0})),
            Some(Reply::Value {
                key: "k".into(),
                value: Value::Null,
                version: 0
            })
        );
        assert_eq!(
            Reply::classify(&json!({"synced": true})),
            Some(Reply::Synced)
        );
        assert_eq!(Reply::classify(&json!({"pong": true})), Some(Reply::Pong));
        assert_eq!(
            Reply::classify(&json!({"error": "bad"})),
            Some(Reply::Error("bad".into()))
        );
        assert_eq!(Reply::classify(&json!({"status": "ok"})), None);
        assert_eq!(Reply::classify(&json!([1])), None);
    }

    #[test]
    fn reads_own_memory() {
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        let sample = process_memory(pid).expect("own /proc status");
        assert!(sample.rss_kib > 0 && sample.hwm_kib >= sample.rss_kib);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(5)), "5 s");
        assert_eq!(human(Duration::from_millis(250)), "250 ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
    }
}
