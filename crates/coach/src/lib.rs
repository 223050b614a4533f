//! Statecraft's coach (being written).
