//! TLS to MySQL/MariaDB, set in `[source] url` as the MySQL clients spell
//! it: `ssl-mode=DISABLED|REQUIRED|VERIFY_CA|VERIFY_IDENTITY` and
//! `ssl-ca=/path/ca.pem`. mysql_async's own URL keys (`require_ssl`,
//! `verify_ca`, `verify_identity`) cannot name a CA file, so these two
//! are taken out of the URL here and the rest is mysql_async's.
//!
//! - `DISABLED` (the default when `ssl-mode` is absent): no TLS.
//! - `REQUIRED`: encrypted; the server's certificate is not checked.
//! - `VERIFY_CA`: encrypted; the certificate must chain to `ssl-ca` (or to
//!   the public web roots without it); any host name.
//! - `VERIFY_IDENTITY`: as `VERIFY_CA`, and the certificate must name the
//!   host of the URL.
//!
//! `PREFERRED` (the MySQL client's default: TLS when the server offers it)
//! is refused: a connection that may or may not be encrypted is not a
//! setting to rely on.
//! Every connection outflow opens (catalog, snapshot readers, the binlog
//! stream) uses these settings.

use std::path::PathBuf;

use mysql_async::{Opts, OptsBuilder, SslOpts};

use crate::error::{Error, Result};

const MODES: &str = "DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY";

/// `url` without `ssl-mode`/`ssl-ca`, and the TLS settings they give.
pub fn split_url(url: &str) -> Result<(String, Option<SslOpts>)> {
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), None)) };
    let (mut mode, mut ca) = (None, None);
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "ssl-mode" | "ssl_mode" | "sslMode" => mode = Some(value.to_ascii_uppercase()),
            "ssl-ca" | "ssl_ca" => ca = Some(percent_decode(value)),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
    let bad = |what: String, fix: &str| Err(Error::config(format!("[source] url: {what}"), fix.to_string()));
    let ssl = match mode.as_deref() {
        None | Some("DISABLED") => {
            if ca.is_some() {
                return bad(
                    "ssl-ca is set but TLS is not (ssl-mode is DISABLED or absent)".into(),
                    "add ssl-mode=VERIFY_CA or ssl-mode=VERIFY_IDENTITY to the url",
                );
            }
            None
        }
        Some(m @ ("REQUIRED" | "VERIFY_CA" | "VERIFY_IDENTITY")) => {
            let mut ssl = SslOpts::default()
                .with_danger_accept_invalid_certs(m == "REQUIRED")
                .with_danger_skip_domain_validation(m != "VERIFY_IDENTITY");
            if let Some(path) = ca {
                if !path.is_file() {
                    return bad(
                        format!("ssl-ca {} is not a file", path.display()),
                        "point ssl-ca at the PEM file of the CA that signed the server certificate",
                    );
                }
                ssl = ssl.with_root_certs(vec![path.into()]).with_disable_built_in_roots(true);
            }
            Some(ssl)
        }
        Some(other) => {
            return bad(format!("ssl-mode={other} is not supported"), &format!("use one of {MODES}"));
        }
    };
    Ok((url, ssl))
}

/// `opts` with the TLS settings applied.
pub fn with_tls(opts: Opts, ssl: Option<SslOpts>) -> Opts {
    match ssl {
        None => opts,
        Some(ssl) => OptsBuilder::from_opts(opts).ssl_opts(Some(ssl)).into(),
    }
}

/// Whether a connection error is a failed TLS handshake or certificate
/// check (fatal: retrying cannot fix it).
pub fn is_tls_failure(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => true,
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => {
            io.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        }
        _ => false,
    }
}

/// `%2F`-style escapes in a path given in a URL.
fn percent_decode(s: &str) -> PathBuf {
    PathBuf::from(percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_keys_leave_the_url_and_set_tls() {
        let (url, ssl) = split_url("mysql://u:p@h:3306/db?ssl-mode=required&prefer_socket=false").unwrap();
        assert_eq!(url, "mysql://u:p@h:3306/db?prefer_socket=false");
        let ssl = ssl.expect("REQUIRED turns TLS on");
        assert!(ssl.accept_invalid_certs() && ssl.skip_domain_validation());
        let (url, ssl) = split_url("mysql://h/db?ssl-mode=VERIFY_IDENTITY").unwrap();
        assert_eq!(url, "mysql://h/db");
        let ssl = ssl.unwrap();
        assert!(!ssl.accept_invalid_certs() && !ssl.skip_domain_validation());
        assert!(split_url("mysql://h/db").unwrap().1.is_none());
        assert!(split_url("mysql://h/db?ssl-mode=DISABLED").unwrap().1.is_none());
        let refused = |url: &str| split_url(url).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused("mysql://h/db?ssl-mode=PREFERRED").contains("not supported"));
        assert!(refused("mysql://h/db?ssl-ca=/etc/ca.pem").contains("TLS is not"));
        assert!(refused("mysql://h/db?ssl-mode=VERIFY_CA&ssl-ca=/nonexistent.pem").contains("not a file"));
    }
}
