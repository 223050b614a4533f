//! Operations as a Redis user expects them, against the real `statecraft`
//! binary: the online backup under load (kill -9 after it, restore, and the
//! restored state is exactly the state at the backup's point), and the
//! operator commands around it.
//!
//! The backup check is proved able to fail: the same checker rejects a real
//! backup taken at an earlier point (it misses writes acked before the
//! checked backup began) and the killed server's own data directory (it
//! holds writes made after the backup's point).

mod serve_ready;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use statecraft_engine::Engine;

/// Events per sequential post of the prefix writer.
const PER_POST: u64 = 16;

struct Serve {
    child: Child,
    http: SocketAddr,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `statecraft serve` on ephemeral ports; returns once it printed
/// `statecraft: ready`.
fn serve(data_dir: Option<&Path>, extra: &[&str]) -> Serve {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_statecraft"));
    cmd.args([
        "serve",
        "--http",
        "127.0.0.1:0",
        "--tcp",
        "127.0.0.1:0",
        "--shards",
        "4",
    ]);
    match data_dir {
        Some(d) => cmd.arg("--data-dir").arg(d),
        None => cmd.arg("--in-memory"),
    };
    cmd.current_dir(std::env::temp_dir());
    let mut child = cmd
        .args(["--log-level", "warn"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("statecraft serve starts");
    let listening = serve_ready::await_ready(&mut child);
    Serve {
        child,
        http: listening.http,
    }
}

fn statecraft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .args(args)
        .env_remove("STATECRAFT_SERVER")
        .stdin(Stdio::null())
        .output()
        .expect("statecraft runs")
}

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        statecraft(&args)
    })
    .await
    .expect("join")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the writers had done around one backup request.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Posts fully acked (durable) before the backup request was sent.
    posts_acked: u64,
    /// Posts started before the backup's answer arrived.
    posts_started: u64,
    /// Counter increments acked before the request.
    incr_acked: u64,
    /// Counter increments started before the answer.
    incr_started: u64,
}

struct Writers {
    posts_acked: Arc<AtomicU64>,
    posts_started: Arc<AtomicU64>,
    incr_acked: Arc<AtomicU64>,
    incr_started: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    /// Two sequential writers (each waits for its durable ack before the
    /// next request): posts of `PER_POST` new keys `w:{post}:{j}` = post, and
    /// single increments of key `c`.
    fn start(http: SocketAddr) -> Writers {
        let w = Writers {
            posts_acked: Arc::default(),
            posts_started: Arc::default(),
            incr_acked: Arc::default(),
            incr_started: Arc::default(),
            stop: Arc::default(),
            tasks: Vec::new(),
        };
        let client = reqwest::Client::new();
        let url = format!("http://{http}/v1/events?ack=durable");
        let (acked, started, stop) = (
            Arc::clone(&w.posts_acked),
            Arc::clone(&w.posts_started),
            Arc::clone(&w.stop),
        );
        let (c, u) = (client.clone(), url.clone());
        let posts = tokio::spawn(async move {
            let mut p = 0u64;
            while !stop.load(Ordering::Acquire) {
                let events: Vec<Value> = (0..PER_POST)
                    .map(|j| json!({"key": format!("w:{p:06}:{j:02}"), "op": "set", "value": p}))
                    .collect();
                started.store(p + 1, Ordering::Release);
                let Ok(resp) = c.post(&u).json(&events).send().await else {
                    return;
                };
                let Ok(body) = resp.json::<Value>().await else {
                    return;
                };
                let all = body["results"].as_array().is_some_and(|r| {
                    r.len() == PER_POST as usize && r.iter().all(|r| r["status"] == "applied")
                });
                assert!(all, "post {p}: {body}");
                acked.store(p + 1, Ordering::Release);
                p += 1;
            }
        });
        let (acked, started, stop) = (
            Arc::clone(&w.incr_acked),
            Arc::clone(&w.incr_started),
            Arc::clone(&w.stop),
        );
        let incrs = tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                started.store(n + 1, Ordering::Release);
                let body = json!({"key": "c", "op": "incr", "value": 1});
                let Ok(resp) = client.post(&url).json(&body).send().await else {
                    return;
                };
                let Ok(body) = resp.json::<Value>().await else {
                    return;
                };
                assert_eq!(body["results"][0]["status"], "applied", "{body}");
                acked.store(n + 1, Ordering::Release);
                n += 1;
            }
        });
        Writers {
            tasks: vec![posts, incrs],
            ..w
        }
    }

    async fn wait_posts(&self, n: u64) {
        while self.posts_acked.load(Ordering::Acquire) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Runs `backup` between two readings of the writers' progress.
    async fn around(&self, backup: impl std::future::Future<Output = ()>) -> Window {
        let posts_acked = self.posts_acked.load(Ordering::Acquire);
        let incr_acked = self.incr_acked.load(Ordering::Acquire);
        backup.await;
        Window {
            posts_acked,
            posts_started: self.posts_started.load(Ordering::Acquire),
            incr_acked,
            incr_started: self.incr_started.load(Ordering::Acquire),
        }
    }
}

/// Every live key and its value in the data directory `dir`.
async fn contents(dir: &Path) -> BTreeMap<String, Value> {
    let engine = Engine::builder()
        .shards(4)
        .data_dir(dir)
        .open()
        .await
        .expect("the directory opens as a data dir");
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = engine.scan("", after.as_deref(), 1000).await.expect("scan");
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        for r in page {
            out.insert(r.key.clone(), r.value.clone());
        }
    }
    engine.shutdown().await.expect("close");
    out
}

/// Checks that `state` is the state at one point inside `w`: every write
/// acked before the backup began is there, nothing started after it ended
/// is, and the posts form a prefix (complete posts, then at most one post
/// caught mid-commit across shards, then nothing). Returns the point: the
/// number of complete posts.
fn at_one_point(state: &BTreeMap<String, Value>, w: Window) -> Result<u64, String> {
    let mut per_post: BTreeMap<u64, u64> = BTreeMap::new();
    for (k, v) in state.range("w:".to_owned()..) {
        let Some(rest) = k.strip_prefix("w:") else {
            break;
        };
        let p: u64 = rest[..6].parse().map_err(|_| format!("bad key {k}"))?;
        if v.as_u64() != Some(p) {
            return Err(format!("{k} = {v}, written as {p}"));
        }
        *per_post.entry(p).or_default() += 1;
    }
    let complete = (0..)
        .take_while(|p| per_post.get(p) == Some(&PER_POST))
        .count() as u64;
    if complete < w.posts_acked {
        return Err(format!(
            "missed acked writes: post {complete} was acked before the backup began ({} posts were) but is {}",
            w.posts_acked,
            if per_post.contains_key(&complete) {
                "partly there"
            } else {
                "absent"
            }
        ));
    }
    if let Some((&p, _)) = per_post.range(complete + 1..).next() {
        return Err(format!(
            "not one point: post {p} is there but post {complete} is not complete"
        ));
    }
    if let Some((&p, _)) = per_post.range(w.posts_started..).next() {
        return Err(format!(
            "holds writes after the backup's point: post {p} started after the backup ended ({} had)",
            w.posts_started
        ));
    }
    let c = state.get("c").and_then(Value::as_u64).unwrap_or(0);
    if c < w.incr_acked || c > w.incr_started {
        return Err(format!(
            "counter {c} outside [{} acked before, {} started before the end]",
            w.incr_acked, w.incr_started
        ));
    }
    Ok(complete)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_backup_under_load_restores_the_state_at_its_point_after_kill_9() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut server = serve(Some(&data), &[]);
    let url = format!("http://{}", server.http);
    let writers = Writers::start(server.http);

    let backup = |dir: std::path::PathBuf| {
        let url = url.clone();
        async move {
            let out = run(vec![
                "backup".into(),
                "--server".into(),
                url,
                dir.display().to_string(),
            ])
            .await;
            assert!(ok(&out).contains("backed up"));
        }
    };
    // An early backup: a real backup at another point, for the adversary.
    writers.wait_posts(20).await;
    let early = tmp.path().join("early");
    let _ = writers.around(backup(early.clone())).await;
    // The backup under test, while both writers go on.
    writers.wait_posts(60).await;
    let point = tmp.path().join("backup");
    let w = writers.around(backup(point.clone())).await;
    assert!(w.posts_acked >= 60);
    // More writes after the backup, then kill -9.
    writers.wait_posts(w.posts_started + 20).await;
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    writers.stop.store(true, Ordering::Release);
    for t in &writers.tasks {
        t.abort();
    }

    let restored = tmp.path().join("restored");
    let out = run(vec![
        "restore".into(),
        point.display().to_string(),
        restored.display().to_string(),
    ])
    .await;
    assert!(ok(&out).contains("restored"));
    let state = contents(&restored).await;
    let m = at_one_point(&state, w).unwrap_or_else(|e| panic!("the restored backup: {e}"));
    eprintln!(
        "backup point: {m} complete posts (acked before: {}, started before the end: {}); counter {:?}",
        w.posts_acked,
        w.posts_started,
        state.get("c")
    );
    // The backup itself is untouched by the restore: restorable again.
    let again = tmp.path().join("again");
    ok(&run(vec![
        "restore".into(),
        point.display().to_string(),
        again.display().to_string(),
    ])
    .await);
    assert_eq!(contents(&again).await, state);
    // Restoring into a non-empty directory is refused.
    let out = run(vec![
        "restore".into(),
        point.display().to_string(),
        restored.display().to_string(),
    ])
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    // Adversary 1: a backup that missed writes (the early one) fails the check.
    let early_restored = tmp.path().join("early-restored");
    ok(&run(vec![
        "restore".into(),
        early.display().to_string(),
        early_restored.display().to_string(),
    ])
    .await);
    let err = at_one_point(&contents(&early_restored).await, w)
        .expect_err("an earlier backup misses acked writes");
    assert!(err.contains("missed acked writes"), "{err}");
    // Adversary 2: a copy at a later point (the killed server's data dir)
    // fails it too.
    let err =
        at_one_point(&contents(&data).await, w).expect_err("the live directory holds later writes");
    assert!(err.contains("after the backup's point"), "{err}");
    // Adversary 3: a forged hole (one key of an acked post removed).
    let mut holed = state.clone();
    holed.remove("w:000003:05");
    assert!(at_one_point(&holed, w).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_backup_refuses_what_it_cannot_do() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // In memory: nothing to back up.
    let mem = serve(None, &[]);
    let out = run(vec![
        "backup".into(),
        "--server".into(),
        format!("http://{}", mem.http),
        tmp.path().join("b").display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no --data-dir"), "{err}");
    drop(mem);

    let server = serve(Some(&tmp.path().join("data")), &[]);
    let url = format!("http://{}", server.http);
    // A relative path over HTTP is refused (the client resolves its own).
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/admin/backup"))
        .json(&json!({"dir": "relative/dir"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.expect("problem");
    assert_eq!(body["type"], "/problems/invalid-backup-dir");
    // A non-empty target is refused (409), and left as it was.
    let full = tmp.path().join("full");
    std::fs::create_dir_all(&full).expect("mkdir");
    std::fs::write(full.join("keep"), b"x").expect("write");
    let out = run(vec![
        "backup".into(),
        "--server".into(),
        url.clone(),
        full.display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(std::fs::read(full.join("keep")).expect("kept"), b"x");
}

/// The repository root (this crate is crates/cli).
fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The JSON "shape" of a value: objects by key, arrays by their first
/// element, scalars by type (numbers, strings, booleans, null).
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

/// One curl example of a doc: the shell command and the answer it shows.
#[derive(Debug)]
struct Example {
    command: String,
    expected: Option<Value>,
}

/// The examples of every ```sh block: a command (with `\` continuations),
/// then `# {json}` lines, if any, for its answer.
fn examples(doc: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in doc.lines() {
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(answer) = line.strip_prefix("# ") {
            if let (Some(last), Ok(v)) = (out.last_mut(), serde_json::from_str::<Value>(answer)) {
                last.expected = Some(v);
            }
            continue;
        }
        pending.push_str(line.trim_end_matches('\\'));
        if line.ends_with('\\') {
            continue;
        }
        if pending.contains("curl") {
            out.push(Example {
                command: std::mem::take(&mut pending),
                expected: None,
            });
        }
        pending.clear();
    }
    out
}

#[test]
fn every_curl_example_of_the_http_doc_answers_as_shown() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "curl is required under CI=true"
        );
        eprintln!("skip: curl not installed");
        return;
    }
    let doc = std::fs::read_to_string(repo().join("docs/http-api.md")).expect("the doc");
    let list = examples(&doc);
    assert!(list.len() >= 5, "found {list:?}");
    let server = serve(None, &[]);
    let addr = server.http.to_string();
    let mut compared = 0;
    for ex in &list {
        // Streams (-N) are cut after a second; every answer is bounded.
        let cmd = ex
            .command
            .replace("localhost:7470", &addr)
            .replace("curl ", "curl --max-time 2 ");
        let out = Command::new("sh")
            .args(["-c", &cmd])
            .output()
            .expect("sh runs");
        let code = out.status.code();
        let streaming = ex.command.contains("curl -N");
        assert!(
            code == Some(0) || (streaming && code == Some(28)),
            "`{cmd}` exited {code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let Some(expected) = &ex.expected else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let got: Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("`{cmd}` answered non-JSON ({e}): {text}"));
        assert_eq!(
            shape(&got),
            shape(expected),
            "`{}` answered {got}, the doc shows {expected}",
            ex.command
        );
        compared += 1;
    }
    assert!(compared >= 3, "compared {compared} answers of {list:?}");
}

#[test]
fn the_dockerfile_uses_a_binary_flags_and_settings_that_exist() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let stages = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage: {stages} FROM lines");
    let user = lines
        .iter()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root") && !user.ends_with(" 0"), "{user}");
    assert!(
        lines.iter().any(|l| l.starts_with("VOLUME ")),
        "a data volume"
    );
    let health = text.find("HEALTHCHECK").expect("a HEALTHCHECK");
    assert!(text[health..].contains("/healthz"));
    // The binary it builds is the one it copies and runs.
    assert!(text.contains("cargo build --release --locked -p statecraft"));
    assert!(text.contains("target/release/statecraft"));
    assert!(text.contains(r#"ENTRYPOINT ["/usr/local/bin/statecraft"]"#));
    assert!(text.contains(r#"CMD ["serve"]"#));
    // Every STATECRAFT_* variable it sets is one `serve` reads, and the
    // values parse: `serve --help` lists the variables; a dry parse with
    // them set must get past argument parsing.
    let help = String::from_utf8_lossy(&statecraft(&["serve", "--help"]).stdout).into_owned();
    let vars: Vec<(String, String)> = text
        .split(|c: char| c.is_whitespace() || c == '\\')
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| k.starts_with("STATECRAFT_"))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(vars.len() >= 4, "{vars:?}");
    for (k, _) in &vars {
        assert!(
            help.contains(k.as_str()),
            "`serve --help` does not read {k}"
        );
    }
    // With the image's settings (addresses and data dir moved to this
    // test's), `statecraft serve` starts.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .arg("serve")
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("STATECRAFT_HTTP", "127.0.0.1:0")
        .env("STATECRAFT_TCP", "127.0.0.1:0")
        .env("STATECRAFT_DATA_DIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l == "statecraft: ready");
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "serve did not start with the image's settings");
}

#[test]
fn the_systemd_unit_runs_a_command_that_exists_and_verifies() {
    let unit = std::fs::read_to_string(repo().join("packaging/statecraft.service")).expect("unit");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/statecraft"));
    let args: Vec<&str> = words.collect();
    assert_eq!(args, ["serve"]);
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "DynamicUser=yes",
        "StateDirectory=statecraft",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.contains(hardening), "missing {hardening}");
    }
    let help = String::from_utf8_lossy(&statecraft(&["serve", "--help"]).stdout).into_owned();
    for var in unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
    {
        assert!(help.contains(var), "`serve --help` does not read {var}");
    }
    // systemd's own check, when it is installed (the binary path is the
    // test's real binary: verify wants ExecStart to exist).
    let verify = Command::new("systemd-analyze").arg("--version").output();
    if verify.is_err() {
        eprintln!("skip: systemd-analyze not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("statecraft.service");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/statecraft",
            env!("CARGO_BIN_EXE_statecraft"),
        ),
    )
    .expect("write");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs");
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn completions_and_the_man_page_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let text = ok(&statecraft(&["completions", shell]));
        for cmd in ["serve", "backup", "restore", "info", "del"] {
            assert!(text.contains(cmd), "{shell} completions lack {cmd}");
        }
    }
    let man = ok(&statecraft(&["man"]));
    assert!(
        man.starts_with(".ie") || man.contains(".TH statecraft"),
        "{}",
        &man[..200.min(man.len())]
    );
    for cmd in ["backup", "restore", "info", "del", "completions"] {
        assert!(man.contains(cmd), "the man page lacks {cmd}");
    }
    // Every help text that cites a doc cites one that exists.
    let mut cited = 0;
    for cmd in ["", "serve", "load", "bench", "backup", "info", "top"] {
        let args: Vec<&str> = cmd.split_whitespace().chain(["--help"]).collect();
        let help = String::from_utf8_lossy(&statecraft(&args).stdout).into_owned();
        for word in help.split(|c: char| c.is_whitespace() || "(),;:'`\"".contains(c)) {
            let word = word.trim_end_matches('.');
            // A document: docs/… or an upper-case name (BENCHMARKS.md);
            // lower-case names are files a command writes (report.md).
            let is_doc = word.starts_with("docs/")
                || word.chars().next().is_some_and(|c| c.is_ascii_uppercase());
            if word.ends_with(".md") && is_doc {
                cited += 1;
                assert!(
                    repo().join(word).exists() || repo().join("docs").join(word).exists(),
                    "`statecraft {cmd} --help` cites {word}, which is not in the repository"
                );
            }
        }
    }
    assert!(cited >= 2, "help texts cite {cited} docs");
    // One way to turn adaptive capacity on: --adaptive; the old spellings
    // still parse but are not offered.
    let help = String::from_utf8_lossy(&statecraft(&["serve", "--help"]).stdout).into_owned();
    assert!(help.contains("--adaptive "), "{help}");
    for old in ["--adaptive-target-us", "--min-capacity", "--max-capacity"] {
        assert!(!help.contains(old), "`serve --help` still offers {old}");
    }
    for flag in ["compact", "json", "pretty"] {
        assert!(help.contains(flag), "--log-format {flag} is not listed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn del_and_multi_get_and_info_and_load_from_the_environment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = serve(Some(&tmp.path().join("data")), &[]);
    let url = format!("http://{}", server.http);
    let client = reqwest::Client::new();
    let events = json!([
        {"key": "a", "op": "set", "value": 1},
        {"key": "b", "op": "set", "value": 2},
        {"key": "c", "op": "set", "value": 3}
    ]);
    let resp = client
        .post(format!("{url}/v1/events"))
        .json(&events)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 200);
    // Multi-get: one line per key, in order; a missing one is null, exit 1.
    let out = run(vec![
        "get".into(),
        "c".into(),
        "a".into(),
        "--server".into(),
        url.clone(),
    ])
    .await;
    let lines: Vec<Value> = ok(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["key"].clone(), lines[0]["value"].clone()),
        (json!("c"), json!(3))
    );
    assert_eq!(
        (lines[1]["key"].clone(), lines[1]["value"].clone()),
        (json!("a"), json!(1))
    );
    // del: deletes, then the multi-get reports the hole.
    let out = run(vec![
        "del".into(),
        "a".into(),
        "b".into(),
        "--server".into(),
        url.clone(),
    ])
    .await;
    assert_eq!(ok(&out).lines().count(), 2);
    let out = run(vec![
        "get".into(),
        "a".into(),
        "c".into(),
        "--server".into(),
        url.clone(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(r#"{"key":"a","value":null}"#), "{text}");
    // A conflicting conditional delete: exit 1, the result on stdout.
    let out = run(vec![
        "del".into(),
        "c".into(),
        "--if-version".into(),
        "7".into(),
        "--server".into(),
        url.clone(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("conflict"));
    // send takes a JSON array as well as NDJSON (as POST /v1/events does).
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let mut child = Command::new(env!("CARGO_BIN_EXE_statecraft"))
                .args(["send", "--server", &url])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("send runs");
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(br#" [{"key":"arr:1","op":"incr","value":1},
                    {"key":"arr:2","op":"incr","value":2}, {"key":"arr:3","op":"set","value":"x"}]"#)
                .expect("write");
            child.wait_with_output().expect("send ends")
        }
    })
    .await
    .expect("join");
    assert!(
        ok(&out).contains("applied 3"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // info: INFO-like sections with the keyspace and memory figures.
    let out = run(vec!["info".into(), "--server".into(), url.clone()]).await;
    let text = ok(&out);
    for needle in [
        "# Keyspace",
        "# Memory",
        "# Persistence",
        "rss_bytes:",
        "cache_keys:",
        "data_dir_bytes:",
    ] {
        assert!(text.contains(needle), "info lacks {needle}:\n{text}");
    }
    assert!(!text.contains("rss_bytes:-"), "{text}");
    // load reads STATECRAFT_SERVER like every client command.
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_statecraft"))
                .args(["load", "--events", "200", "--keys", "10"])
                .env("STATECRAFT_SERVER", url)
                .output()
                .expect("load runs")
        }
    })
    .await
    .expect("join");
    ok(&out);
}

/// Runs `statecraft serve` to its end (it is expected to fail at start):
/// (exit code, stdout, stderr).
fn serve_fails(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .arg("serve")
        .args(args)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn start_failures_happen_before_listening_and_say_what_and_who() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let first = serve(Some(&data), &[]);
    let pid = first.child.id();
    let dir = data.display().to_string();

    // A second server on the same data dir: fails before "listening" and
    // names the directory and the holder.
    let (code, stdout, stderr) = serve_fails(&[
        "--http",
        "127.0.0.1:0",
        "--tcp",
        "127.0.0.1:0",
        "--data-dir",
        &dir,
    ]);
    assert_ne!(code, Some(0));
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(stderr.contains(&dir), "{stderr}");
    assert!(stderr.contains(&format!("pid={pid}")), "{stderr}");

    // A port in use: the OS error once, not twice.
    let other = tmp.path().join("other");
    let (code, _, stderr) = serve_fails(&[
        "--http",
        &first.http.to_string(),
        "--tcp",
        "127.0.0.1:0",
        "--data-dir",
        &other.display().to_string(),
    ]);
    assert_ne!(code, Some(0));
    assert_eq!(stderr.matches("os error 98").count(), 1, "{stderr}");
    drop(first);

    // A data dir that cannot be created is named.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let bad = file.join("data").display().to_string();
    let (code, stdout, stderr) = serve_fails(&["--data-dir", &bad]);
    assert_ne!(code, Some(0));
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(stderr.contains(&bad), "{stderr}");
}

#[test]
fn default_logs_are_one_plain_line_per_entry_without_storage_chatter() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_statecraft"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
            "--shards",
            "2",
        ])
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env_remove("STATECRAFT_LOG_FORMAT")
        .env_remove("STATECRAFT_LOG_LEVEL")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l == "statecraft: ready");
    assert!(ready);
    // SIGTERM: a clean shutdown logs a few more lines, then the pipe closes.
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on the child this test spawned.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().expect("exits");
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = logs.lines().collect();
    assert!(lines.len() >= 3, "{logs}");
    assert!(!logs.contains('\u{1b}'), "ANSI escapes on a pipe:\n{logs}");
    assert!(!logs.contains(".rs:"), "source paths in the logs:\n{logs}");
    assert!(
        !logs.contains("/.cargo/"),
        "dependency paths in the logs:\n{logs}"
    );
    // Compact: every entry is one line that starts with its timestamp and
    // level (no continuation lines).
    for l in &lines {
        let level = l.split_whitespace().nth(1).unwrap_or("");
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "not a one-line entry: {l:?}\n{logs}"
        );
        assert!(
            !(l.contains(" INFO ") && (l.contains("fjall") || l.contains("lsm_tree"))),
            "storage chatter at INFO: {l}"
        );
    }
    assert!(
        logs.contains("listening") && logs.contains("engine ready"),
        "{logs}"
    );
}
