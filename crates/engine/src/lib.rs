//! Statecraft's engine (being written).

pub mod event;
pub mod limits;
