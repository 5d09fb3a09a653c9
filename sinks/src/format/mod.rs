//! Output formats: the Debezium JSON envelope (default) and flat JSON.

pub mod values;
