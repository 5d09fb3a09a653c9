//! Column-oriented buffering shared by the sinks that write Arrow record
//! batches (Parquet files, Iceberg data files): the change-log row buffer
//! and its metadata columns ([`rows`]).

pub mod rows;
