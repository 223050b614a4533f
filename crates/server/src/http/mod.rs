//! The HTTP front end (axum), at the exact routes of DESIGN.md §3 (listed in
//! docs/http-api.md): the router, the auth and concurrency-limit layers,
//! health and readiness (stats, metrics and the dashboard are
//! `crate::observe`'s), and the server loop (plain or TLS, through
//! axum-server, with graceful shutdown).
//!
//! Invariants:
//! - Every route but `/healthz` and the dashboard shell `/` (static, no
//!   data: see `crate::observe`) passes the auth layer when a token is set.
//! - At most `max_connections` requests are being handled at once; one more
//!   is answered 503 at once instead of queueing (its permit is released
//!   when the response is produced — SSE streams hold none).
//! - After the stop signal the listener accepts nothing, SSE streams end,
//!   and in-flight requests get `shutdown_grace` to finish.

mod admin;
mod events;
mod state;
mod watch;
mod watch_log;

pub(crate) use watch_log::WatchLog;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use crate::error::ServerError;
use crate::problem::Problem;
use crate::server::{EngineState, Shared};
use crate::shutdown::{Shutdown, TaskGuard};

/// Handler state: the shared server state.
pub(crate) type AppState = Arc<Shared>;

/// The whole HTTP API.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let authed = Router::new()
        .route("/v1/events", post(events::post_events))
        .route("/v1/state", get(state::scan))
        .route(
            "/v1/state/{*key}",
            get(state::get_key).delete(state::delete_key),
        )
        .route("/v1/watch", get(watch::watch))
        .route("/v1/admin/backup", post(admin::backup))
        // `{*key}` needs at least one character: an empty key is its own
        // route, answered 400 as docs/http-api.md says (not 404).
        .route("/v1/state/", get(empty_key).delete(empty_key))
        .route("/readyz", get(readyz))
        .merge(crate::observe::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(Arc::clone(&shared), auth));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(crate::observe::public_routes())
        .merge(authed)
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            crate::observe::count_requests,
        ))
        .with_state(shared)
}

/// Serves `app` on `listener` until the stop signal, then shuts down
/// gracefully (in-flight requests get `grace`). Holds `guard` until done.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    app: Router,
    grace: Duration,
    mut stop: Shutdown,
    guard: TaskGuard,
    fail: mpsc::Sender<ServerError>,
) {
    let handle = axum_server::Handle::new();
    let on_stop = handle.clone();
    tokio::spawn(async move {
        stop.recv().await;
        tracing::info!("http: stop accepting; in-flight requests get {grace:?}");
        on_stop.graceful_shutdown(Some(grace));
    });
    let service = app.into_make_service();
    // Sockets are counted and refused before they are read, idle ones
    // closed; request heads must arrive within header_timeout (issue 16).
    let acceptor = crate::conn::HttpAcceptor {
        shared: Arc::clone(&shared),
    };
    let header_timeout = shared.config.header_timeout;
    let result = match axum_server::from_tcp(listener) {
        Ok(server) => {
            let mut server = server.handle(handle).first_request_timeout(header_timeout);
            server
                .http_builder()
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            match tls {
                Some(tls) => {
                    let tls = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                        .handshake_timeout(header_timeout)
                        .acceptor(acceptor);
                    server.acceptor(tls).serve(service).await
                }
                None => server.acceptor(acceptor).serve(service).await,
            }
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => tracing::info!("http: stopped"),
        Err(source) => {
            tracing::error!(error = %source, "http: the listener failed");
            let _ = fail.try_send(ServerError::Serve {
                what: "http",
                source,
            });
        }
    }
    drop(guard);
}

/// The concurrency limit (outermost layer): one permit per request being
/// handled; none left → 503 at once.
async fn limit(State(shared): State<AppState>, req: Request, next: Next) -> Response {
    shared
        .counters
        .http_requests
        .fetch_add(1, Ordering::Relaxed);
    let Ok(_permit) = Arc::clone(&shared.http_slots).try_acquire_owned() else {
        shared.counters.http_busy.fetch_add(1, Ordering::Relaxed);
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-requests",
            "Too many requests in progress",
            format!(
                "the server handles at most {} requests at once",
                shared.config.max_connections
            ),
        )
        .retry_after(1)
        .into_response();
    };
    next.run(req).await
}

/// Bearer-token check (when a token is configured), constant-time.
async fn auth(State(shared): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(expected) = &shared.config.auth_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .unwrap_or("");
        let ok: bool = given.as_bytes().ct_eq(expected.expose().as_bytes()).into();
        if !ok {
            let detail = if given.is_empty() {
                "this route requires `Authorization: Bearer <token>`"
            } else {
                "the bearer token is not valid"
            };
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                detail,
            )
            .header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"statecraft\""),
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// `GET /healthz`: 200 once the engine is open (no auth).
async fn healthz(State(shared): State<AppState>) -> Response {
    let state = shared.engine.borrow().clone();
    match state {
        EngineState::Ready(_) => {
            (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
        }
        EngineState::Opening => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "starting"})),
        )
            .into_response(),
        EngineState::Failed(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "failed", "detail": &*why})),
        )
            .into_response(),
    }
}

/// `GET /readyz`: 200 when the engine is open, its store takes writes and
/// the server is not stopping; 503 with the status (and the store's failure
/// as `detail` when it is `store_failed`) otherwise.
async fn readyz(State(shared): State<AppState>) -> Response {
    let mut detail = None;
    let status = if shared.stop.is_stopping() {
        "stopping"
    } else {
        match &*shared.engine.borrow() {
            EngineState::Ready(e) if e.poisoned().is_some() => {
                detail = e.poisoned();
                "store_failed"
            }
            EngineState::Ready(e) if !e.is_closing() => "ready",
            EngineState::Ready(_) => "stopping",
            EngineState::Opening => "starting",
            EngineState::Failed(_) => "failed",
        }
    };
    let code = if status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = match detail {
        Some(detail) => json!({ "status": status, "detail": detail }),
        None => json!({ "status": status }),
    };
    (code, axum::Json(body)).into_response()
}

async fn empty_key() -> Problem {
    Problem::bad_request("invalid-key", "the key is empty")
}

async fn not_found(req: Request) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// The engine, or the problem that answers a request when there is none.
pub(crate) fn engine_or_problem(shared: &Shared) -> Result<statecraft_engine::Engine, Problem> {
    if shared.stop.is_stopping() && shared.engine().is_none() {
        return Err(Problem::shutting_down());
    }
    match &*shared.engine.borrow() {
        EngineState::Ready(e) => Ok(e.clone()),
        EngineState::Opening => Err(Problem::not_ready()),
        EngineState::Failed(why) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "engine-failed",
            "The engine failed to start",
            why.to_string(),
        )),
    }
}

/// Parses an `ack` query value.
pub(crate) fn parse_ack(
    raw: Option<&str>,
    default: statecraft_engine::AckMode,
) -> Result<statecraft_engine::AckMode, Problem> {
    match raw {
        None => Ok(default),
        Some(s) => statecraft_engine::AckMode::parse(s).ok_or_else(|| {
            Problem::bad_request(
                "invalid-query",
                format!("ack=`{s}` is not one of durable, applied, none"),
            )
        }),
    }
}
