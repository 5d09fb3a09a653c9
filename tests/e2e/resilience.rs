//! Outages and shutdowns through the real binary: a network cut in the
//! middle of a large transaction (a TCP proxy between outflow and the test
//! server, PostgreSQL and MariaDB), and SIGTERM during a snapshot and during
//! busy streaming. Each ends with every change exactly once in the JSONL sink.
