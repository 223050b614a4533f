//! Validation limits and the depth-checked decoder (placeholder: being written).
use serde_json::Value;

/// Approximate size of a JSON value in bytes (placeholder).
pub fn approx_value_bytes(_v: &Value) -> usize {
    16
}
