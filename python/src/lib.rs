//! `statecraft._native`: the Statecraft engine embedded in a Python process.
//!
//! Owns the conversion between Python objects and the engine's event model
//! (dicts in, result objects out) and the blocking bridge from Python threads
//! to the engine's async API. The Python package (`statecraft.embedded`)
//! wraps this module; nothing else should import it.
//!
//! Invariants: every event handed to `submit` gets exactly one result object,
//! in input order — a value Python cannot express as an event becomes that
//! event's `Rejected` result, never an exception that loses its neighbours;
//! the GIL is released whenever the engine is waited on, so other Python
//! threads (and the asyncio face, which waits in an executor) run meanwhile.

mod results;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};
use statecraft_engine::{
    AckMode, Change, Engine, EngineError, Event, EventResult, Limits, Op, OverflowPolicy,
    RejectCode, Rejection, StateRecord, Ticket,
};

/// How deep a Python value may nest before conversion gives up (the engine's
/// own depth limit is far below this; the bound keeps the recursion safe).
const MAX_CONVERT_DEPTH: usize = 128;

pyo3::create_exception!(
    _native,
    EngineClosed,
    pyo3::exceptions::PyException,
    "The engine is shut down (or shutting down) and admits nothing new."
);
pyo3::create_exception!(
    _native,
    EngineFailure,
    pyo3::exceptions::PyException,
    "A whole engine call failed: the store failed, the engine is poisoned, or a worker panicked."
);

/// The Python classes of states and changes (set once by the package).
struct Types {
    state: Py<PyAny>,
    change: Py<PyAny>,
    lagged: Py<PyAny>,
}

static TYPES: Mutex<Option<Arc<Types>>> = Mutex::new(None);

fn types() -> PyResult<Arc<Types>> {
    let guard = TYPES
        .lock()
        .map_err(|_| PyRuntimeError::new_err("statecraft types lock poisoned"))?;
    guard
        .clone()
        .ok_or_else(|| PyRuntimeError::new_err("statecraft._native.set_types was not called"))
}

/// Registers the classes of states and changes (called once by the package).
#[pyfunction]
fn set_types(state: Py<PyAny>, change: Py<PyAny>, lagged: Py<PyAny>) -> PyResult<()> {
    let mut guard = TYPES
        .lock()
        .map_err(|_| PyRuntimeError::new_err("statecraft types lock poisoned"))?;
    *guard = Some(Arc::new(Types {
        state,
        change,
        lagged,
    }));
    Ok(())
}

fn engine_err(e: EngineError) -> PyErr {
    match e {
        EngineError::ShuttingDown => EngineClosed::new_err(e.to_string()),
        other => EngineFailure::new_err(other.to_string()),
    }
}

fn parse_ack(ack: Option<&str>, default: AckMode) -> PyResult<AckMode> {
    match ack {
        None => Ok(default),
        Some(s) => AckMode::parse(s).ok_or_else(|| {
            PyValueError::new_err(format!(
                "ack must be 'durable', 'applied' or 'none', not {s:?}"
            ))
        }),
    }
}

/// Converts a Python value to JSON. `Err` names what could not be converted.
fn to_json(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, Rejection> {
    if depth > MAX_CONVERT_DEPTH {
        return Err(Rejection::new(
            RejectCode::TooDeep,
            "the value nests deeper than 128",
        ));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(Rejection::new(
            RejectCode::InvalidOperand,
            "an integer outside i64/u64",
        ));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        return Number::from_f64(v).map(Value::Number).ok_or_else(|| {
            Rejection::new(RejectCode::InvalidOperand, "a float that is not finite")
        });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s
            .to_cow()
            .map(|s| Value::String(s.into_owned()))
            .map_err(|_| Rejection::new(RejectCode::InvalidJson, "a string that is not UTF-8"));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let k = k.cast::<PyString>().map_err(|_| {
                Rejection::new(RejectCode::InvalidJson, "an object key that is not a str")
            })?;
            let k = k.to_cow().map_err(|_| {
                Rejection::new(RejectCode::InvalidJson, "an object key that is not UTF-8")
            })?;
            map.insert(k.into_owned(), to_json(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let mut out = Vec::with_capacity(l.len());
        for v in l.iter() {
            out.push(to_json(&v, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        let mut out = Vec::with_capacity(t.len());
        for v in t.iter() {
            out.push(to_json(&v, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    let type_name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    Err(Rejection::new(
        RejectCode::InvalidJson,
        format!("a value of type {type_name} is not JSON"),
    ))
}

/// Converts a JSON value to Python.
fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let list = PyList::empty(py);
            for x in a {
                list.append(to_py(py, x)?)?;
            }
            list.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

fn opt_str(v: &Bound<'_, PyAny>, field: &str) -> Result<Option<String>, Rejection> {
    if v.is_none() {
        return Ok(None);
    }
    let s = v.cast::<PyString>().map_err(|_| {
        Rejection::new(
            RejectCode::InvalidEvent,
            format!("`{field}` must be a string"),
        )
    })?;
    s.to_cow()
        .map(|s| Some(s.into_owned()))
        .map_err(|_| Rejection::new(RejectCode::InvalidEvent, format!("`{field}` is not UTF-8")))
}

fn opt_u64(v: &Bound<'_, PyAny>, field: &str) -> Result<Option<u64>, Rejection> {
    if v.is_none() {
        return Ok(None);
    }
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(Rejection::new(
            RejectCode::InvalidEvent,
            format!("`{field}` must be a non-negative integer"),
        ));
    }
    v.extract::<u64>().map(Some).map_err(|_| {
        Rejection::new(
            RejectCode::InvalidEvent,
            format!("`{field}` must be a non-negative integer"),
        )
    })
}

/// Converts one Python event (a dict) to an engine event, validated against
/// the limits.
fn to_event(obj: &Bound<'_, PyAny>, limits: &Limits) -> Result<Event, Rejection> {
    let event = to_event_unvalidated(obj)?;
    limits.validate(&event)?;
    Ok(event)
}

/// The three fields every event has, recognized without reading a string.
enum Field {
    Key,
    Op,
    Value,
}

/// A built-in op given as an interned string (as literals are), by identity.
fn known_op(py: Python<'_>, v: &Bound<'_, PyAny>) -> Option<Op> {
    Some(if v.is(pyo3::intern!(py, "incr")) {
        Op::Incr
    } else if v.is(pyo3::intern!(py, "set")) {
        Op::Set
    } else if v.is(pyo3::intern!(py, "merge")) {
        Op::Merge
    } else if v.is(pyo3::intern!(py, "append")) {
        Op::Append
    } else if v.is(pyo3::intern!(py, "delete")) {
        Op::Delete
    } else if v.is(pyo3::intern!(py, "max")) {
        Op::Max
    } else if v.is(pyo3::intern!(py, "min")) {
        Op::Min
    } else {
        return None;
    })
}

/// Converts one Python event (a dict) to an engine event: structure only.
fn to_event_unvalidated(obj: &Bound<'_, PyAny>) -> Result<Event, Rejection> {
    let d = obj
        .cast::<PyDict>()
        .map_err(|_| Rejection::new(RejectCode::InvalidEvent, "an event must be a dict"))?;
    let mut key: Option<String> = None;
    let mut op: Option<Op> = None;
    let mut event = Event::new(String::new(), Op::Set);
    let py = obj.py();
    for (k, v) in d.iter() {
        // Field names in literals are interned: compare by identity first,
        // read the string only for the others.
        let fast = if k.is(pyo3::intern!(py, "key")) {
            Some(Field::Key)
        } else if k.is(pyo3::intern!(py, "op")) {
            Some(Field::Op)
        } else if k.is(pyo3::intern!(py, "value")) {
            Some(Field::Value)
        } else {
            None
        };
        let owned;
        let name: &str = match fast {
            Some(Field::Key) => "key",
            Some(Field::Op) => "op",
            Some(Field::Value) => "value",
            None => {
                let k = k.cast::<PyString>().map_err(|_| {
                    Rejection::new(RejectCode::InvalidEvent, "event fields are str")
                })?;
                owned = k.to_cow().map_err(|_| {
                    Rejection::new(RejectCode::InvalidEvent, "event fields are UTF-8")
                })?;
                owned.as_ref()
            }
        };
        match name {
            "key" => {
                key = opt_str(&v, "key")?;
            }
            "op" => {
                op = Some(match known_op(py, &v) {
                    Some(op) => op,
                    None => match opt_str(&v, "op")? {
                        Some(s) => Op::parse(&s),
                        None => {
                            return Err(Rejection::new(
                                RejectCode::InvalidEvent,
                                "`op` must be a string",
                            ));
                        }
                    },
                });
            }
            "value" => event.value = Some(to_json(&v, 0)?),
            "path" => event.path = opt_str(&v, "path")?,
            "id" => event.id = opt_str(&v, "id")?,
            "if_version" => event.if_version = opt_u64(&v, "if_version")?,
            "ttl_s" => event.ttl_s = opt_u64(&v, "ttl_s")?,
            "max_len" => {
                event.max_len = match opt_u64(&v, "max_len")? {
                    None => None,
                    Some(n) => Some(usize::try_from(n).map_err(|_| {
                        Rejection::new(RejectCode::InvalidEvent, "`max_len` is too large")
                    })?),
                }
            }
            other => {
                return Err(Rejection::new(
                    RejectCode::InvalidEvent,
                    format!("unknown field `{other}`"),
                ));
            }
        }
    }
    event.key =
        key.ok_or_else(|| Rejection::new(RejectCode::InvalidEvent, "missing field `key`"))?;
    event.op = op.ok_or_else(|| Rejection::new(RejectCode::InvalidEvent, "missing field `op`"))?;
    Ok(event)
}

fn rejected(py: Python<'_>, code: &str, message: &str) -> PyResult<Py<PyAny>> {
    Ok(Py::new(
        py,
        results::Rejected {
            code: code.to_owned(),
            message: message.to_owned(),
        },
    )?
    .into_any())
}

fn result_to_py(py: Python<'_>, r: &EventResult) -> PyResult<Py<PyAny>> {
    Ok(match r {
        EventResult::Applied { version } => {
            Py::new(py, results::Applied { version: *version })?.into_any()
        }
        EventResult::Duplicate => Py::new(py, results::Duplicate {})?.into_any(),
        EventResult::Conflict { current_version } => Py::new(
            py,
            results::Conflict {
                current_version: *current_version,
            },
        )?
        .into_any(),
        EventResult::Rejected { code, message } => rejected(py, code.as_str(), message)?,
        EventResult::Overloaded => Py::new(py, results::Overloaded {})?.into_any(),
        EventResult::Accepted => Py::new(py, results::Accepted {})?.into_any(),
        // A status this build does not know: report it as a rejection.
        other => rejected(
            py,
            "internal",
            &format!("unknown result {}", other.status()),
        )?,
    })
}

fn state_to_py(py: Python<'_>, t: &Types, s: &StateRecord) -> PyResult<Py<PyAny>> {
    t.state.call1(
        py,
        (
            s.key.as_str(),
            to_py(py, &s.value)?,
            s.version,
            s.updated_at,
            s.expires_at,
        ),
    )
}

fn change_to_py(py: Python<'_>, t: &Types, c: &Change) -> PyResult<Py<PyAny>> {
    let value = match &c.value {
        Some(v) => to_py(py, v)?,
        None => py.None().into_bound(py),
    };
    t.change.call1(
        py,
        (
            c.key.as_str(),
            c.op.as_str(),
            value,
            c.version,
            c.updated_at,
        ),
    )
}

/// Events converted (GIL held) per admission in `submit`: big enough to
/// amortize an admission, small enough that the shards start early.
const CHUNK: usize = 4096;

/// Admitted chunks of one `submit`, waited for together at the end.
#[derive(Default)]
struct Pipeline {
    tickets: Vec<Ticket>,
}

impl Pipeline {
    /// Admits one chunk (waiting for queue room under `block`, GIL released).
    fn admit(
        &mut self,
        py: Python<'_>,
        owner: &NativeEngine,
        engine: &Engine,
        items: Vec<Result<Event, Rejection>>,
        ack: AckMode,
    ) -> PyResult<()> {
        let ticket = py
            .detach(|| owner.rt.block_on(engine.enqueue_decoded(items, ack)))
            .map_err(engine_err)?;
        self.tickets.push(ticket);
        Ok(())
    }

    /// Every chunk's results, in order (GIL released while waiting).
    fn wait(self, py: Python<'_>, owner: &NativeEngine) -> Vec<EventResult> {
        py.detach(|| {
            owner.rt.block_on(async move {
                let mut all = Vec::new();
                for t in self.tickets {
                    all.extend(t.wait().await);
                }
                all
            })
        })
    }
}

/// The Statecraft engine, in this process.
#[pyclass(module = "statecraft._native", name = "NativeEngine")]
struct NativeEngine {
    engine: Mutex<Option<Engine>>,
    rt: tokio::runtime::Runtime,
    limits: Limits,
    ack: AckMode,
}

impl NativeEngine {
    fn handle(&self) -> PyResult<Engine> {
        let guard = self
            .engine
            .lock()
            .map_err(|_| PyRuntimeError::new_err("engine lock poisoned"))?;
        guard
            .clone()
            .ok_or_else(|| EngineClosed::new_err("the engine is closed"))
    }
}

#[pymethods]
impl NativeEngine {
    /// Opens an engine (recovering `data_dir` when given).
    #[new]
    #[pyo3(signature = (data_dir=None, shards=None, queue_capacity=None, overflow=None,
                        ack=None, max_batch=None, max_wait_ms=None, dedup_window_s=None,
                        block_timeout_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        data_dir: Option<PathBuf>,
        shards: Option<usize>,
        queue_capacity: Option<usize>,
        overflow: Option<&str>,
        ack: Option<&str>,
        max_batch: Option<usize>,
        max_wait_ms: Option<u64>,
        dedup_window_s: Option<u64>,
        block_timeout_ms: Option<u64>,
    ) -> PyResult<Self> {
        let ack = parse_ack(ack, AckMode::Durable)?;
        let mut b = Engine::builder().ack(ack);
        if let Some(dir) = data_dir {
            b = b.data_dir(dir);
        }
        if let Some(n) = shards {
            if n == 0 {
                return Err(PyValueError::new_err("shards must be at least 1"));
            }
            b = b.shards(n);
        }
        if let Some(n) = queue_capacity {
            b = b.queue_capacity(n);
        }
        if let Some(p) = overflow {
            let p = OverflowPolicy::parse(p).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "overflow must be block, reject, drop_oldest or drop_newest, not {p:?}"
                ))
            })?;
            b = b.overflow(p);
        }
        if let Some(n) = max_batch {
            b = b.max_batch(n);
        }
        if let Some(ms) = max_wait_ms {
            b = b.max_wait(Duration::from_millis(ms));
        }
        if let Some(s) = dedup_window_s {
            b = b.dedup_window(Duration::from_secs(s));
        }
        if let Some(ms) = block_timeout_ms {
            b = b.block_timeout(Some(Duration::from_millis(ms)));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("statecraft-py")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start a runtime: {e}")))?;
        let engine = py.detach(|| rt.block_on(b.open())).map_err(|e| match e {
            EngineError::Config(m) => PyValueError::new_err(m),
            other => engine_err(other),
        })?;
        Ok(NativeEngine {
            engine: Mutex::new(Some(engine)),
            rt,
            limits: Limits::DEFAULT,
            ack,
        })
    }

    /// Submits events (a list of dicts) and waits for one result each.
    ///
    /// Converts `CHUNK` events at a time (holding the GIL) and admits each
    /// chunk before converting the next (without it): the shards apply one
    /// chunk while Python's objects of the next are read.
    #[pyo3(signature = (events, ack=None))]
    fn submit(
        &self,
        py: Python<'_>,
        events: &Bound<'_, PyAny>,
        ack: Option<&str>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let ack = parse_ack(ack, self.ack)?;
        if events.is_instance_of::<PyDict>() || events.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(
                "events must be a list (or another iterable) of dicts",
            ));
        }
        let engine = self.handle()?;
        let mut pipeline = Pipeline::default();
        let mut items: Vec<Result<Event, Rejection>> = Vec::with_capacity(CHUNK);
        let mut feed = |e: &Bound<'_, PyAny>, items: &mut Vec<Result<Event, Rejection>>| {
            items.push(to_event(e, &self.limits));
            if items.len() >= CHUNK {
                pipeline.admit(py, self, &engine, std::mem::take(items), ack)?;
            }
            Ok::<(), PyErr>(())
        };
        if let Ok(list) = events.cast::<PyList>() {
            for e in list.iter() {
                feed(&e, &mut items)?;
            }
        } else {
            for e in events.try_iter()? {
                feed(&e?, &mut items)?;
            }
        }
        if !items.is_empty() {
            pipeline.admit(py, self, &engine, items, ack)?;
        }
        let results = pipeline.wait(py, self);
        results.iter().map(|r| result_to_py(py, r)).collect()
    }

    /// Submits `incr` by `by` of each key in `keys` (the counter fast path:
    /// no dict per event). Returns the number of applied (or, with
    /// ack='none', accepted) events and a list of the other results as
    /// (index, result) pairs.
    #[pyo3(signature = (keys, by=1, ack=None))]
    fn incr_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        by: i64,
        ack: Option<&str>,
    ) -> PyResult<(usize, OtherResults)> {
        let ack = parse_ack(ack, self.ack)?;
        let list = keys
            .cast::<PyList>()
            .map_err(|_| PyTypeError::new_err("keys must be a list of str"))?;
        let engine = self.handle()?;
        let mut pipeline = Pipeline::default();
        let mut items: Vec<Result<Event, Rejection>> = Vec::with_capacity(CHUNK);
        for k in list.iter() {
            let item = match k.cast::<PyString>() {
                Ok(s) => match s.to_cow() {
                    Ok(s) => {
                        let e = Event::incr(s.into_owned(), by);
                        self.limits.validate(&e).map(|()| e)
                    }
                    Err(_) => Err(Rejection::new(RejectCode::InvalidKey, "key is not UTF-8")),
                },
                Err(_) => Err(Rejection::new(
                    RejectCode::InvalidEvent,
                    "a key must be a str",
                )),
            };
            items.push(item);
            if items.len() >= CHUNK {
                pipeline.admit(py, self, &engine, std::mem::take(&mut items), ack)?;
            }
        }
        if !items.is_empty() {
            pipeline.admit(py, self, &engine, items, ack)?;
        }
        let results = pipeline.wait(py, self);
        let mut ok = 0;
        let mut other = Vec::new();
        for (i, r) in results.iter().enumerate() {
            match r {
                EventResult::Applied { .. } | EventResult::Accepted => ok += 1,
                r => other.push((i, result_to_py(py, r)?)),
            }
        }
        Ok((ok, other))
    }

    /// The state of `key`, or None.
    fn get(&self, py: Python<'_>, key: &str) -> PyResult<Option<Py<PyAny>>> {
        let t = types()?;
        let engine = self.handle()?;
        let rec = py
            .detach(|| self.rt.block_on(engine.get(key)))
            .map_err(engine_err)?;
        rec.map(|s| state_to_py(py, &t, &s)).transpose()
    }

    /// One page of a scan: up to `limit` live keys starting with `prefix`,
    /// greater than `after`, in byte order.
    #[pyo3(signature = (prefix="", after=None, limit=100))]
    fn scan(
        &self,
        py: Python<'_>,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> PyResult<Vec<Py<PyAny>>> {
        if limit == 0 {
            return Err(PyValueError::new_err("limit must be at least 1"));
        }
        let t = types()?;
        let engine = self.handle()?;
        let recs = py
            .detach(|| self.rt.block_on(engine.scan(prefix, after, limit)))
            .map_err(engine_err)?;
        recs.iter().map(|s| state_to_py(py, &t, s)).collect()
    }

    /// A watcher of changes to keys starting with `prefix`, from now on.
    #[pyo3(signature = (prefix=""))]
    fn watch(&self, prefix: &str) -> PyResult<NativeWatcher> {
        let engine = self.handle()?;
        // Subscribe inside the runtime: the stream is polled there.
        let _guard = self.rt.enter();
        let stream = engine.watch(prefix);
        Ok(NativeWatcher {
            stream: Mutex::new(Some(Box::pin(stream))),
            rt: self.rt.handle().clone(),
        })
    }

    /// The engine's figures, as JSON text.
    fn stats_json(&self) -> PyResult<String> {
        let engine = self.handle()?;
        serde_json::to_string(&engine.stats())
            .map_err(|e| PyRuntimeError::new_err(format!("stats: {e}")))
    }

    /// Number of shards.
    fn shard_count(&self) -> PyResult<usize> {
        Ok(self.handle()?.shard_count())
    }

    /// True once `close` was called.
    fn closed(&self) -> PyResult<bool> {
        let guard = self
            .engine
            .lock()
            .map_err(|_| PyRuntimeError::new_err("engine lock poisoned"))?;
        Ok(guard.is_none())
    }

    /// Drains, commits and stops the engine. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let engine = {
            let mut guard = self
                .engine
                .lock()
                .map_err(|_| PyRuntimeError::new_err("engine lock poisoned"))?;
            guard.take()
        };
        if let Some(engine) = engine {
            py.detach(|| self.rt.block_on(engine.shutdown()))
                .map_err(engine_err)?;
        }
        Ok(())
    }
}

/// `incr_many`'s results that were not applied: (position, result).
type OtherResults = Vec<(usize, Py<PyAny>)>;

type ChangeStream = Pin<Box<dyn Stream<Item = Result<Arc<Change>, u64>> + Send>>;

/// A change feed: `next(timeout)` returns a Change, a Lagged, or None on
/// timeout; raises EngineClosed when the engine shut down.
#[pyclass(module = "statecraft._native", name = "NativeWatcher")]
struct NativeWatcher {
    stream: Mutex<Option<ChangeStream>>,
    rt: tokio::runtime::Handle,
}

#[pymethods]
impl NativeWatcher {
    /// The next change, waiting at most `timeout` seconds (None = forever).
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        let t = types()?;
        // try_lock: a second thread waiting on the lock while holding the GIL
        // could deadlock with the first one taking the GIL back.
        let mut guard = self.stream.try_lock().map_err(|_| {
            PyRuntimeError::new_err("this watcher is already being waited on by another thread")
        })?;
        let Some(stream) = guard.as_mut() else {
            return Err(EngineClosed::new_err("the watch ended"));
        };
        let wait = match timeout {
            Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
            Some(_) => return Err(PyValueError::new_err("timeout must be >= 0")),
            None => None,
        };
        let item = py.detach(|| {
            self.rt.block_on(async {
                match wait {
                    Some(d) => tokio::time::timeout(d, stream.next()).await.ok(),
                    None => Some(stream.next().await),
                }
            })
        });
        match item {
            None => Ok(None),
            Some(None) => {
                *guard = None;
                Err(EngineClosed::new_err(
                    "the watch ended: the engine shut down",
                ))
            }
            Some(Some(Ok(c))) => Ok(Some(change_to_py(py, &t, &c)?)),
            Some(Some(Err(missed))) => Ok(Some(t.lagged.call1(py, (missed,))?)),
        }
    }

    /// Stops watching.
    fn close(&self) -> PyResult<()> {
        let mut guard = self
            .stream
            .lock()
            .map_err(|_| PyRuntimeError::new_err("watcher lock poisoned"))?;
        *guard = None;
        Ok(())
    }
}

// --- TCP protocol v1 codec (docs/protocol.md), for the pure-Python client ---

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(false) => out.push(1),
        Value::Bool(true) => out.push(2),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push(3);
                put_varint(out, ((i << 1) ^ (i >> 63)) as u64);
            } else if let Some(u) = n.as_u64() {
                out.push(4);
                put_varint(out, u);
            } else {
                out.push(5);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        }
        Value::String(s) => {
            out.push(6);
            put_str(out, s);
        }
        other => {
            out.push(7);
            put_str(out, &other.to_string());
        }
    }
}

fn op_code(op: &Op) -> Option<u8> {
    Some(match op {
        Op::Set => 0,
        Op::Merge => 1,
        Op::Incr => 2,
        Op::Append => 3,
        Op::Max => 4,
        Op::Min => 5,
        Op::Delete => 6,
        _ => return None,
    })
}

/// One event dict in the binary encoding (the checks the server makes on
/// structure; its limits are left to the server).
fn encode_one(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), Rejection> {
    // The embedded path's conversion without its limit checks: the server
    // applies its own limits.
    let e = to_event_unvalidated(obj)?;
    match op_code(&e.op) {
        Some(c) => out.push(c),
        None => {
            out.push(0xff);
            put_str(out, e.op.as_str());
        }
    }
    let mut flags = 0u8;
    if e.value.is_some() {
        flags |= 0x01;
    }
    if e.path.is_some() {
        flags |= 0x02;
    }
    if e.id.is_some() {
        flags |= 0x04;
    }
    if e.if_version.is_some() {
        flags |= 0x08;
    }
    if e.ttl_s.is_some() {
        flags |= 0x10;
    }
    if e.max_len.is_some() {
        flags |= 0x20;
    }
    out.push(flags);
    put_str(out, &e.key);
    if let Some(v) = &e.value {
        put_value(out, v);
    }
    if let Some(p) = &e.path {
        put_str(out, p);
    }
    if let Some(id) = &e.id {
        put_str(out, id);
    }
    if let Some(n) = e.if_version {
        put_varint(out, n);
    }
    if let Some(n) = e.ttl_s {
        put_varint(out, n);
    }
    if let Some(n) = e.max_len {
        put_varint(out, n as u64);
    }
    Ok(())
}

/// Encodes each event dict for an `EVENTS_BIN` frame: `bytes`, or the
/// `Rejected` result an event that cannot be encoded gets in its place.
#[pyfunction]
fn encode_events(py: Python<'_>, events: &Bound<'_, PyAny>) -> PyResult<Vec<Py<PyAny>>> {
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(64);
    for e in events.try_iter()? {
        let e = e?;
        buf.clear();
        match encode_one(&e, &mut buf) {
            Ok(()) => out.push(PyBytes::new(py, &buf).into_any().unbind()),
            Err(r) => out.push(rejected(py, r.code.as_str(), &r.message)?),
        }
    }
    Ok(out)
}

fn read_varint(b: &[u8], pos: &mut usize) -> PyResult<u64> {
    let mut n: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b
            .get(*pos)
            .ok_or_else(|| PyValueError::new_err("truncated ACK: varint"))?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(PyValueError::new_err("bad varint in ACK"));
        }
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(n);
        }
    }
    Err(PyValueError::new_err("varint too long in ACK"))
}

fn read_str<'a>(b: &'a [u8], pos: &mut usize) -> PyResult<std::borrow::Cow<'a, str>> {
    let n = usize::try_from(read_varint(b, pos)?)
        .map_err(|_| PyValueError::new_err("string length in ACK"))?;
    let end = pos
        .checked_add(n)
        .filter(|&e| e <= b.len())
        .ok_or_else(|| PyValueError::new_err("truncated ACK: string"))?;
    let s = String::from_utf8_lossy(&b[*pos..end]);
    *pos = end;
    Ok(s)
}

/// Decodes an `ACK` body: `(seq, results)`. Raises ValueError on a
/// malformed body.
#[pyfunction]
fn decode_ack(py: Python<'_>, body: &[u8]) -> PyResult<(u32, Vec<Py<PyAny>>)> {
    if body.len() < 4 {
        return Err(PyValueError::new_err("truncated ACK: seq"));
    }
    let seq = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let mut pos = 4;
    let count = read_varint(body, &mut pos)?;
    let mut out = Vec::with_capacity(usize::try_from(count.min(1 << 20)).unwrap_or(0));
    for _ in 0..count {
        let status = *body
            .get(pos)
            .ok_or_else(|| PyValueError::new_err("truncated ACK: status"))?;
        pos += 1;
        out.push(match status {
            0 => Py::new(
                py,
                results::Applied {
                    version: read_varint(body, &mut pos)?,
                },
            )?
            .into_any(),
            1 => Py::new(py, results::Duplicate {})?.into_any(),
            2 => Py::new(
                py,
                results::Conflict {
                    current_version: read_varint(body, &mut pos)?,
                },
            )?
            .into_any(),
            3 => {
                let code = read_str(body, &mut pos)?;
                let msg = read_str(body, &mut pos)?;
                rejected(py, &code, &msg)?
            }
            4 => Py::new(py, results::Overloaded {})?.into_any(),
            5 => Py::new(py, results::Accepted {})?.into_any(),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown result status byte {other} in ACK"
                )));
            }
        });
    }
    if pos != body.len() {
        return Err(PyValueError::new_err("trailing bytes in ACK"));
    }
    Ok((seq, out))
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    results::register(m)?;
    m.add_class::<NativeEngine>()?;
    m.add_class::<NativeWatcher>()?;
    m.add_function(wrap_pyfunction!(set_types, m)?)?;
    m.add_function(wrap_pyfunction!(encode_events, m)?)?;
    m.add_function(wrap_pyfunction!(decode_ack, m)?)?;
    m.add("EngineClosed", m.py().get_type::<EngineClosed>())?;
    m.add("EngineFailure", m.py().get_type::<EngineFailure>())?;
    Ok(())
}
