//! Statecraft's embedded store (being written).
