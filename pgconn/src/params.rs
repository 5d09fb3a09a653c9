//! Connection parameters from a `postgres://` URL, for both the ordinary SQL
//! connection (tokio-postgres) and the hand-written replication connection.
//!
//! tokio-postgres's own URL parser knows only `sslmode=disable|prefer|require`,
//! so `verify-ca`/`verify-full` and `sslrootcert` are taken out of the query
//! string here and handled by our rustls configuration.

use std::path::PathBuf;

use crate::ConnError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

#[derive(Debug, Clone)]
pub struct PgParams {
    /// The first host; `hosts` lists them all (a libpq-style multi-host
    /// URL, `postgres://u@a:5432,b:5432/db`, tried in order).
    pub host: String,
    pub port: u16,
    pub hosts: Vec<(String, u16)>,
    /// `target_session_attrs=read-write`: only a server that is not in
    /// recovery will do (after a failover, the promoted standby).
    pub read_write: bool,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub ssl_mode: SslMode,
    pub ssl_root_cert: Option<PathBuf>,
    /// The URL with outflow-only query parameters removed, for tokio-postgres.
    sql_config: tokio_postgres::Config,
}

impl PgParams {
    /// The settings of `url`; `what` names it in errors (`[source] url`).
    pub fn from_url(url: &str, what: &str) -> Result<PgParams, ConnError> {
        let bad = |why: String| {
            ConnError::new(
                format!("invalid {what}: {why}"),
                "write it as postgres://user:${PGPASSWORD}@host:5432/dbname",
            )
        };
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut ssl_mode = SslMode::Prefer;
        let mut ssl_root_cert = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => {
                    ssl_mode = match v {
                        "disable" => SslMode::Disable,
                        "prefer" | "allow" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => return Err(bad(format!("unknown sslmode {other:?}"))),
                    }
                }
                "sslrootcert" => ssl_root_cert = Some(PathBuf::from(v)),
                _ => kept.push(pair),
            }
        }
        let tp_mode = match ssl_mode {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            _ => "require",
        };
        kept.push(match tp_mode {
            "disable" => "sslmode=disable",
            "prefer" => "sslmode=prefer",
            _ => "sslmode=require",
        });
        let sql_url = format!("{base}?{}", kept.join("&"));
        let mut sql_config: tokio_postgres::Config =
            sql_url.parse().map_err(|e: tokio_postgres::Error| bad(e.to_string()))?;
        if sql_config.get_application_name().is_none() {
            sql_config.application_name("outflow");
        }
        let ports = sql_config.get_ports();
        let mut hosts = Vec::new();
        for (i, h) in sql_config.get_hosts().iter().enumerate() {
            let tokio_postgres::config::Host::Tcp(h) = h else {
                return Err(bad("unix sockets are not supported; use a TCP host".into()));
            };
            // libpq: one port for every host, or one per host.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            hosts.push((h.clone(), port));
        }
        if hosts.is_empty() {
            hosts.push(("localhost".to_string(), ports.first().copied().unwrap_or(5432)));
        }
        let (host, port) = hosts[0].clone();
        let read_write = sql_config.get_target_session_attrs() == tokio_postgres::config::TargetSessionAttrs::ReadWrite;
        let user = sql_config.get_user().map(str::to_string).ok_or_else(|| bad("no user name".into()))?;
        let password = sql_config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .or_else(|| std::env::var("PGPASSWORD").ok());
        if let (None, Some(p)) = (sql_config.get_password(), &password) {
            sql_config.password(p.clone());
        }
        let dbname = sql_config.get_dbname().unwrap_or(&user).to_string();
        Ok(PgParams { host, port, hosts, read_write, user, password, dbname, ssl_mode, ssl_root_cert, sql_config })
    }

    /// The same settings for one of the hosts only (e.g. to look at a standby
    /// the URL lists).
    pub fn only_host(&self, host: &str, port: u16) -> PgParams {
        let mut c = tokio_postgres::Config::new();
        c.user(&self.user).dbname(&self.dbname).host(host).port(port).application_name("outflow");
        c.ssl_mode(self.sql_config.get_ssl_mode());
        if let Some(p) = &self.password {
            c.password(p.clone());
        }
        if let Some(t) = self.sql_config.get_connect_timeout() {
            c.connect_timeout(*t);
        }
        PgParams {
            host: host.to_string(),
            port,
            hosts: vec![(host.to_string(), port)],
            read_write: false,
            sql_config: c,
            ..self.clone()
        }
    }

    pub fn sql_config(&self) -> &tokio_postgres::Config {
        &self.sql_config
    }

    /// `host:port/db` (`a:1,b:2/db` with several hosts) for messages, never the password.
    pub fn display(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        format!("{}/{}", hosts.join(","), self.dbname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_and_ssl_modes() {
        let p =
            PgParams::from_url("postgres://cdc:pw@db.example:6543/app?sslmode=verify-full&sslrootcert=/ca.pem", "url")
                .unwrap();
        assert_eq!((p.host.as_str(), p.port, p.user.as_str(), p.dbname.as_str()), ("db.example", 6543, "cdc", "app"));
        assert_eq!(p.password.as_deref(), Some("pw"));
        assert_eq!(p.ssl_mode, SslMode::VerifyFull);
        assert_eq!(p.ssl_root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(PgParams::from_url("postgres://u@h/d", "url").unwrap().ssl_mode, SslMode::Prefer);
        assert!(PgParams::from_url("postgres://u@h/d?sslmode=sometimes", "url").is_err());
    }

    #[test]
    fn several_hosts_with_target_session_attrs() {
        let p = PgParams::from_url("postgres://u@a:5432,b:6543/d?target_session_attrs=read-write", "url").unwrap();
        assert_eq!(p.hosts, [("a".to_string(), 5432), ("b".to_string(), 6543)]);
        assert!(p.read_write);
        assert_eq!(p.display(), "a:5432,b:6543/d");
        // In a URL a host without a port has the default one (libpq).
        let default_port = PgParams::from_url("postgres://u@a,b:7000/d", "url").unwrap();
        assert_eq!(default_port.hosts, [("a".to_string(), 5432), ("b".to_string(), 7000)]);
        assert!(!default_port.read_write);
    }
}
