//! End-to-end tests: the real `outflow` binary, a real config file, real
//! throwaway servers from `scripts/test-services.sh`, and the sink's output
//! read back by an independent reader. Run through `scripts/test.sh`.
//!
//! One test binary (fast to link, one process), one module per area, e.g.
//! `admin` (the HTTP server's health, status and metrics), `bad_input` and
//! `bad_config`/`bad_state`/`bad_source`/`bad_mysql`/`bad_disk` (the
//! bad-input matrix: each bad input gives its error line and hint and exit
//! code, with the state intact), `check_sinks` (`outflow check`'s ✓/✗ line
//! and fix for each sink) and `pg_stream`
//! (PostgreSQL changes arrive complete, ordered and rendered the Debezium
//! way).

mod admin;
mod avro;
mod bad_config;
mod bad_disk;
mod bad_input;
mod bad_mysql;
mod bad_source;
mod bad_state;
mod chaos;
mod check;
mod check_sinks;
mod cli;
mod console;
mod debezium;
mod durability;
mod events;
mod failover;
mod fanout;
mod harness;
mod http;
mod iceberg;
mod iceberg_upsert;
mod init;
mod intact;
mod kafka;
mod kill9;
mod kinesis;
mod least_privilege;
mod lifecycle;
mod mysql_harness;
mod mysql_signals;
mod mysql_snapshot;
mod mysql_stream;
mod mysql_tls;
mod nats;
mod offsets;
mod outage;
mod own_servers;
mod parquet;
mod parquet_mysql;
mod pg_apply;
mod pg_binary;
mod pg_partitions;
mod pg_stream;
mod pg_types;
mod proxy;
mod rabbitmq;
mod redis;
mod resilience;
mod secrets;
mod signals;
mod snapshot;
mod standby;
mod transforms;
