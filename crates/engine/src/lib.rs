//! Statecraft's engine: events in, current state of every key out — in order
//! per key, under bounded queues, with one result per event.
//!
//! # A tour of the layout
//!
//! The modules follow the pipeline of DESIGN.md §1, one stage each:
//!
//! - [`event`]: the event model — [`Event`], [`Op`], [`EventResult`],
//!   [`StateRecord`], [`Change`], [`AckMode`].
//! - [`limits`]: validation limits and the depth-checked decoders (JSON, NDJSON).
//! - [`mod@pointer`] and [`ops`]: JSON Pointer paths and what each op does to a value.
//! - [`router`]: `hash(key) % shards`.
//! - [`queue`]: [`ShardQueue`], bounded in events and bytes, resizable, with the
//!   four overflow policies.
//! - [`batch`]: [`BatchCollector`], size-or-fixed-deadline batching.
//! - `shard`: the worker thread that owns a shard's keys and applies batches.
//! - `persist`: the shard's side of durability (group commit, checkpoints).
//! - [`stats`]: counters and per-stage histograms.
//! - [`engine`]: the library API tying it together.
//!
//! # Example
//!
//! ```
//! use statecraft_engine::{AckMode, Engine, Event, EventResult};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let engine = Engine::builder().shards(2).open().await?;
//! let results = engine
//!     .submit_with(
//!         vec![Event::incr("user:42/clicks", 1), Event::incr("user:42/clicks", 2)],
//!         AckMode::Applied,
//!     )
//!     .await?;
//! assert_eq!(results[1], EventResult::Applied { version: 2 });
//! let state = engine.get("user:42/clicks").await?.expect("present");
//! assert_eq!(state.value, 3);
//! engine.shutdown().await?;
//! # Ok::<(), statecraft_engine::EngineError>(())
//! # }).unwrap();
//! ```

pub mod adaptive;
pub mod batch;
pub mod engine;
pub mod error;
pub mod event;
pub mod limits;
pub mod ops;
pub(crate) mod persist;
pub mod pointer;
pub mod queue;
pub mod router;
pub mod shard;
pub mod stats;
pub(crate) mod sync;

pub use batch::BatchCollector;
pub use engine::{
    BlockWait, Engine, EngineBuilder, EngineConfig, SettingError, Submission, Ticket,
};
pub use error::EngineError;
pub use event::{AckMode, Change, Event, EventResult, Op, RejectCode, StateRecord};
pub use limits::{Limits, Rejection};
pub use persist::DurabilityStats;
pub use queue::{OverflowPolicy, ShardQueue};
pub use shard::Source;
pub use stats::EngineStats;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
