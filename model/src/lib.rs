//! outflow's data model: what every source produces and every sink consumes.
//!
//! - [`event`]: the ordered stream items (changes, transaction boundaries,
//!   schema changes, snapshot progress) and table schemas;
//! - [`types`]: logical column types, the same whichever database declared them;
//! - [`value`]: column values, exactly as the database holds them;
//! - [`position`]: totally ordered stream positions and their short text form;
//! - [`table_filter`]: which tables `schema.table` patterns select.
//!
//! No I/O, no async runtime, no knowledge of any wire protocol: decoders
//! build these types, sinks read them.

pub mod event;
pub mod position;
pub mod table_filter;
pub mod types;
pub mod value;

pub use event::*;
pub use position::{Position, PositionError};
pub use table_filter::{TableFilter, TablePattern};
pub use types::{ColumnType, Dialect};
pub use value::Value;
