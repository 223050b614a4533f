//! Whole-request errors as RFC 9457 problem details
//! (`application/problem+json`): `{type, title, status, detail}` plus
//! extension members (`code`, and `results` where per-event results exist).
//!
//! Invariant: every non-2xx answer of the HTTP API that this crate produces
//! is a [`Problem`] (except `/healthz` and `/readyz`, whose 503 bodies are
//! plain status JSON).

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// One problem response.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem: `slug` names its type (`/problems/{slug}`, listed in
    /// docs/http-api.md) and is also the `code` member.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            slug,
            title,
            detail: detail.into(),
            extensions: Map::new(),
            headers: Vec::new(),
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds `Retry-After: secs`.
    pub fn retry_after(self, secs: u64) -> Self {
        self.header(header::RETRY_AFTER, HeaderValue::from(secs))
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// 400 with a slug.
    pub fn bad_request(slug: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, slug, "Bad request", detail)
    }

    /// 503: the engine is not open yet.
    pub fn not_ready() -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "The engine is not ready",
            "the engine is still opening (or recovering); retry shortly",
        )
        .retry_after(1)
    }

    /// 503: the server is shutting down.
    pub fn shutting_down() -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "The server is shutting down",
            "the server is shutting down and admits nothing new",
        )
        .retry_after(1)
    }

    /// Maps an engine error of a whole call.
    pub fn engine(e: &statecraft_engine::EngineError) -> Self {
        use statecraft_engine::EngineError as E;
        match e {
            E::ShuttingDown => Problem::shutting_down(),
            E::Overloaded => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Overloaded",
                e.to_string(),
            )
            .retry_after(1),
            E::Poisoned(_) | E::Store(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "The store failed",
                e.to_string(),
            ),
            _ => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                e.to_string(),
            ),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            Value::from(format!("/problems/{}", self.slug)),
        );
        body.insert("title".into(), Value::from(self.title));
        body.insert("status".into(), Value::from(self.status.as_u16()));
        body.insert("detail".into(), Value::from(self.detail));
        body.insert("code".into(), Value::from(self.slug));
        for (k, v) in self.extensions {
            body.insert(k, v);
        }
        let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
        let mut resp = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            bytes,
        )
            .into_response();
        for (k, v) in self.headers {
            resp.headers_mut().append(k, v);
        }
        resp
    }
}
