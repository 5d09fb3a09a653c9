//! Database servers of one test's own, so the test can restart (or crash)
//! them without disturbing the shared servers of `scripts/test-services.sh`
//! that other tests use in parallel: [`OwnPg`] (initdb into a temp
//! directory, `wal_level=logical`, restarted with `pg_ctl`) and
//! [`OwnMariaDb`] (`mariadb-install-db`, the binlog as outflow needs it).
//! Each listens on a free loopback port and is stopped when dropped.

use std::process::Stdio;

use crate::harness::{env_var, wait_for, SHORT};

/// A PostgreSQL server of one test's own. Stopped on drop.
pub struct OwnPg {
    dir: tempfile::TempDir,
    port: u16,
    /// Server options besides the usual ones (e.g. a standby's).
    options: String,
}

impl OwnPg {
    fn pg(&self, tool: &str, args: &[&str]) {
        let out = pg_tool(tool).args(args).stdin(Stdio::null()).output().expect("running a PostgreSQL tool");
        assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// initdb and start (waits until the server accepts connections).
    pub fn start() -> OwnPg {
        OwnPg::start_with("")
    }

    /// [`OwnPg::start`] with more server options (`-c name=value ...`).
    pub fn start_with(options: &str) -> OwnPg {
        let pg = OwnPg::new(options.to_string());
        pg.pg("initdb", &["-D", &pg.data(), "-A", "trust", "-U", "postgres"]);
        pg.pg_ctl("start", "fast", 60);
        pg
    }

    /// A hot standby of `primary` (pg_basebackup, streaming replication,
    /// `hot_standby_feedback = on`), started and accepting read-only
    /// connections.
    pub fn standby_of(primary: &OwnPg) -> OwnPg {
        OwnPg::standby_with(primary, &[], "")
    }

    /// [`OwnPg::standby_of`] with more pg_basebackup arguments (e.g. `-C -S
    /// slot`) and server options.
    pub fn standby_with(primary: &OwnPg, basebackup: &[&str], options: &str) -> OwnPg {
        let pg = OwnPg::new(format!("-c hot_standby_feedback=on {options}"));
        let from = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", primary.port);
        let data = pg.data();
        let mut args = vec!["-D", data.as_str(), "-R", "-X", "stream", "-d", &from];
        args.extend_from_slice(basebackup);
        pg.pg("pg_basebackup", &args);
        pg.pg_ctl("start", "fast", 60);
        pg
    }

    /// `pg_ctl promote`: the standby becomes a primary (waits for it).
    pub fn promote(&self) {
        self.pg("pg_ctl", &["-D", &self.data(), "-w", "-t", "60", "promote"]);
    }

    /// The server crashes (`pg_ctl stop -m immediate`) and stays down.
    pub fn crash(&self) {
        self.pg_ctl("stop", "immediate", 60);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A temp directory the `postgres` user owns, and a free port.
    fn new(options: String) -> OwnPg {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let out = std::process::Command::new("chown").arg("postgres").arg(dir.path()).output().unwrap();
            assert!(out.status.success(), "chown: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        OwnPg { dir, port, options }
    }

    fn pg_ctl(&self, action: &str, mode: &str, timeout_secs: u32) {
        let log = self.dir.path().join("server.log").to_string_lossy().into_owned();
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c wal_level=logical -c fsync=off {}",
            self.port,
            self.dir.path().display(),
            self.options
        );
        let timeout = timeout_secs.to_string();
        self.pg("pg_ctl", &["-D", &self.data(), "-l", &log, "-w", "-t", &timeout, "-m", mode, "-o", &opts, action]);
    }

    /// A clean restart (`pg_ctl restart -m fast`): clients are disconnected,
    /// the server checkpoints, and is back when this returns.
    pub fn restart(&self) {
        self.restart_within(60);
    }

    /// [`OwnPg::restart`], failing if stopping and starting again take more
    /// than `secs` each.
    pub fn restart_within(&self, secs: u32) {
        self.pg_ctl("restart", "fast", secs);
    }

    /// A crash and recovery: `pg_ctl stop -m immediate` (no checkpoint, as
    /// after a power cut of the server process; replication slots come back
    /// as of their last checkpoint), then start.
    pub fn crash_restart(&self) {
        self.pg_ctl("stop", "immediate", 60);
        self.pg_ctl("start", "fast", 60);
    }

    /// The superuser's URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnPg {
    fn drop(&mut self) {
        let _ = pg_tool("pg_ctl").args(["-D", &self.data(), "-m", "immediate", "stop"]).stdin(Stdio::null()).output();
    }
}

/// A PostgreSQL tool from `OUTFLOW_TEST_PG_BIN`, run as `postgres` when we
/// are root (PostgreSQL refuses to run as root).
fn pg_tool(tool: &str) -> std::process::Command {
    let bin = format!("{}/{tool}", env_var("OUTFLOW_TEST_PG_BIN"));
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--", &bin]);
        c
    } else {
        std::process::Command::new(bin)
    }
}

/// A MariaDB server of one test's own (row binlog with full images and
/// metadata, GTIDs, UTC). Killed on drop.
pub struct OwnMariaDb {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<std::process::Child>,
}

impl OwnMariaDb {
    /// mariadb-install-db and start; call [`OwnMariaDb::wait_ready`] before use.
    pub fn start() -> OwnMariaDb {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db", "--auth-root-authentication-method=normal"])
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .output()
            .expect("running mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut db = OwnMariaDb { dir, port, server: None };
        db.launch();
        db
    }

    fn launch(&mut self) {
        let d = self.dir.path();
        // Its own tmpdir: a starting server deletes the `#sql*` temp files it
        // finds there, other servers' included.
        std::fs::create_dir_all(d.join("tmp")).expect("the server's tmpdir");
        let child = std::process::Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1", "--server-id=7", "--skip-name-resolve"])
            .args(["--innodb-buffer-pool-size=32M", "--default-time-zone=+00:00", "--log-bin=mysql-bin"])
            .args(["--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL"])
            .args(["--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"])
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--socket={}", d.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!("--port={}", self.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mariadbd");
        self.server = Some(child);
    }

    /// Stops the server (a clean shutdown) and starts it again on the same data.
    pub async fn restart(&mut self) {
        let out = std::process::Command::new("mariadb-admin")
            .args(["--no-defaults", "-uroot", "shutdown"])
            .arg(format!("--socket={}", self.dir.path().join("mysqld.sock").display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "shutdown: {}", String::from_utf8_lossy(&out.stderr));
        if let Some(mut c) = self.server.take() {
            let _ = c.wait();
        }
        self.launch();
        self.wait_ready().await;
    }

    /// kill -9 of mariadbd, then a start on the same data (crash recovery).
    pub async fn crash_restart(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.launch();
        self.wait_ready().await;
    }

    /// Waits until the server accepts connections (bounded by [`SHORT`]).
    pub async fn wait_ready(&self) {
        let url = self.root_url();
        wait_for(SHORT, "mariadbd to accept connections", || {
            let url = url.clone();
            async move {
                match mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap()).await {
                    Ok(conn) => {
                        let _ = conn.disconnect().await;
                        true
                    }
                    Err(_) => false,
                }
            }
        })
        .await;
    }

    /// root over TCP, no database.
    pub fn root_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}?prefer_socket=false", self.port)
    }

    /// root over TCP, database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}?prefer_socket=false", self.port)
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnMariaDb {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends SIGCONT to a process a test froze with SIGSTOP when dropped, even
/// if the test fails while it is stopped.
pub struct Thaw(pub u32);

impl Drop for Thaw {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a pid the test started and a valid signal number.
        unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGCONT) };
    }
}
