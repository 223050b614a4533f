//! Talking to a running `statecraft serve`: the `--server`/`--token` flags
//! the client commands share, the HTTP client, and errors that say what to
//! do (a refused connection asks whether the server is running there).
//!
//! Invariant: every client command reaches the server through
//! [`ServerOpts::endpoint`] and [`http_client`], so the URL forms accepted
//! and the wording of connection errors are the same everywhere.

use std::time::Duration;

use anyhow::Context as _;

/// Where the server is, as the client commands take it.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerOpts {
    /// The server: http://HOST:PORT (or https://) for the HTTP API,
    /// tcp://HOST:PORT for the TCP ingest protocol (`send` only).
    #[arg(
        long,
        env = "STATECRAFT_SERVER",
        default_value = "http://127.0.0.1:7470",
        value_name = "URL"
    )]
    pub server: String,

    /// Bearer token, when the server was started with --auth-token.
    #[arg(
        long,
        env = "STATECRAFT_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

/// A parsed `--server`/`--target` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The HTTP API at this base URL (no trailing slash).
    Http(String),
    /// The TCP ingest protocol at `HOST:PORT`.
    Tcp(String),
    /// A Redis server at `HOST:PORT` (`load` only).
    Redis(String),
    /// A Statecraft cluster's NATS server(s), `nats://HOST:PORT[,…]`: events
    /// are published to the cluster's stream (`send` only).
    Nats(String),
}

impl Endpoint {
    /// Parses `http://…`, `https://…`, `tcp://HOST:PORT` or `redis://HOST:PORT`.
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let url = url.trim();
        let host_port = |rest: &str, scheme: &str| -> anyhow::Result<String> {
            let rest = rest.trim_end_matches('/');
            anyhow::ensure!(
                rest.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
                "`{url}`: expected {scheme}://HOST:PORT"
            );
            Ok(rest.to_owned())
        };
        if url.starts_with("nats://") {
            Ok(Endpoint::Nats(url.to_owned()))
        } else if let Some(rest) = url.strip_prefix("tcp://") {
            Ok(Endpoint::Tcp(host_port(rest, "tcp")?))
        } else if let Some(rest) = url.strip_prefix("redis://") {
            Ok(Endpoint::Redis(host_port(rest, "redis")?))
        } else if url.starts_with("http://") || url.starts_with("https://") {
            Ok(Endpoint::Http(url.trim_end_matches('/').to_owned()))
        } else {
            anyhow::bail!(
                "`{url}`: expected http://HOST:PORT, https://HOST:PORT, tcp://HOST:PORT, redis://HOST:PORT or nats://HOST:PORT"
            )
        }
    }

    /// The URL as given (normalized).
    pub fn url(&self) -> String {
        match self {
            Endpoint::Http(base) => base.clone(),
            Endpoint::Tcp(a) => format!("tcp://{a}"),
            Endpoint::Redis(a) => format!("redis://{a}"),
            Endpoint::Nats(url) => url.clone(),
        }
    }
}

impl ServerOpts {
    /// The parsed `--server`.
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        Endpoint::parse(&self.server)
    }

    /// The HTTP base URL, refusing `tcp://` for commands that need HTTP.
    pub fn http_base(&self, command: &str) -> anyhow::Result<String> {
        match self.endpoint()? {
            Endpoint::Http(base) => Ok(base),
            other => anyhow::bail!(
                "`statecraft {command}` talks to the HTTP API; --server {} is not an http:// URL",
                other.url()
            ),
        }
    }
}

/// The Tokio runtime of one client command: current-thread, since a client
/// command's requests are few or sequential and a pool of workers would only
/// cost start-up time.
pub fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")
}

/// Refuses a target directory that exists and is not empty (`what` says what
/// was to go into it: "a backup", "a restore"); an absent directory is fine.
pub fn ensure_empty_dir(dir: &std::path::Path, what: &str) -> anyhow::Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        anyhow::ensure!(
            entries.next().is_none(),
            "{} is not empty: {what} goes into an empty or new directory",
            dir.display()
        );
    }
    Ok(())
}

/// An HTTP client for the API: keep-alive, no Nagle, the bearer token on
/// every request when given. `timeout` bounds each whole request (`None`
/// for streams such as `watch`).
pub fn http_client(
    token: Option<&str>,
    timeout: Option<Duration>,
) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the token is not a valid HTTP header value")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let mut builder = reqwest::Client::builder()
        .default_headers(headers)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("statecraft/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder.build().context("building the HTTP client")
}

/// Turns a transport error into one that names the server and what to check.
pub fn http_error(err: reqwest::Error, base: &str) -> anyhow::Error {
    if err.is_connect() {
        anyhow::anyhow!(
            "cannot connect to {base}: is `statecraft serve` running there? ({})",
            root_cause(&err)
        )
    } else if err.is_timeout() {
        anyhow::anyhow!("{base} did not answer in time ({})", root_cause(&err))
    } else {
        anyhow::anyhow!("talking to {base} failed: {}", root_cause(&err))
    }
}

/// Turns a TCP connect error into one that names the server.
pub fn tcp_error(err: &std::io::Error, addr: &str, what: &str) -> anyhow::Error {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => anyhow::anyhow!(
            "cannot connect to tcp://{addr}: connection refused — is {what} running there?"
        ),
        _ => anyhow::anyhow!("cannot connect to tcp://{addr}: {err}"),
    }
}

/// The innermost cause's message (reqwest's top-level text is generic).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Reads an error response: the RFC 9457 problem's `detail` (or `title`),
/// else the body text.
pub async fn problem_text(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("detail")
                .or_else(|| v.get("title"))
                .and_then(|d| d.as_str())
                .map(str::to_owned)
        });
    match detail {
        Some(d) => format!("{status}: {d}"),
        None if body.trim().is_empty() => status.to_string(),
        None => format!("{status}: {}", body.trim()),
    }
}

/// Percent-encodes a key for a URL path segment (keeps `/`, which the
/// server's key route accepts as part of the key).
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:7470/").expect("ok"),
            Endpoint::Http("http://127.0.0.1:7470".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://localhost:7471").expect("ok"),
            Endpoint::Tcp("localhost:7471".into())
        );
        assert_eq!(
            Endpoint::parse("redis://127.0.0.1:6379").expect("ok"),
            Endpoint::Redis("127.0.0.1:6379".into())
        );
        assert!(Endpoint::parse("tcp://nohost").is_err());
        assert!(Endpoint::parse("ftp://x:1").is_err());
    }

    #[test]
    fn keys_are_percent_encoded_but_slashes_kept() {
        assert_eq!(encode_key("user:42/clicks"), "user:42/clicks");
        assert_eq!(encode_key("a b?#%"), "a%20b%3F%23%25");
        assert_eq!(encode_key("é"), "%C3%A9");
    }
}
