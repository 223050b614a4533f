//! One LLM exchange: send, stream to the writer through the guard, revise once.
//!
//! Code blocks are judged by [`crate::judge`] (new code outside gaps, a filled
//! lesson pattern, a long gap-free block that is not the learner's own); the
//! whole answer's six-part structure is judged when the stream ends — a miss
//! asks the model once for the whole answer again, and a second miss falls
//! back to the offline answer ([`LlmError::Unstructured`]).
//!
//! Invariants: every byte of the answer that passes the guard is written and
//! flushed as soon as it arrives (prose per delta, code per closed block); a
//! solution block is never written (see [`super::guard`]); the revision round
//! happens at most once per answer; any failure before the answer completes is
//! an [`LlmError`] (the caller falls back offline), while a failure of the
//! revision round only means the lesson's pattern replaces the held blocks.

use std::io::Write;
use std::net::IpAddr;

use futures::StreamExt;
use serde_json::{Value, json};

use super::LlmError;
use super::config::{LlmConfig, Provider};
use super::guard::{CodeGate, HELD_PLACEHOLDER, MAX_LINES, Piece};
use super::prompt::Prompt;
use super::sse::{SseDecoder, SseEvent};
use crate::answer::code_blocks;
use crate::judge::{self, CodeContext};
use crate::material::Lang;
use crate::render::{StreamRenderer, Style};

/// What the LLM coach answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmAnswer {
    /// The final answer text, held blocks replaced in place by what was shown for them.
    pub text: String,
    /// Blocks held back by the guard.
    pub held: usize,
    /// Held blocks replaced by the model's revision.
    pub revised: usize,
    /// Held blocks replaced by the lesson's partial pattern.
    pub replaced_by_pattern: usize,
}

/// Asks the model, streaming the guarded answer to `out` in `style`.
pub async fn stream_answer(
    cfg: &LlmConfig,
    prompt: &Prompt,
    style: Style,
    out: &mut (dyn Write + Send),
) -> Result<LlmAnswer, LlmError> {
    let client = http_client(cfg)?;
    let messages = vec![("user", prompt.user.clone())];
    let mut printer = Printer {
        out,
        renderer: StreamRenderer::new(style),
        gate: CodeGate::new(),
        text: String::new(),
        held: Vec::new(),
        code: &prompt.code,
    };
    let mut stream = send(&client, cfg, prompt, &messages).await?;
    let mut decoder = SseDecoder::new(cfg.provider);
    while let Some(chunk) = stream.next().await {
        let bytes = chunk.map_err(|e| transport_error(cfg, &e))?;
        for event in decoder.push(&bytes)? {
            printer.event(event)?;
        }
    }
    for event in decoder.finish()? {
        printer.event(event)?;
    }
    printer.finish()?;
    let Printer {
        out, text, held, ..
    } = printer;

    let mut answer = LlmAnswer {
        text: String::new(),
        held: held.len(),
        revised: 0,
        replaced_by_pattern: 0,
    };
    // The structure is judged like the code: one revision, then offline.
    let missing = structure_misses(prompt, &text.replace('\u{0}', ""));
    if !missing.is_empty() {
        return revise_whole(
            &client,
            cfg,
            prompt,
            &text,
            &missing,
            held.len(),
            style,
            out,
        )
        .await;
    }
    if held.is_empty() {
        answer.text = text;
        return Ok(answer);
    }

    // The one revision round.
    let first_text = text.clone();
    let revision = revise(&client, cfg, prompt, &first_text, held.len()).await;
    let revised_blocks = match &revision {
        Ok(t) => code_blocks(t),
        Err(_) => Vec::new(),
    };
    let mut shown = String::from("\n**Revised code, with gaps for you to fill:**\n\n");
    let mut replacements = Vec::new();
    for i in 0..held.len() {
        let candidate = revised_blocks
            .get(i)
            .filter(|b| judge::judge_block(b, &prompt.code).is_ok());
        let block = match candidate {
            Some(b) => {
                answer.revised += 1;
                format!(
                    "```{}\n{}\n```\n",
                    fence_info(&b.info, prompt.lang),
                    b.lines.join("\n")
                )
            }
            None => {
                answer.replaced_by_pattern += 1;
                let pattern = if prompt
                    .fallback_pattern
                    .contains(crate::material::GAP_MARKER)
                {
                    prompt.fallback_pattern.clone()
                } else {
                    gap_comment(prompt.lang)
                };
                format!(
                    "(The lesson's partial pattern instead of the coach's code.)\n\n```{}\n{}\n```\n",
                    prompt.lang.fence(),
                    pattern.trim_end()
                )
            }
        };
        shown.push_str(&block);
        replacements.push(block);
    }
    if let Err(e) = &revision {
        shown.push_str(&format!("\n(The revision request failed: {e}.)\n"));
    }
    let mut r = StreamRenderer::new(style);
    write_now(out, &r.push(&shown))?;
    write_now(out, &r.finish())?;

    let mut final_text = first_text;
    for (i, block) in replacements.iter().enumerate() {
        final_text = final_text.replace(&format!("\u{0}HELD{i}\u{0}\n"), block);
    }
    answer.text = final_text;
    Ok(answer)
}

/// Writes guarded pieces as they come, keeping the answer's text.
struct Printer<'o> {
    out: &'o mut (dyn Write + Send),
    renderer: StreamRenderer,
    gate: CodeGate,
    /// The answer as kept: a held block is a `\0HELD<i>\0` line until replaced.
    text: String,
    /// The raw text of each held block.
    held: Vec<String>,
    /// What blocks are judged against.
    code: &'o CodeContext,
}

impl Printer<'_> {
    fn event(&mut self, event: SseEvent) -> Result<(), LlmError> {
        if let SseEvent::Text(t) = event {
            let pieces = self.gate.push(&t);
            self.pieces(pieces)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), LlmError> {
        let rest = self.gate.finish();
        self.pieces(rest)?;
        let tail = self.renderer.finish();
        write_now(self.out, &tail)
    }

    fn pieces(&mut self, pieces: Vec<Piece>) -> Result<(), LlmError> {
        for piece in pieces {
            let shown = match piece {
                Piece::Prose(p) => {
                    self.text.push_str(&p);
                    p
                }
                Piece::Block { raw, block } if judge::judge_block(&block, self.code).is_err() => {
                    self.text
                        .push_str(&format!("\u{0}HELD{}\u{0}\n", self.held.len()));
                    self.held.push(raw);
                    format!("{HELD_PLACEHOLDER}\n")
                }
                Piece::Block { raw, .. } => {
                    self.text.push_str(&raw);
                    raw
                }
            };
            let rendered = self.renderer.push(&shown);
            write_now(self.out, &rendered)?;
        }
        Ok(())
    }
}

fn fence_info(info: &str, lang: Lang) -> String {
    if info.is_empty() {
        lang.fence().to_string()
    } else {
        info.to_string()
    }
}

fn gap_comment(lang: Lang) -> String {
    match lang {
        Lang::Python => "# TODO: YOUR CODE HERE".into(),
        Lang::Rust => "// TODO: YOUR CODE HERE".into(),
    }
}

/// The whole-answer revision: the first answer missed parts of the six-part
/// structure (`missing`). Asks once for the whole answer again; prints it if
/// it has every part and every block passes the judge, else fails with
/// [`LlmError::Unstructured`] (the caller falls back to the offline answer).
#[allow(clippy::too_many_arguments)]
async fn revise_whole(
    client: &reqwest::Client,
    cfg: &LlmConfig,
    prompt: &Prompt,
    first: &str,
    missing: &[&str],
    held: usize,
    style: Style,
    out: &mut (dyn Write + Send),
) -> Result<LlmAnswer, LlmError> {
    let note = format!(
        "Your answer misses these parts of the required structure: {}. Rewrite the whole \
         answer in the six parts, each under its own `##` heading (What you have right, The gap, \
         Questions to ask yourself — at least two questions —, Hint, A pattern to complete, Next \
         steps), in {}. Every code block must leave the key lines as `TODO: YOUR CODE HERE` gaps.",
        missing.join(", "),
        prompt.lang.fence()
    );
    let messages = vec![
        ("user", prompt.user.clone()),
        ("assistant", first.replace('\u{0}', "")),
        ("user", note),
    ];
    let text = collect(client, cfg, prompt, &messages).await?;
    let still = structure_misses(prompt, &text);
    let bad_block = code_blocks(&text)
        .iter()
        .any(|b| judge::judge_block(b, &prompt.code).is_err());
    if !still.is_empty() || bad_block {
        let mut why: Vec<String> = Vec::new();
        if !still.is_empty() {
            why.push(format!("missing: {}", still.join(", ")));
        }
        if bad_block {
            why.push("a code block that gives the solution".into());
        }
        return Err(LlmError::Unstructured(why.join(", ")));
    }
    let mut r = StreamRenderer::new(style);
    write_now(
        out,
        &r.push(&format!(
            "\n**Revised answer, in the coach's six parts:**\n\n{}\n",
            text.trim_end()
        )),
    )?;
    write_now(out, &r.finish())?;
    Ok(LlmAnswer {
        text,
        held,
        revised: held,
        replaced_by_pattern: 0,
    })
}

/// The parts an answer misses: the six parts of a guide answer, or the
/// discovery answer's own (what was discovered, questions, what comes next).
fn structure_misses(prompt: &Prompt, text: &str) -> Vec<&'static str> {
    if prompt.six_parts {
        judge::structure(text)
    } else if judge::discovery_structure(text) {
        Vec::new()
    } else {
        vec!["the discovery parts"]
    }
}

/// Sends a request and collects its whole reply (not streamed).
async fn collect(
    client: &reqwest::Client,
    cfg: &LlmConfig,
    prompt: &Prompt,
    messages: &[(&str, String)],
) -> Result<String, LlmError> {
    let mut stream = send(client, cfg, prompt, messages).await?;
    let mut decoder = SseDecoder::new(cfg.provider);
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        let bytes = chunk.map_err(|e| transport_error(cfg, &e))?;
        for ev in decoder.push(&bytes)? {
            if let SseEvent::Text(t) = ev {
                text.push_str(&t);
            }
        }
    }
    for ev in decoder.finish()? {
        if let SseEvent::Text(t) = ev {
            text.push_str(&t);
        }
    }
    Ok(text)
}

/// Sends the revision request and collects its whole reply (not streamed to the learner).
async fn revise(
    client: &reqwest::Client,
    cfg: &LlmConfig,
    prompt: &Prompt,
    first_answer: &str,
    held: usize,
) -> Result<String, LlmError> {
    let shown_answer = first_answer.replace('\u{0}', "");
    let note = format!(
        "Your answer contains {held} code block(s) the learner must not be given: complete code \
         (more than {MAX_LINES} lines of new code outside `TODO: YOUR CODE HERE` gaps, or the \
         lesson's pattern with its gaps filled in). \
         Rewrite only those block(s), in the same order, as partial patterns in {}: keep the \
         structure, and replace the key lines with `TODO: YOUR CODE HERE` comments. Reply with \
         the code block(s) only.",
        prompt.lang.fence()
    );
    let messages = vec![
        ("user", prompt.user.clone()),
        ("assistant", shown_answer),
        ("user", note),
    ];
    let mut stream = send(client, cfg, prompt, &messages).await?;
    let mut decoder = SseDecoder::new(cfg.provider);
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        let bytes = chunk.map_err(|e| transport_error(cfg, &e))?;
        for ev in decoder.push(&bytes)? {
            if let SseEvent::Text(t) = ev {
                text.push_str(&t);
            }
        }
    }
    for ev in decoder.finish()? {
        if let SseEvent::Text(t) = ev {
            text.push_str(&t);
        }
    }
    Ok(text)
}

fn write_now(out: &mut (dyn Write + Send), s: &str) -> Result<(), LlmError> {
    if !s.is_empty() {
        out.write_all(s.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

fn http_client(cfg: &LlmConfig) -> Result<reqwest::Client, LlmError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.timeout);
    if is_loopback(&cfg.url) {
        // A local model (Ollama, llama.cpp, a test's mock) is never behind a proxy.
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| LlmError::Config(format!("HTTP client: {e}")))
}

fn is_loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        })
}

fn transport_error(cfg: &LlmConfig, e: &reqwest::Error) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout {
            secs: cfg.timeout.as_secs().max(1),
        }
    } else if e.is_connect() {
        LlmError::Connect {
            url: cfg.endpoint(),
            message: root_cause(e),
        }
    } else {
        LlmError::Malformed(format!("the connection broke: {}", root_cause(e)))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Sends one streaming request; returns the body's byte stream on a 2xx.
async fn send(
    client: &reqwest::Client,
    cfg: &LlmConfig,
    prompt: &Prompt,
    messages: &[(&str, String)],
) -> Result<impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + use<>, LlmError> {
    let url = cfg.endpoint();
    let body = request_body(cfg, prompt, messages);
    let mut req = client.post(&url).json(&body);
    match cfg.provider {
        Provider::OpenAi => {
            if let Some(key) = &cfg.api_key {
                req = req.bearer_auth(key);
            }
        }
        Provider::Anthropic => {
            req = req.header("anthropic-version", "2023-06-01");
            if let Some(key) = &cfg.api_key {
                req = req.header("x-api-key", key);
            }
        }
    }
    let resp = req.send().await.map_err(|e| transport_error(cfg, &e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(LlmError::Status {
            status: status.as_u16(),
            url,
        });
    }
    Ok(resp.bytes_stream())
}

/// The JSON body for `cfg.provider`.
pub fn request_body(cfg: &LlmConfig, prompt: &Prompt, messages: &[(&str, String)]) -> Value {
    let msgs: Vec<Value> = messages
        .iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    match cfg.provider {
        Provider::OpenAi => {
            let mut all = vec![json!({"role": "system", "content": prompt.system})];
            all.extend(msgs);
            json!({
                "model": cfg.model,
                "stream": true,
                "max_tokens": cfg.max_tokens,
                "messages": all,
            })
        }
        Provider::Anthropic => json!({
            "model": cfg.model,
            "stream": true,
            "max_tokens": cfg.max_tokens,
            "system": prompt.system,
            "messages": msgs,
        }),
    }
}
