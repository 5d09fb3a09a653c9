//! The writer of the chaos run and the history it keeps: random transactions
//! committed into `acct (id, ver, val)` and `ledger (id, acct, ver, val)` —
//! inserts (ver 0), updates (ver + 1), deletes, two-table transactions and,
//! once, one large transaction of 5000 inserts — the same history in
//! PostgreSQL and in MariaDB ([`Dialect`] holds the few SQL differences).
//! `val` is a function of (id, ver), so a wrong value is visible.
//!
//! The writer records a transaction only after its COMMIT returned. It runs
//! each transaction under a gate ([`Writer::gate`]) that the fault loop takes
//! while it restarts the database, so no commit is ever in doubt; after a
//! restart ([`Writer::generation`] moved on) it connects again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use rand::{Rng, SeedableRng};

use crate::harness::SHORT;

/// One committed change as the writer knows it: (op, ver); deletes carry no
/// version (PostgreSQL's old row holds only the key).
pub type Expected = Vec<(String, Option<i64>)>;

pub fn val(id: i64, ver: i64) -> String {
    format!("v{}", (id * 7919 + ver * 104_729) % 1_000_003)
}

/// The writer's history, per (table, key), in commit order.
#[derive(Default)]
pub struct History {
    pub per_key: BTreeMap<(String, i64), Expected>,
    pub transactions: u64,
}

impl History {
    fn push(&mut self, table: &str, id: i64, op: &str, ver: Option<i64>) {
        self.per_key.entry((table.to_string(), id)).or_default().push((op.to_string(), ver));
    }

    /// Events written, over all keys.
    pub fn events(&self) -> u64 {
        self.per_key.values().map(|v| v.len() as u64).sum()
    }

    /// The rows `table` must hold at the end: (id, ver) of every key whose
    /// last change is not a delete.
    pub fn final_rows(&self, table: &str) -> BTreeMap<i64, i64> {
        let mut rows = BTreeMap::new();
        for ((t, id), changes) in &self.per_key {
            if t != table {
                continue;
            }
            let ver = changes.iter().fold(None, |_, (op, ver)| if op == "d" { None } else { *ver });
            if let Some(ver) = ver {
                rows.insert(*id, ver);
            }
        }
        rows
    }
}

/// The SQL differences between the two sources.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Dialect {
    Postgres,
    MariaDb,
}

impl Dialect {
    /// Creates both tables (MariaDB: in database `app`, which it creates).
    pub fn ddl(self) -> &'static str {
        match self {
            Dialect::Postgres => {
                "CREATE TABLE acct (id bigint PRIMARY KEY, ver int NOT NULL, val text NOT NULL);
                 CREATE TABLE ledger (id bigint PRIMARY KEY, acct bigint NOT NULL, ver int NOT NULL, val text NOT NULL)"
            }
            Dialect::MariaDb => {
                "CREATE DATABASE app;
                 CREATE TABLE app.acct (id bigint PRIMARY KEY, ver int NOT NULL, val varchar(32) NOT NULL);
                 CREATE TABLE app.ledger (id bigint PRIMARY KEY, acct bigint NOT NULL, ver int NOT NULL, \
                 val varchar(32) NOT NULL)"
            }
        }
    }

    fn transaction(self, statements: &[String]) -> String {
        let begin = match self {
            Dialect::Postgres => "BEGIN",
            Dialect::MariaDb => "START TRANSACTION",
        };
        format!("{begin}; {}; COMMIT", statements.join("; "))
    }

    fn insert_range(self, from: i64, to: i64) -> String {
        match self {
            Dialect::Postgres => format!(
                "INSERT INTO acct SELECT g, 0, 'v' || ((g * 7919) % 1000003) FROM generate_series({from}, {to}) g"
            ),
            Dialect::MariaDb => {
                format!("INSERT INTO acct SELECT seq, 0, CONCAT('v', (seq * 7919) % 1000003) FROM seq_{from}_to_{to}")
            }
        }
    }
}

/// A plain SQL connection of the writer's (never through outflow's proxy).
pub enum Conn {
    Pg(tokio_postgres::Client),
    My(mysql_async::Conn),
}

impl Conn {
    /// Connects to `url`, retrying for a while (the server may be starting).
    pub async fn connect(dialect: Dialect, url: &str) -> Conn {
        let deadline = std::time::Instant::now() + SHORT;
        loop {
            let conn = match dialect {
                Dialect::Postgres => tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .map(|(client, conn)| {
                        tokio::spawn(conn);
                        Conn::Pg(client)
                    })
                    .map_err(|e| e.to_string()),
                Dialect::MariaDb => mysql_async::Conn::new(mysql_async::Opts::from_url(url).expect("a mysql url"))
                    .await
                    .map(Conn::My)
                    .map_err(|e| e.to_string()),
            };
            match conn {
                Ok(conn) => return conn,
                Err(e) if std::time::Instant::now() > deadline => panic!("writer cannot connect to {url}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn execute(&mut self, sql: &str) {
        let result = match self {
            Conn::Pg(client) => client.batch_execute(sql).await.map_err(|e| crate::harness::error_text(&e)),
            Conn::My(conn) => conn.query_drop(sql).await.map_err(|e| e.to_string()),
        };
        result.unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"));
    }
}

/// What the writer shares with the fault loop.
#[derive(Clone)]
pub struct Writer {
    pub stop: Arc<AtomicBool>,
    pub history: Arc<Mutex<History>>,
    /// Held for each transaction; the fault loop takes it to restart the database.
    pub gate: Arc<tokio::sync::Mutex<()>>,
    /// Moved on by the fault loop after a restart: the writer connects again.
    pub generation: Arc<AtomicU64>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            stop: Arc::new(AtomicBool::new(false)),
            history: Arc::new(Mutex::new(History::default())),
            gate: Arc::new(tokio::sync::Mutex::new(())),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Commits random transactions (drawn from `seed`) into `url` until
    /// [`Writer::stop`] is set.
    pub async fn run(self, dialect: Dialect, url: String, seed: u64) {
        let mut conn = Conn::connect(dialect, &url).await;
        let mut connected = self.generation.load(Ordering::SeqCst);
        let mut live: Vec<(i64, i64)> = Vec::new(); // (id, ver)
        let (mut next_id, mut next_ledger, mut big_done) = (1i64, 1i64, false);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        while !self.stop.load(Ordering::Relaxed) {
            let gate = self.gate.lock().await;
            if self.generation.load(Ordering::SeqCst) != connected {
                conn = Conn::connect(dialect, &url).await;
                connected = self.generation.load(Ordering::SeqCst);
            }
            let roll = rng.random_range(0..100);
            let mut h = Vec::new();
            let sql = if !big_done && next_id > 300 {
                big_done = true;
                let (from, to) = (next_id, next_id + 4999);
                next_id += 5000;
                for id in from..=to {
                    live.push((id, 0));
                    h.push(("acct", id, "c", Some(0)));
                }
                dialect.insert_range(from, to)
            } else if roll < 40 || live.is_empty() {
                let id = next_id;
                next_id += 1;
                live.push((id, 0));
                h.push(("acct", id, "c", Some(0)));
                format!("INSERT INTO acct VALUES ({id}, 0, '{}')", val(id, 0))
            } else if roll < 70 {
                let i = rng.random_range(0..live.len());
                live[i].1 += 1;
                let (id, ver) = live[i];
                h.push(("acct", id, "u", Some(ver)));
                format!("UPDATE acct SET ver = {ver}, val = '{}' WHERE id = {id}", val(id, ver))
            } else if roll < 80 {
                let (id, _) = live.swap_remove(rng.random_range(0..live.len()));
                h.push(("acct", id, "d", None));
                format!("DELETE FROM acct WHERE id = {id}")
            } else {
                let i = rng.random_range(0..live.len());
                live[i].1 += 1;
                let (id, ver) = live[i];
                let lid = next_ledger;
                next_ledger += 1;
                h.push(("acct", id, "u", Some(ver)));
                h.push(("ledger", lid, "c", Some(ver)));
                dialect.transaction(&[
                    format!("UPDATE acct SET ver = {ver}, val = '{}' WHERE id = {id}", val(id, ver)),
                    format!("INSERT INTO ledger VALUES ({lid}, {id}, {ver}, '{}')", val(lid, ver)),
                ])
            };
            conn.execute(&sql).await;
            {
                let mut history = self.history.lock().unwrap();
                history.transactions += 1;
                for (table, id, op, ver) in h {
                    history.push(table, id, op, ver);
                }
            }
            drop(gate);
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..3))).await;
        }
    }
}
