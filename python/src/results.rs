//! The per-event result classes (`statecraft.Applied`, `Duplicate`,
//! `Conflict`, `Rejected`, `Overloaded`, `Accepted`), native so that a result
//! costs one allocation: they are made once per event on every path (the
//! embedded engine, the client's ACK decoder).
//!
//! Invariant: each class is immutable (`frozen`), compares and hashes by its
//! fields, has `status` (the wire name), `ok` (its effect is in the state, or
//! it was admitted) and `__match_args__`, like the dataclasses they replace.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Applied: `version` is the key's version after the event.
#[pyclass(module = "statecraft", frozen, eq, hash, get_all)]
#[derive(PartialEq, Eq, Hash, Clone)]
pub struct Applied {
    /// The key's version after the event.
    pub version: u64,
}

#[pymethods]
impl Applied {
    #[new]
    fn new(version: u64) -> Self {
        Applied { version }
    }
    #[classattr]
    fn status() -> &'static str {
        "applied"
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        Ok(PyTuple::new(py, ["version"])?.unbind())
    }
    /// True: the event's effect is in the state.
    #[getter]
    fn ok(&self) -> bool {
        true
    }
    fn __repr__(&self) -> String {
        format!("Applied(version={})", self.version)
    }
    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (u64,))> {
        Ok((
            py.get_type::<Applied>().into_any().unbind(),
            (self.version,),
        ))
    }
}

/// Conflict: `if_version` did not match; `current_version` is the key's
/// version now (0 = absent).
#[pyclass(module = "statecraft", frozen, eq, hash, get_all)]
#[derive(PartialEq, Eq, Hash, Clone)]
pub struct Conflict {
    /// The key's version now (0 = absent).
    pub current_version: u64,
}

#[pymethods]
impl Conflict {
    #[new]
    fn new(current_version: u64) -> Self {
        Conflict { current_version }
    }
    #[classattr]
    fn status() -> &'static str {
        "conflict"
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        Ok(PyTuple::new(py, ["current_version"])?.unbind())
    }
    /// False: not applied.
    #[getter]
    fn ok(&self) -> bool {
        false
    }
    fn __repr__(&self) -> String {
        format!("Conflict(current_version={})", self.current_version)
    }
    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (u64,))> {
        Ok((
            py.get_type::<Conflict>().into_any().unbind(),
            (self.current_version,),
        ))
    }
}

/// Rejected: not applied; `code` is machine-readable (`invalid_key`,
/// `type_error`, ...), `message` explains.
#[pyclass(module = "statecraft", frozen, eq, hash, get_all)]
#[derive(PartialEq, Eq, Hash, Clone)]
pub struct Rejected {
    /// Machine-readable reason.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

#[pymethods]
impl Rejected {
    #[new]
    fn new(code: String, message: String) -> Self {
        Rejected { code, message }
    }
    #[classattr]
    fn status() -> &'static str {
        "rejected"
    }
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        Ok(PyTuple::new(py, ["code", "message"])?.unbind())
    }
    /// False: not applied.
    #[getter]
    fn ok(&self) -> bool {
        false
    }
    fn __repr__(&self) -> String {
        format!("Rejected(code={:?}, message={:?})", self.code, self.message)
    }
    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (String, String))> {
        Ok((
            py.get_type::<Rejected>().into_any().unbind(),
            (self.code.clone(), self.message.clone()),
        ))
    }
}

macro_rules! unit_result {
    ($name:ident, $status:literal, $ok:literal, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(module = "statecraft", frozen, eq, hash)]
        #[derive(PartialEq, Eq, Hash, Clone)]
        pub struct $name {}

        #[pymethods]
        impl $name {
            #[new]
            fn new() -> Self {
                $name {}
            }
            #[classattr]
            fn status() -> &'static str {
                $status
            }
            #[classattr]
            fn __match_args__(py: Python<'_>) -> Py<PyTuple> {
                PyTuple::empty(py).unbind()
            }
            /// Whether the event's effect is in the state (or it was admitted).
            #[getter]
            fn ok(&self) -> bool {
                $ok
            }
            fn __repr__(&self) -> String {
                concat!(stringify!($name), "()").to_owned()
            }
            fn __reduce__(&self, py: Python<'_>) -> (Py<PyAny>, Py<PyTuple>) {
                (
                    py.get_type::<$name>().into_any().unbind(),
                    PyTuple::empty(py).unbind(),
                )
            }
        }
    };
}

unit_result!(
    Duplicate,
    "duplicate",
    true,
    "Duplicate: the event's id was seen inside the dedup window; not applied again (its first delivery was)."
);
unit_result!(
    Overloaded,
    "overloaded",
    false,
    "Overloaded: refused by a full queue (reject policy) or a timed-out wait; retry later."
);
unit_result!(
    Accepted,
    "accepted",
    true,
    "Accepted: admitted under ack='none'; the outcome is not reported."
);

/// Adds the classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Applied>()?;
    m.add_class::<Conflict>()?;
    m.add_class::<Rejected>()?;
    m.add_class::<Duplicate>()?;
    m.add_class::<Overloaded>()?;
    m.add_class::<Accepted>()?;
    Ok(())
}
