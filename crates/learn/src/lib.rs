//! Statecraft's learning path (being written).
