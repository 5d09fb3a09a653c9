//! The database under chaos: a server of the test's own ([`OwnPg`] or
//! [`OwnMariaDb`], so restarting it disturbs no other test) behind a TCP
//! proxy that outflow connects through (the writer connects directly). It
//! carries out the database-side faults: the replication connection killed
//! by the server (walsender terminated; MariaDB's `Binlog Dump` thread
//! `KILL`ed), every outflow connection cut at the proxy, and a restart,
//! clean or after a crash of the server process.

use mysql_async::prelude::Queryable;

use super::check::{my_rows, pg_rows, Rows};
use super::history::{Conn, Dialect};
use crate::harness::{wait_for, SHORT};
use crate::own_servers::{OwnMariaDb, OwnPg};
use crate::proxy::Proxy;

/// The slot and publication name (PostgreSQL), the replica id (MariaDB).
const SLOT: &str = "chaos";
const SERVER_ID: u32 = 4711;

enum Server {
    Pg(OwnPg),
    My(OwnMariaDb),
}

pub struct ChaosSource {
    pub dialect: Dialect,
    server: Server,
    proxy: Proxy,
}

impl ChaosSource {
    /// Starts the server with both tables created, and the proxy in front.
    pub async fn start(dialect: Dialect) -> ChaosSource {
        let server = match dialect {
            Dialect::Postgres => Server::Pg(tokio::task::block_in_place(OwnPg::start)),
            Dialect::MariaDb => {
                let server = tokio::task::block_in_place(OwnMariaDb::start);
                server.wait_ready().await;
                Server::My(server)
            }
        };
        let addr = match &server {
            Server::Pg(pg) => pg.addr(),
            Server::My(my) => my.addr(),
        };
        let proxy = Proxy::start(&addr).await;
        let source = ChaosSource { dialect, server, proxy };
        let admin = match &source.server {
            Server::Pg(pg) => pg.url(),
            Server::My(my) => my.root_url(),
        };
        Conn::connect(dialect, &admin).await.execute(dialect.ddl()).await;
        source
    }

    /// The label in the report.
    pub fn label(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "PostgreSQL",
            Dialect::MariaDb => "MariaDB",
        }
    }

    /// The schema (PostgreSQL) or database (MariaDB) of the tables: also
    /// their schema in the lake, in Kafka topic names and in the apply target.
    pub fn schema(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "public",
            Dialect::MariaDb => "app",
        }
    }

    /// The writer's URL: straight to the server, never through the proxy.
    pub fn writer_url(&self) -> String {
        match &self.server {
            Server::Pg(pg) => pg.url(),
            Server::My(my) => my.url("app"),
        }
    }

    /// The `[source]` section: outflow connects through the proxy.
    pub fn source_toml(&self) -> String {
        let port = self.proxy.port();
        match self.dialect {
            Dialect::Postgres => format!(
                "[source]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:{port}/postgres\"\n\
                 tables = [\"public.acct\", \"public.ledger\"]\nslot = \"{SLOT}\"\npublication = \"{SLOT}\"\n"
            ),
            // mysql_async moves loopback connections to the server's Unix
            // socket unless told not to, which would bypass the proxy.
            Dialect::MariaDb => format!(
                "[source]\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:{port}/app?prefer_socket=false\"\n\
                 tables = [\"app.acct\", \"app.ledger\"]\nserver_id = {SERVER_ID}\n"
            ),
        }
    }

    async fn pg(&self) -> tokio_postgres::Client {
        let Server::Pg(pg) = &self.server else { unreachable!("a PostgreSQL query on MariaDB") };
        match Conn::connect(Dialect::Postgres, &pg.url()).await {
            Conn::Pg(client) => client,
            Conn::My(_) => unreachable!(),
        }
    }

    async fn my(&self) -> mysql_async::Conn {
        let Server::My(my) = &self.server else { unreachable!("a MariaDB query on PostgreSQL") };
        match Conn::connect(Dialect::MariaDb, &my.root_url()).await {
            Conn::My(conn) => conn,
            Conn::Pg(_) => unreachable!(),
        }
    }

    /// After outflow exited or was killed: waits until the server let go of
    /// its replication connection (PostgreSQL keeps the slot active until
    /// the walsender notices; a new run would find it busy). MariaDB replaces
    /// a dump thread when the same replica id connects again.
    pub async fn wait_released(&self) {
        if self.dialect == Dialect::Postgres {
            let client = self.pg().await;
            wait_for(SHORT, "the walsender to release the slot", || async {
                let rows = client
                    .query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active", &[&SLOT])
                    .await
                    .expect("reading pg_replication_slots");
                rows.is_empty()
            })
            .await;
        }
    }

    /// The server ends outflow's replication connection; false if there was
    /// none at that moment (outflow was reconnecting).
    pub async fn kill_replication_connection(&self) -> bool {
        match self.dialect {
            Dialect::Postgres => {
                let rows = self
                    .pg()
                    .await
                    .query(
                        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                         WHERE slot_name = $1 AND active",
                        &[&SLOT],
                    )
                    .await
                    .expect("terminating the walsender");
                !rows.is_empty()
            }
            Dialect::MariaDb => {
                let mut conn = self.my().await;
                let ids: Vec<u64> = conn
                    .query("SELECT id FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'")
                    .await
                    .expect("reading the process list");
                for id in &ids {
                    // The thread may have ended meanwhile.
                    let _ = conn.query_drop(format!("KILL {id}")).await;
                }
                let _ = conn.disconnect().await;
                !ids.is_empty()
            }
        }
    }

    /// Ends every connection outflow has open to the server, at the proxy.
    pub fn cut_connections(&self) {
        self.proxy.cut_now();
    }

    /// Restarts the server: cleanly, or after killing its process (`crash`).
    /// Returns once it accepts connections again.
    pub async fn restart(&mut self, crash: bool) {
        match &mut self.server {
            Server::Pg(pg) if crash => tokio::task::block_in_place(|| pg.crash_restart()),
            Server::Pg(pg) => tokio::task::block_in_place(|| pg.restart()),
            Server::My(my) if crash => my.crash_restart().await,
            Server::My(my) => tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(my.restart());
            }),
        }
    }

    /// The source's rows of `table` (`acct` or `ledger`), read with plain SQL.
    pub async fn rows(&self, table: &str) -> Rows {
        match &self.server {
            Server::Pg(_) => pg_rows(&self.pg().await, &format!("public.{table}")).await,
            Server::My(my) => my_rows(&my.root_url(), &format!("app.{table}")).await,
        }
    }
}
