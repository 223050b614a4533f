//! Starting and stopping the whole server: binds both listeners, opens the
//! engine in the background, runs the HTTP and TCP front ends, and shuts
//! everything down in the documented order ([`crate::shutdown`]).
//!
//! Invariants:
//! - The listeners are bound before [`Server::start`] returns, and they
//!   answer before the engine is open: `/healthz` says 503 until it is, and a
//!   TCP HELLO waits for it.
//! - [`RunningServer::shutdown`] calls `engine.shutdown()` only after every
//!   front-end task has finished, so every request admitted before the stop
//!   is answered, and nothing is admitted after the engine began draining.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;
use statecraft_engine::Engine;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::ServeConfig;
use crate::error::ServerError;
use crate::shutdown::{Shutdown, ShutdownCoordinator};

/// Where the engine is in its life.
#[derive(Debug, Clone)]
pub(crate) enum EngineState {
    /// Being opened (or recovered).
    Opening,
    /// Open; a clone shares the engine.
    Ready(Engine),
    /// Opening failed; the message says why.
    Failed(Arc<str>),
}

/// Counters of the front ends, for `/v1/stats` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct ServerCounters {
    /// HTTP requests received (any route).
    pub http_requests: AtomicU64,
    /// HTTP requests refused by the concurrency limit.
    pub http_busy: AtomicU64,
    /// TCP connections accepted (including refused ones).
    pub tcp_connections: AtomicU64,
    /// TCP connections open now.
    pub tcp_open: AtomicU64,
    /// TCP connections refused by the connection limit.
    pub tcp_refused: AtomicU64,
    /// TCP events frames answered with an ACK.
    pub tcp_frames: AtomicU64,
    /// TCP events received.
    pub tcp_events: AtomicU64,
    /// ERROR frames sent.
    pub tcp_errors: AtomicU64,
}

/// A copy of [`ServerCounters`].
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct CounterSnapshot {
    pub http_requests: u64,
    pub http_busy: u64,
    pub tcp_connections: u64,
    pub tcp_open: u64,
    pub tcp_refused: u64,
    pub tcp_frames: u64,
    pub tcp_events: u64,
    pub tcp_errors: u64,
}

impl ServerCounters {
    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            http_requests: l(&self.http_requests),
            http_busy: l(&self.http_busy),
            tcp_connections: l(&self.tcp_connections),
            tcp_open: l(&self.tcp_open),
            tcp_refused: l(&self.tcp_refused),
            tcp_frames: l(&self.tcp_frames),
            tcp_events: l(&self.tcp_events),
            tcp_errors: l(&self.tcp_errors),
        }
    }
}

/// What every handler and connection shares (behind one `Arc`).
#[derive(Debug)]
pub(crate) struct Shared {
    /// The settings.
    pub config: ServeConfig,
    /// The engine's state. The sender is the opener task (it sends once, then
    /// drops); receivers are cloned from here.
    pub engine: watch::Receiver<EngineState>,
    /// The stop signal, for `/readyz` and SSE streams.
    pub stop: Shutdown,
    /// Numbered recent changes: the watch stream's ids and resume.
    pub watch_log: Arc<crate::http::WatchLog>,
    /// When the server started.
    pub started: Instant,
    /// Front-end counters.
    pub counters: ServerCounters,
    /// TCP connection slots: `max_connections` permits; a connection holds
    /// one for its life; none left = the new connection is refused with an
    /// ERROR frame. Never closed.
    pub tcp_slots: Arc<Semaphore>,
    /// HTTP request slots: `max_connections` permits; a request holds one
    /// until its response is produced; none left = 503. Never closed.
    pub http_slots: Arc<Semaphore>,
    /// HTTP socket slots ([`crate::conn`]): an accepted socket holds one
    /// for its life; none left = the socket is refused before it is read.
    pub http_conn_slots: Arc<Semaphore>,
    /// How many HTTP sockets are allowed (`max_connections`, or less to
    /// keep the store's descriptor reserve: [`crate::conn::fd_budget`]).
    pub http_conn_limit: usize,
    /// Farewell tasks of refused sockets ([`crate::conn::FAREWELL_MAX`]).
    pub farewells: Arc<Semaphore>,
    /// Cluster mode: the node's handle, set by the opener before the engine
    /// is announced ready (so a handler that sees the engine sees it too).
    pub cluster: std::sync::OnceLock<statecraft_cluster::ClusterHandle>,
    /// Metrics, stage clocks and recent samples (`crate::observe`).
    pub observe: crate::observe::Observer,
}

impl Shared {
    /// The engine, if it is open.
    pub(crate) fn engine(&self) -> Option<Engine> {
        match &*self.engine.borrow() {
            EngineState::Ready(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// Waits until the engine is open (or failed to open).
    pub(crate) async fn wait_engine(&self) -> Result<Engine, Arc<str>> {
        let mut rx = self.engine.clone();
        let state = rx
            .wait_for(|s| !matches!(s, EngineState::Opening))
            .await
            .map(|s| s.clone());
        match state {
            Ok(EngineState::Ready(e)) => Ok(e),
            Ok(EngineState::Failed(why)) => Err(why),
            // The opener is gone without a verdict (its task panicked).
            Ok(EngineState::Opening) | Err(_) => match &*self.engine.borrow() {
                EngineState::Ready(e) => Ok(e.clone()),
                EngineState::Failed(why) => Err(why.clone()),
                EngineState::Opening => Err(Arc::from("the engine opener stopped")),
            },
        }
    }
}

/// The server: [`Server::start`] it with a [`ServeConfig`].
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Binds the HTTP and TCP listeners, starts opening the engine in the
    /// background and starts serving. Returns once both listeners are bound
    /// (not once the engine is open: see [`RunningServer::wait_ready`]).
    /// Must be called inside a multi-thread Tokio runtime.
    pub async fn start(config: ServeConfig) -> Result<RunningServer, ServerError> {
        config.validate()?;
        // The data directory first: a second server on it, or one it cannot
        // write, fails here, before anything listens.
        let dir_lock = match &config.engine.data_dir {
            Some(dir) => Some(crate::dirlock::claim(dir)?),
            None => None,
        };
        let http_listener =
            std::net::TcpListener::bind(config.http).map_err(|source| ServerError::Bind {
                what: "http",
                addr: config.http,
                source,
            })?;
        let http_addr = http_listener.local_addr()?;
        let tcp_listener = tokio::net::TcpListener::bind(config.tcp)
            .await
            .map_err(|source| ServerError::Bind {
                what: "tcp",
                addr: config.tcp,
                source,
            })?;
        let tcp_addr = tcp_listener.local_addr()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(ServerError::Tls)?,
            ),
            _ => None,
        };

        // Descriptors: raise the soft limit, then keep the store's reserve
        // out of the clients' reach (issue 16).
        let soft = match crate::conn::raise_nofile_limit() {
            Ok(soft) => soft,
            Err(e) => {
                tracing::warn!(error = %e, "could not read or raise the open-file limit");
                // The usual default soft limit (`ulimit -n`) on Linux: assume
                // it rather than a larger limit we could not confirm.
                1024
            }
        };
        let conn_limit = crate::conn::fd_budget(config.max_connections, soft);
        if conn_limit < config.max_connections {
            tracing::warn!(
                max_connections = config.max_connections,
                allowed = conn_limit,
                open_file_limit = soft,
                reserve = crate::conn::STORE_FD_RESERVE,
                "max_connections lowered to fit the open-file limit (raise `ulimit -n`)"
            );
        }
        let coordinator = ShutdownCoordinator::new();
        let (engine_tx, engine_rx) = watch::channel(EngineState::Opening);
        let shared = Arc::new(Shared {
            tcp_slots: Arc::new(Semaphore::new(conn_limit)),
            http_slots: Arc::new(Semaphore::new(config.max_connections)),
            http_conn_slots: Arc::new(Semaphore::new(conn_limit)),
            http_conn_limit: conn_limit,
            farewells: Arc::new(Semaphore::new(crate::conn::FAREWELL_MAX)),
            stop: coordinator.listener(),
            watch_log: Arc::default(),
            engine: engine_rx,
            started: Instant::now(),
            counters: ServerCounters::default(),
            cluster: std::sync::OnceLock::new(),
            observe: crate::observe::Observer::default(),
            config,
        });

        // Failures of the front ends after start: the CLI exits on the first.
        // Capacity 2: one per front end; a full channel drops the extra.
        let (fail_tx, fail_rx) = mpsc::channel(2);

        let builder = Engine::builder().config(shared.config.engine.clone());
        let data_dir = shared.config.engine.data_dir.clone();
        let opener_fail = fail_tx.clone();
        let cluster_config = shared.config.cluster.clone().map(|mut c| {
            c.http_addr = http_addr.to_string();
            c
        });
        let opener_shared = Arc::clone(&shared);
        let opener = tokio::spawn(async move {
            let began = Instant::now();
            tracing::info!(data_dir = ?data_dir, "opening the engine");
            let opened = match builder.open().await {
                Ok(engine) => match cluster_config {
                    None => Ok(engine),
                    Some(c) => match statecraft_cluster::Cluster::start(c, engine.clone()).await {
                        Ok(handle) => {
                            let _ = opener_shared.cluster.set(handle);
                            Ok(engine)
                        }
                        Err(e) => {
                            let _ = engine.shutdown().await;
                            Err(e.to_string())
                        }
                    },
                },
                Err(e) => Err(e.to_string()),
            };
            match opened {
                Ok(engine) => {
                    tracing::info!(
                        shards = engine.shard_count(),
                        elapsed_ms = began.elapsed().as_millis() as u64,
                        "engine ready"
                    );
                    engine_tx.send_replace(EngineState::Ready(engine));
                }
                Err(e) => {
                    tracing::error!(error = %e, "the engine failed to start");
                    engine_tx.send_replace(EngineState::Failed(Arc::from(e.as_str())));
                    let _ = opener_fail.try_send(ServerError::EngineStart(e));
                }
            }
        });

        let app = crate::http::router(Arc::clone(&shared));
        let (stop, guard) = coordinator.task();
        let http_task = tokio::spawn(crate::http::serve(
            Arc::clone(&shared),
            http_listener,
            tls.clone(),
            app,
            shared.config.shutdown_grace,
            stop,
            guard,
            fail_tx.clone(),
        ));
        let (stop, guard) = coordinator.task();
        let tcp_task = tokio::spawn(crate::tcp::serve(
            tcp_listener,
            Arc::clone(&shared),
            stop,
            guard,
            fail_tx,
        ));
        // The sampler ends at the stop signal; it holds up nothing.
        let sampler = crate::observe::spawn_sampler(Arc::clone(&shared), coordinator.listener());
        tracing::info!(
            http = %http_addr,
            tls = tls.is_some(),
            tcp = %tcp_addr,
            auth = shared.config.auth_token.is_some(),
            "listening"
        );
        Ok(RunningServer {
            http_addr,
            tcp_addr,
            shared,
            coordinator,
            opener,
            tasks: vec![http_task, tcp_task, sampler],
            failures: fail_rx,
            _dir_lock: dir_lock,
        })
    }
}

/// A started server. Drop it only after [`RunningServer::shutdown`]: dropping
/// it without leaves the tasks running until the runtime ends.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound HTTP address (the real port when 0 was asked for).
    pub http_addr: SocketAddr,
    /// The bound TCP ingest address.
    pub tcp_addr: SocketAddr,
    shared: Arc<Shared>,
    coordinator: ShutdownCoordinator,
    /// The engine opener; finished once the engine is open or failed.
    opener: JoinHandle<()>,
    /// The HTTP server and the TCP accept loop; each ends after the stop.
    tasks: Vec<JoinHandle<()>>,
    /// Failures of the front ends or the opener (senders: those tasks).
    failures: mpsc::Receiver<ServerError>,
    /// The claim on the data directory; released when the server is gone
    /// (after shutdown has closed the store).
    _dir_lock: Option<crate::dirlock::DataDirLock>,
}

impl RunningServer {
    /// Waits until the engine is open; the engine (a cheap clone) for
    /// in-process checks.
    pub async fn wait_ready(&self) -> Result<Engine, ServerError> {
        self.shared
            .wait_engine()
            .await
            .map_err(|why| ServerError::EngineStart(why.to_string()))
    }

    /// The engine, if open.
    pub fn engine(&self) -> Option<Engine> {
        self.shared.engine()
    }

    /// The HTTP base URL (`http://` or `https://`).
    pub fn http_url(&self) -> String {
        let scheme = if self.shared.config.tls() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.http_addr)
    }

    /// Resolves with the first failure of a front end or of the engine's
    /// start (pending forever if there is none).
    pub async fn failed(&mut self) -> ServerError {
        match self.failures.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    /// True once the shutdown began.
    pub fn is_stopping(&self) -> bool {
        self.coordinator.is_stopping()
    }

    /// Graceful shutdown: stop accepting (HTTP and TCP), stop reading new
    /// frames, let in-flight requests and frames finish, then shut the engine
    /// down (drain, commit, ack) and close the store.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        let began = Instant::now();
        tracing::info!("shutdown: stop accepting; finishing in-flight requests and frames");
        self.coordinator.stop_and_wait().await;
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        tracing::info!(
            elapsed_ms = began.elapsed().as_millis() as u64,
            "shutdown: front ends finished; draining the engine"
        );
        // The engine may still be opening: wait for the verdict.
        let _ = (&mut self.opener).await;
        // Cluster mode: finish the partitions' batches, commit, ack and
        // release the leases before the engine drains.
        if let Some(cluster) = self.shared.cluster.get()
            && let Err(e) = cluster.shutdown().await
        {
            tracing::error!(error = %e, "shutdown: leaving the cluster failed");
        }
        let engine = self.shared.engine();
        match engine {
            Some(engine) => {
                engine
                    .shutdown()
                    .await
                    .map_err(ServerError::EngineShutdown)?;
                tracing::info!(
                    elapsed_ms = began.elapsed().as_millis() as u64,
                    applied_total = engine.applied_total(),
                    "shutdown: engine drained, committed and closed"
                );
            }
            None => tracing::info!("shutdown: the engine was not open"),
        }
        Ok(())
    }
}
