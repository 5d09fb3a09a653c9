//! outflow: change-data-capture from PostgreSQL to sinks, with offsets that
//! survive any restart. The binary (`src/main.rs`) is a thin CLI over this.
