//! PostgreSQL connection settings shared by the source (SQL and the
//! hand-written replication connection) and the PostgreSQL apply sink:
//! libpq-style URLs with `sslmode` and `sslrootcert` ([`params`]) and their
//! TLS with rustls ([`tls`]), so both ends of a pipeline take the same URL
//! keys and verify servers the same way.

pub mod params;
pub mod tls;

pub use params::{PgParams, SslMode};

/// A connection setting that cannot work: what is wrong, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnError {
    pub message: String,
    pub hint: String,
}

impl ConnError {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> ConnError {
        ConnError { message: message.into(), hint: hint.into() }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

/// Opens an ordinary SQL session with `params` (TLS as its `sslmode`
/// says) and drives the connection on a task of the current runtime.
/// The outer error is a setting that cannot work; the inner one what the
/// server or the network said.
pub async fn connect(params: &PgParams) -> Result<Result<tokio_postgres::Client, tokio_postgres::Error>, ConnError> {
    let config = params.sql_config();
    Ok(match tls::client_config(params)? {
        Some(tls) => {
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone());
            config.connect(connector).await.map(|(client, conn)| {
                tokio::spawn(conn);
                client
            })
        }
        None => config.connect(tokio_postgres::NoTls).await.map(|(client, conn)| {
            tokio::spawn(conn);
            client
        }),
    })
}
