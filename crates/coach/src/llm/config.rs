//! Where the LLM lives: provider, URL, model, key and time limits.
//!
//! Sources, field by field, first found wins: environment
//! (`STATECRAFT_LLM_URL` — or `STATECRAFT_LLM` —, `STATECRAFT_LLM_MODEL`,
//! `STATECRAFT_LLM_API_KEY`, `STATECRAFT_LLM_PROVIDER`,
//! `STATECRAFT_LLM_TIMEOUT_SECS`, `STATECRAFT_LLM_CONNECT_TIMEOUT_SECS`), then
//! the `[llm]` table of `<workspace>/.statecraft/config.toml`, then that of
//! `~/.config/statecraft/config.toml` (`$XDG_CONFIG_HOME` when set).
//! Invariant: the LLM is configured exactly when a URL is found; everything
//! else has a default or yields [`LlmError::Config`] (which falls back offline).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::LlmError;

/// Default limit on a whole exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default limit on connecting.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on the answer's length, in tokens.
pub const DEFAULT_MAX_TOKENS: u32 = 1500;

/// Which API dialect the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI-compatible `/v1/chat/completions` (Ollama, llama.cpp, vLLM, OpenAI).
    OpenAi,
    /// Anthropic Messages API `/v1/messages`.
    Anthropic,
}

impl Provider {
    fn parse(s: &str) -> Result<Provider, LlmError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openai" | "openai-compatible" | "ollama" | "vllm" | "llamacpp" | "llama.cpp" => {
                Ok(Provider::OpenAi)
            }
            "anthropic" | "claude" => Ok(Provider::Anthropic),
            other => Err(LlmError::Config(format!(
                "unknown provider \"{other}\" (use openai or anthropic)"
            ))),
        }
    }
}

/// A resolved LLM endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// The API dialect.
    pub provider: Provider,
    /// Base URL (`http://localhost:11434`, `https://api.anthropic.com`); a trailing `/v1` is fine.
    pub url: String,
    /// The model name.
    pub model: String,
    /// The API key, if the endpoint needs one.
    pub api_key: Option<String>,
    /// Limit on each whole request, streaming included.
    pub timeout: Duration,
    /// Limit on connecting.
    pub connect_timeout: Duration,
    /// Cap on the answer's length.
    pub max_tokens: u32,
}

impl LlmConfig {
    /// A config for `provider` at `url` with `model` and default limits.
    pub fn new(provider: Provider, url: &str, model: &str) -> LlmConfig {
        LlmConfig {
            provider,
            url: url.to_string(),
            model: model.to_string(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_tokens: DEFAULT_MAX_TOKENS,
        }
    }

    /// The endpoint the request goes to.
    pub fn endpoint(&self) -> String {
        let base = self.url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        match self.provider {
            Provider::OpenAi => format!("{base}/v1/chat/completions"),
            Provider::Anthropic => format!("{base}/v1/messages"),
        }
    }

    /// Resolves from the process environment and the config files.
    /// `Ok(None)`: no LLM configured (the offline coach answers, silently).
    pub fn from_env(workspace: &Path) -> Result<Option<LlmConfig>, LlmError> {
        let home = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|c| c.join("statecraft").join("config.toml"));
        LlmConfig::resolve(&|k| std::env::var(k).ok(), workspace, home.as_deref())
    }

    /// Resolves from `env` (a lookup) and the config files.
    pub fn resolve(
        env: &dyn Fn(&str) -> Option<String>,
        workspace: &Path,
        user_config: Option<&Path>,
    ) -> Result<Option<LlmConfig>, LlmError> {
        let ws = read_table(&workspace.join(".statecraft").join("config.toml"))?;
        let user = match user_config {
            Some(p) => read_table(p)?,
            None => LlmTable::default(),
        };
        let env_get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let pick = |env_keys: &[&str], f: &dyn Fn(&LlmTable) -> Option<String>| {
            env_keys
                .iter()
                .find_map(|k| env_get(k))
                .or_else(|| f(&ws))
                .or_else(|| f(&user))
        };
        let Some(url) = pick(&["STATECRAFT_LLM_URL", "STATECRAFT_LLM"], &|t| {
            t.url.clone()
        }) else {
            return Ok(None);
        };
        let provider = match pick(&["STATECRAFT_LLM_PROVIDER"], &|t| t.provider.clone()) {
            Some(p) => Provider::parse(&p)?,
            None if url.contains("anthropic.com") => Provider::Anthropic,
            None => Provider::OpenAi,
        };
        let model = pick(&["STATECRAFT_LLM_MODEL"], &|t| t.model.clone()).ok_or_else(|| {
            LlmError::Config("no model configured (set STATECRAFT_LLM_MODEL)".into())
        })?;
        let secs = |env_key: &str,
                    f: &dyn Fn(&LlmTable) -> Option<u64>|
         -> Result<Option<u64>, LlmError> {
            match env_get(env_key) {
                Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                    LlmError::Config(format!("{env_key}={v} is not a number of seconds"))
                }),
                None => Ok(f(&ws).or_else(|| f(&user))),
            }
        };
        let timeout = secs("STATECRAFT_LLM_TIMEOUT_SECS", &|t| t.timeout_secs)?
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        let connect_timeout = secs("STATECRAFT_LLM_CONNECT_TIMEOUT_SECS", &|t| {
            t.connect_timeout_secs
        })?
        .map_or(DEFAULT_CONNECT_TIMEOUT, Duration::from_secs);
        let max_tokens = ws
            .max_tokens
            .or(user.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS);
        Ok(Some(LlmConfig {
            provider,
            url,
            model,
            api_key: pick(&["STATECRAFT_LLM_API_KEY"], &|t| t.api_key.clone()),
            timeout,
            connect_timeout,
            max_tokens,
        }))
    }
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    llm: LlmTable,
}

/// The `[llm]` table of a config file.
#[derive(Debug, Default, Clone, Deserialize)]
struct LlmTable {
    url: Option<String>,
    model: Option<String>,
    api_key: Option<String>,
    provider: Option<String>,
    timeout_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
    max_tokens: Option<u32>,
}

fn read_table(path: &Path) -> Result<LlmTable, LlmError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str::<ConfigFile>(&text)
            .map(|c| c.llm)
            .map_err(|e| LlmError::Config(format!("{}: {e}", path.display()))),
        Err(_) => Ok(LlmTable::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_wins_over_files_and_files_fill_the_rest() -> Result<(), Box<dyn std::error::Error>> {
        let ws = tempfile::tempdir()?;
        std::fs::create_dir_all(ws.path().join(".statecraft"))?;
        std::fs::write(
            ws.path().join(".statecraft/config.toml"),
            "[llm]\nurl = \"http://ws\"\nmodel = \"ws-model\"\ntimeout_secs = 5\n",
        )?;
        let user = ws.path().join("user.toml");
        std::fs::write(
            &user,
            "[llm]\nurl = \"http://user\"\napi_key = \"k\"\nprovider = \"anthropic\"\n",
        )?;
        let env = |k: &str| (k == "STATECRAFT_LLM_MODEL").then(|| "env-model".to_string());
        let cfg = LlmConfig::resolve(&env, ws.path(), Some(&user))?.ok_or("configured")?;
        assert_eq!(cfg.url, "http://ws");
        assert_eq!(cfg.model, "env-model");
        assert_eq!(cfg.provider, Provider::Anthropic);
        assert_eq!(cfg.api_key.as_deref(), Some("k"));
        assert_eq!(cfg.timeout, Duration::from_secs(5));
        assert_eq!(cfg.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(cfg.endpoint(), "http://ws/v1/messages");
        Ok(())
    }

    #[test]
    fn no_url_means_not_configured() -> Result<(), Box<dyn std::error::Error>> {
        let ws = tempfile::tempdir()?;
        assert!(LlmConfig::resolve(&|_| None, ws.path(), None)?.is_none());
        let env = |k: &str| (k == "STATECRAFT_LLM_URL").then(|| "http://x/v1/".to_string());
        assert!(matches!(
            LlmConfig::resolve(&env, ws.path(), None),
            Err(LlmError::Config(_))
        ));
        let mut cfg = LlmConfig::new(Provider::OpenAi, "http://x/v1/", "m");
        assert_eq!(cfg.endpoint(), "http://x/v1/chat/completions");
        cfg.provider = Provider::Anthropic;
        assert_eq!(cfg.endpoint(), "http://x/v1/messages");
        Ok(())
    }
}
