//! Server-sent events of the two streaming APIs, decoded to text deltas.
//!
//! Bytes arrive in arbitrary pieces; [`SseDecoder`] splits them into lines
//! (a line, or a UTF-8 character, may straddle two pieces), and turns `data:`
//! lines into [`SseEvent`]s per dialect: OpenAI-compatible
//! (`choices[0].delta.content`, ends with `data: [DONE]`) or Anthropic
//! (`content_block_delta` with a `text_delta`, ends with `message_stop`).
//! Invariant: a `data:` payload that is not the JSON the dialect promises is an
//! error, never silently skipped — a garbled stream falls back offline rather
//! than printing half an answer as if it were whole.

use serde_json::Value;

use super::LlmError;
use super::config::Provider;

/// What one SSE line meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// A piece of the answer.
    Text(String),
    /// The stream ended properly.
    Done,
}

/// Splits bytes into lines and decodes them.
#[derive(Debug)]
pub struct SseDecoder {
    provider: Provider,
    buf: Vec<u8>,
    done: bool,
}

impl SseDecoder {
    /// A decoder for `provider`'s dialect.
    pub fn new(provider: Provider) -> SseDecoder {
        SseDecoder {
            provider,
            buf: Vec::new(),
            done: false,
        }
    }

    /// Whether the end-of-stream event was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds bytes; returns the events of every line they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, LlmError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = std::str::from_utf8(&raw)
                .map_err(|_| LlmError::Malformed("a line is not UTF-8".into()))?
                .trim_end_matches(['\n', '\r']);
            if let Some(ev) = self.line(line)? {
                if ev == SseEvent::Done {
                    self.done = true;
                }
                out.push(ev);
            }
        }
        Ok(out)
    }

    /// Ends the stream: a last unterminated line is decoded; a stream that never
    /// signalled its end is malformed (truncated).
    pub fn finish(&mut self) -> Result<Vec<SseEvent>, LlmError> {
        let mut out = Vec::new();
        if !self.buf.is_empty() {
            let raw = std::mem::take(&mut self.buf);
            let line = String::from_utf8(raw)
                .map_err(|_| LlmError::Malformed("a line is not UTF-8".into()))?;
            if let Some(ev) = self.line(line.trim_end_matches('\r'))? {
                if ev == SseEvent::Done {
                    self.done = true;
                }
                out.push(ev);
            }
        }
        if !self.done {
            return Err(LlmError::Malformed(
                "the stream ended before its end marker".into(),
            ));
        }
        Ok(out)
    }

    fn line(&self, line: &str) -> Result<Option<SseEvent>, LlmError> {
        // Blank lines end events; `:` lines are comments; `event:`/`id:`/`retry:` carry
        // nothing we need (the JSON payload names its own type).
        let Some(data) = line.strip_prefix("data:") else {
            return Ok(None);
        };
        let data = data.trim_start();
        if self.done {
            return Ok(None);
        }
        if data == "[DONE]" {
            return Ok(Some(SseEvent::Done));
        }
        let json: Value = serde_json::from_str(data)
            .map_err(|e| LlmError::Malformed(format!("data is not JSON ({e}): {}", short(data))))?;
        if let Some(err) = json.get("error") {
            return Err(LlmError::Malformed(format!(
                "the server reported an error: {}",
                short(&err.to_string())
            )));
        }
        match self.provider {
            Provider::OpenAi => {
                let choices = json
                    .get("choices")
                    .and_then(Value::as_array)
                    .ok_or_else(|| LlmError::Malformed(format!("no `choices`: {}", short(data))))?;
                let text: String = choices
                    .iter()
                    .filter_map(|c| c.pointer("/delta/content").and_then(Value::as_str))
                    .collect();
                Ok((!text.is_empty()).then_some(SseEvent::Text(text)))
            }
            Provider::Anthropic => {
                let ty = json
                    .get("type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| LlmError::Malformed(format!("no `type`: {}", short(data))))?;
                match ty {
                    "content_block_delta" => Ok(json
                        .pointer("/delta/text")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                        .map(|t| SseEvent::Text(t.to_string()))),
                    "message_stop" => Ok(Some(SseEvent::Done)),
                    "error" => Err(LlmError::Malformed(format!(
                        "the server reported an error: {}",
                        short(data)
                    ))),
                    _ => Ok(None),
                }
            }
        }
    }
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_lines_split_anywhere() -> Result<(), LlmError> {
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"Hé\"}}]}\n\n: keep-alive\ndata: {\"choices\":[{\"delta\":{}}]}\n\ndata: [DONE]\n\n";
        let bytes = stream.as_bytes();
        let mut d = SseDecoder::new(Provider::OpenAi);
        let mut events = Vec::new();
        for chunk in bytes.chunks(3) {
            events.extend(d.push(chunk)?);
        }
        events.extend(d.finish()?);
        assert_eq!(events, vec![SseEvent::Text("Hé".into()), SseEvent::Done]);
        Ok(())
    }

    #[test]
    fn anthropic_events() -> Result<(), LlmError> {
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\nevent: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\r\n\r\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let mut d = SseDecoder::new(Provider::Anthropic);
        let mut events = d.push(stream.as_bytes())?;
        events.extend(d.finish()?);
        assert_eq!(events, vec![SseEvent::Text("Hi".into()), SseEvent::Done]);
        Ok(())
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let mut d = SseDecoder::new(Provider::OpenAi);
        assert!(matches!(
            d.push(b"data: {not json\n"),
            Err(LlmError::Malformed(_))
        ));
        let mut d = SseDecoder::new(Provider::OpenAi);
        assert!(d.push(b"data: {\"choices\":[]}\n").is_ok());
        assert!(matches!(d.finish(), Err(LlmError::Malformed(_))));
    }
}
