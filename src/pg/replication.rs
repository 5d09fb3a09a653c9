//! The replication connection, hand-written on postgres-protocol because
//! tokio-postgres 0.7 cannot do CopyBoth.
//!
//! Covers: SSLRequest and TLS; startup with `replication=database` and the
//! session settings pgoutput's text output depends on (UTC, ISO dates,
//! postgres-style intervals, float digits that round-trip); trust, cleartext,
//! md5 and SCRAM-SHA-256 authentication; simple queries (IDENTIFY_SYSTEM,
//! CREATE_REPLICATION_SLOT); START_REPLICATION and the CopyBoth stream of
//! XLogData and keepalive messages; standby status updates.
//!
//! Surprises handled: the server may send NoticeResponse/ParameterStatus at
//! any time; an ErrorResponse after CopyBoth started ends the stream; reads
//! are buffered so a burst of small messages costs one syscall.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, BytesMut};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use outflow_pgconn::{tls, PgParams, SslMode};
use super::sql::{connection_lost, ident};
use crate::error::{Error, Result};

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

pub struct ReplicationConn {
    stream: Box<dyn Stream>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    display: String,
}

/// A server error with its SQLSTATE, kept so callers can explain it.
#[derive(Debug, Clone)]
pub struct ServerError {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ServerError {
    fn from_body(body: ErrorResponseBody) -> ServerError {
        use fallible_iterator::FallibleIterator;
        let mut e = ServerError { code: String::new(), message: String::new(), detail: None, hint: None };
        let mut fields = body.fields();
        while let Ok(Some(f)) = fields.next() {
            let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
            match f.type_() {
                b'C' => e.code = v,
                b'M' => e.message = v,
                b'D' => e.detail = Some(v),
                b'H' => e.hint = Some(v),
                _ => {}
            }
        }
        e
    }
}

/// One message of the replication stream.
pub enum ReplicationMessage {
    /// XLogData: `wal_start` is the LSN of the record the data came from.
    XLogData { wal_start: u64, data: bytes::Bytes },
    /// Primary keepalive: the server has sent everything before `wal_end`.
    Keepalive { wal_end: u64, reply_requested: bool },
}

impl ReplicationConn {
    /// Connects to the URL's hosts in order, the first that answers (with
    /// `target_session_attrs=read-write`, the first not in recovery: after
    /// a failover, the promoted standby).
    pub async fn connect(params: &PgParams) -> Result<ReplicationConn> {
        let mut last = None;
        for (host, port) in &params.hosts {
            match ReplicationConn::connect_to(params, host, *port).await {
                Ok(mut conn) if params.read_write => {
                    let rows = conn.simple_query("SELECT pg_is_in_recovery()").await.map_err(|e| match e {
                        QueryError::Io(e) => e,
                        QueryError::Server(se) => Error::transient(format!(
                            "cannot ask {host}:{port} whether it is a standby: {}",
                            se.message
                        )),
                    })?;
                    if rows.first().and_then(|r| r.first().cloned().flatten()).as_deref() == Some("f") {
                        return Ok(conn);
                    }
                    conn.close().await;
                    last = Some(Error::transient(format!(
                        "postgres at {host}:{port} is a standby, and [source] url asks for target_session_attrs=read-write"
                    )));
                }
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::config("[source] url names no host", "e.g. postgres://user@host:5432/db")))
    }

    async fn connect_to(params: &PgParams, host: &str, port: u16) -> Result<ReplicationConn> {
        let display = format!("{host}:{port}/{}", params.dbname);
        let tcp = TcpStream::connect((host, port)).await.map_err(|e| {
            Error::transient(format!("cannot connect to postgres at {display}: {e}"))
                .with_hint("check the host and port in [source] url and that the server is running")
        })?;
        tcp.set_nodelay(true).ok();
        let stream = negotiate_tls(tcp, params, host).await?;
        let mut conn = ReplicationConn {
            stream,
            read_buf: BytesMut::with_capacity(1 << 16),
            write_buf: BytesMut::with_capacity(1024),
            display,
        };
        conn.startup(params).await?;
        Ok(conn)
    }

    async fn startup(&mut self, params: &PgParams) -> Result<()> {
        let startup_params = [
            ("user", params.user.as_str()),
            ("database", params.dbname.as_str()),
            ("replication", "database"),
            ("application_name", "outflow"),
            ("client_encoding", "UTF8"),
            ("TimeZone", "UTC"),
            ("DateStyle", "ISO"),
            ("IntervalStyle", "postgres"),
            ("extra_float_digits", "3"),
            ("bytea_output", "hex"),
        ];
        frontend::startup_message(startup_params.iter().copied(), &mut self.write_buf).map_err(io_err)?;
        self.flush().await?;
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            match self.read_message().await? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    let pw = self.password(params)?;
                    frontend::password_message(pw.as_bytes(), &mut self.write_buf).map_err(io_err)?;
                    self.flush().await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let pw = self.password(params)?;
                    let hash = md5_hash(params.user.as_bytes(), pw.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write_buf).map_err(io_err)?;
                    self.flush().await?;
                }
                Message::AuthenticationSasl(body) => {
                    use fallible_iterator::FallibleIterator;
                    let mut mechanisms = body.mechanisms();
                    let mut has_scram = false;
                    while let Ok(Some(m)) = mechanisms.next() {
                        has_scram |= m == sasl::SCRAM_SHA_256;
                    }
                    if !has_scram {
                        return Err(Error::fatal(
                            format!("postgres at {} offers no SASL mechanism outflow supports", self.display),
                            "allow scram-sha-256 or md5 for this user in pg_hba.conf",
                        ));
                    }
                    let pw = self.password(params)?;
                    let s = sasl::ScramSha256::new(pw.as_bytes(), sasl::ChannelBinding::unsupported());
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut self.write_buf)
                        .map_err(io_err)?;
                    self.flush().await?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| protocol_error("unexpected SASL continue"))?;
                    s.update(body.data()).map_err(|e| auth_failed(params, &e.to_string()))?;
                    frontend::sasl_response(s.message(), &mut self.write_buf).map_err(io_err)?;
                    self.flush().await?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let mut s = scram.take().ok_or_else(|| protocol_error("unexpected SASL final"))?;
                    s.finish(body.data()).map_err(|e| auth_failed(params, &e.to_string()))?;
                }
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ErrorResponse(body) => {
                    let e = ServerError::from_body(body);
                    return Err(match e.code.as_str() {
                        "28P01" | "28000" => auth_failed(params, &e.message),
                        "3D000" => Error::fatal(
                            format!("database {:?} does not exist on {}", params.dbname, self.display),
                            "fix the database name in [source] url",
                        ),
                        "42501" => Error::fatal(
                            format!(
                                "user {:?} lacks the REPLICATION privilege on {}: {}",
                                params.user, self.display, e.message
                            ),
                            format!(
                                "ALTER ROLE {} WITH REPLICATION; (on managed services, grant their replication role)",
                                ident(&params.user)
                            ),
                        ),
                        code if connection_lost(code) => Error::transient(format!(
                            "cannot connect to postgres at {}: {} (sqlstate {code})",
                            self.display, e.message
                        )),
                        _ => server_error("replication connection startup failed", &e),
                    });
                }
                Message::AuthenticationKerberosV5
                | Message::AuthenticationScmCredential
                | Message::AuthenticationGss
                | Message::AuthenticationSspi => {
                    return Err(Error::fatal(
                        format!(
                            "postgres at {} asks for an authentication method outflow does not support",
                            self.display
                        ),
                        "use trust, md5, password or scram-sha-256 for this user in pg_hba.conf",
                    ))
                }
                _ => {}
            }
        }
    }

    fn password(&self, params: &PgParams) -> Result<String> {
        params.password.clone().ok_or_else(|| {
            Error::config(
                format!("postgres at {} asks for a password for user {:?} and none is set", self.display, params.user),
                "put it in the url (postgres://user:${PGPASSWORD}@...) or export PGPASSWORD",
            )
        })
    }

    /// Runs a simple query and returns its rows as text columns.
    pub async fn simple_query(&mut self, sql: &str) -> std::result::Result<Vec<Vec<Option<String>>>, QueryError> {
        frontend::query(sql, &mut self.write_buf).map_err(|e| QueryError::Io(io_err(e)))?;
        self.flush().await.map_err(QueryError::Io)?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read_message().await.map_err(QueryError::Io)? {
                Message::DataRow(body) => {
                    use fallible_iterator::FallibleIterator;
                    let buf = body.buffer();
                    let mut row = Vec::new();
                    let mut ranges = body.ranges();
                    while let Ok(Some(r)) = ranges.next() {
                        row.push(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned()));
                    }
                    rows.push(row);
                }
                Message::ErrorResponse(body) => error = Some(ServerError::from_body(body)),
                Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(QueryError::Server(e)),
            None => Ok(rows),
        }
    }

    /// Sends START_REPLICATION and waits for the server to enter CopyBoth.
    pub async fn start_replication(&mut self, sql: &str) -> std::result::Result<(), QueryError> {
        frontend::query(sql, &mut self.write_buf).map_err(|e| QueryError::Io(io_err(e)))?;
        self.flush().await.map_err(QueryError::Io)?;
        loop {
            // postgres-protocol does not know CopyBothResponse ('W'): take it by hand.
            self.fill_message().await.map_err(QueryError::Io)?;
            if self.read_buf[0] == b'W' {
                let len = self.buffered_message_len().unwrap_or(0);
                self.read_buf.advance(len);
                return Ok(());
            }
            if let Message::ErrorResponse(body) = self.read_message().await.map_err(QueryError::Io)? {
                let e = ServerError::from_body(body);
                // drain to ReadyForQuery so the connection stays usable
                while !matches!(self.read_message().await.map_err(QueryError::Io)?, Message::ReadyForQuery(_)) {}
                return Err(QueryError::Server(e));
            }
        }
    }

    /// True when a complete message is already buffered (no read needed).
    pub fn has_buffered_message(&self) -> bool {
        self.buffered_message_len().is_some()
    }

    /// Length (tag included) of the first buffered message, if it is complete.
    fn buffered_message_len(&self) -> Option<usize> {
        if self.read_buf.len() < 5 {
            return None;
        }
        let len = i32::from_be_bytes([self.read_buf[1], self.read_buf[2], self.read_buf[3], self.read_buf[4]]);
        let total = usize::try_from(len).ok()?.checked_add(1)?;
        (len >= 4 && self.read_buf.len() >= total).then_some(total)
    }

    /// Reads until at least one complete message is buffered.
    async fn fill_message(&mut self) -> Result<()> {
        while !self.has_buffered_message() {
            self.read_more().await?;
        }
        Ok(())
    }

    async fn read_more(&mut self) -> Result<()> {
        if self.read_buf.capacity() - self.read_buf.len() < 8192 {
            self.read_buf.reserve(1 << 16);
        }
        let n = self
            .stream
            .read_buf(&mut self.read_buf)
            .await
            .map_err(|e| Error::transient(format!("lost the replication connection to {}: {e}", self.display)))?;
        if n == 0 {
            return Err(Error::transient(format!("postgres at {} closed the replication connection", self.display)));
        }
        Ok(())
    }

    /// The next message of the CopyBoth stream; `None` when the server ended it.
    pub async fn next_replication_message(&mut self) -> Result<Option<ReplicationMessage>> {
        loop {
            match self.read_message().await? {
                Message::CopyData(body) => {
                    let mut data = body.into_bytes();
                    if data.is_empty() {
                        return Err(protocol_error("empty CopyData"));
                    }
                    match data[0] {
                        b'w' if data.len() >= 25 => {
                            data.advance(1);
                            let wal_start = data.get_u64();
                            let _wal_end = data.get_u64();
                            let _send_time = data.get_i64();
                            return Ok(Some(ReplicationMessage::XLogData { wal_start, data }));
                        }
                        b'k' if data.len() >= 18 => {
                            data.advance(1);
                            let wal_end = data.get_u64();
                            let _send_time = data.get_i64();
                            let reply_requested = data.get_u8() == 1;
                            return Ok(Some(ReplicationMessage::Keepalive { wal_end, reply_requested }));
                        }
                        other => return Err(protocol_error(&format!("unknown CopyData kind {other:#x}"))),
                    }
                }
                Message::CopyDone => return Ok(None),
                Message::ErrorResponse(body) => {
                    let e = ServerError::from_body(body);
                    return Err(stream_error(&e));
                }
                _ => {}
            }
        }
    }

    /// Sends a standby status update: `flushed` is what every sink has made
    /// durable; it is reported as written, flushed and applied alike.
    pub async fn send_status(&mut self, flushed: u64, reply_requested: bool) -> Result<()> {
        let now_us = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        body.put_u64(flushed);
        body.put_u64(flushed);
        body.put_u64(flushed);
        body.put_i64(now_us - PG_EPOCH_OFFSET_US);
        body.put_u8(u8::from(reply_requested));
        frontend::CopyData::new(&body[..]).map_err(io_err)?.write(&mut self.write_buf);
        self.flush().await
    }

    /// Ends the stream politely (CopyDone, Terminate); errors are ignored.
    pub async fn close(mut self) {
        frontend::copy_done(&mut self.write_buf);
        frontend::terminate(&mut self.write_buf);
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    async fn flush(&mut self) -> Result<()> {
        let display = &self.display;
        self.stream
            .write_all(&self.write_buf)
            .await
            .map_err(|e| Error::transient(format!("lost the replication connection to {display}: {e}")))?;
        self.write_buf.clear();
        self.stream
            .flush()
            .await
            .map_err(|e| Error::transient(format!("lost the replication connection to {display}: {e}")))
    }

    async fn read_message(&mut self) -> Result<Message> {
        loop {
            match Message::parse(&mut self.read_buf) {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => return Err(protocol_error(&e.to_string())),
            }
            self.read_more().await?;
        }
    }
}

/// Errors of a query on the replication connection: the server's own
/// (kept whole so the caller can explain it) or the connection's.
pub enum QueryError {
    Server(ServerError),
    Io(Error),
}

async fn negotiate_tls(mut tcp: TcpStream, params: &PgParams, host: &str) -> Result<Box<dyn Stream>> {
    let Some(config) = tls::client_config(params)? else {
        return Ok(Box::new(tcp));
    };
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    let display = params.display();
    let io = |e: std::io::Error| Error::transient(format!("tls negotiation with {display} failed: {e}"));
    tcp.write_all(&buf).await.map_err(io)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(io)?;
    if answer[0] != b'S' {
        if params.ssl_mode == SslMode::Prefer {
            return Ok(Box::new(tcp));
        }
        return Err(Error::fatal(
            format!("postgres at {display} does not accept TLS but sslmode asks for it"),
            "enable ssl on the server, or use sslmode=prefer/disable in [source] url",
        ));
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
        Error::config(format!("host {host:?} is not a valid TLS server name: {e}"), "use a DNS name or IP")
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = connector.connect(name, tcp).await.map_err(|e| {
        Error::fatal(
            format!("tls handshake with {display} failed: {e}"),
            "check sslmode and sslrootcert in [source] url (verify-full needs the CA that signed the server certificate)",
        )
    })?;
    Ok(Box::new(tls))
}

fn io_err(e: std::io::Error) -> Error {
    Error::transient(format!("replication protocol: {e}"))
}

fn protocol_error(what: &str) -> Error {
    Error::fatal(format!("unexpected message from postgres: {what}"), "this is a bug; please report it")
}

fn auth_failed(params: &PgParams, detail: &str) -> Error {
    Error::fatal(
        format!("authentication failed for user {:?} at {}: {detail}", params.user, params.display()),
        "check the user and password in [source] url (or PGPASSWORD) and pg_hba.conf",
    )
}

pub fn server_error(what: &str, e: &ServerError) -> Error {
    let mut hint = e.hint.clone().unwrap_or_else(|| "see the postgres server log".to_string());
    if let Some(d) = &e.detail {
        hint = format!("{d}; {hint}");
    }
    Error::fatal(format!("{what}: {} (sqlstate {})", e.message, e.code), hint)
}

fn stream_error(e: &ServerError) -> Error {
    if connection_lost(&e.code) {
        Error::transient(format!("postgres ended the replication stream: {} (sqlstate {})", e.message, e.code))
    } else {
        server_error("postgres ended the replication stream", e)
    }
}
