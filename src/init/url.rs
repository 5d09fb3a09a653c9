//! The URL `outflow init` is given: which source kind it names
//! (`postgres://`/`postgresql://`, `mysql://`/`mariadb://`), and its
//! password taken out so that the written config refers to an environment
//! variable (`${OUTFLOW_SOURCE_PASSWORD}`, expanded by `src/config.rs`)
//! instead of holding the secret.
//!
//! The password is cut out of the text as written (still percent-encoded),
//! so that putting the variable's value back gives exactly the URL the user
//! typed; the sources' own parsers then read it as before.

use crate::error::{Error, Result};

/// The environment variable the written config takes the password from.
pub const PASSWORD_VAR: &str = "OUTFLOW_SOURCE_PASSWORD";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Mysql,
}

impl Kind {
    /// The `[source] kind` value.
    pub fn config_name(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
        }
    }
}

/// The URL split for the config: the text to write (password replaced by
/// `${OUTFLOW_SOURCE_PASSWORD}`) and the password as written, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUrl {
    pub kind: Kind,
    /// The URL to connect with now (`mariadb://` spelled `mysql://`).
    pub url: String,
    /// The URL for the config file: no password in clear.
    pub written: String,
    /// The password exactly as it appears in the URL (percent-encoded).
    pub password: Option<String>,
}

impl SourceUrl {
    pub fn parse(url: &str) -> Result<SourceUrl> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(not_a_source_url(url));
        };
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Kind::Postgres,
            "mysql" | "mariadb" => Kind::Mysql,
            _ => return Err(not_a_source_url(url)),
        };
        // mysql_async knows only the mysql:// scheme; MariaDB speaks the same protocol.
        let scheme = if kind == Kind::Mysql { "mysql" } else { scheme };
        let url = format!("{scheme}://{rest}");
        let before_query = rest.split('?').next().unwrap_or(rest);
        let (written, password) = match before_query.rfind('@') {
            Some(at) => match rest[..at].split_once(':') {
                Some((user, password)) if !password.is_empty() => {
                    (format!("{scheme}://{user}:${{{PASSWORD_VAR}}}{}", &rest[at..]), Some(password.to_string()))
                }
                _ => (url.clone(), None),
            },
            None => (url.clone(), None),
        };
        if url.contains("${") {
            return Err(Error::config(
                "the URL contains \"${\"",
                "give outflow init the URL itself; it writes the password as ${OUTFLOW_SOURCE_PASSWORD} for you",
            ));
        }
        Ok(SourceUrl { kind, url, written, password })
    }

    /// The written config's text with the password put back, for checking
    /// the config before the user has exported the variable.
    pub fn with_password(&self, config_text: &str) -> String {
        match &self.password {
            Some(p) => config_text.replace(&format!("${{{PASSWORD_VAR}}}"), p),
            None => config_text.to_string(),
        }
    }
}

fn not_a_source_url(url: &str) -> Error {
    let scheme = url.split_once("://").map_or("(none)", |(s, _)| s);
    Error::config(
        format!("outflow init needs a postgres:// or mysql:// URL, not one with scheme {scheme}"),
        "e.g. outflow init postgres://user:password@host:5432/dbname or mysql://user:password@host:3306/dbname",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_becomes_a_variable_and_comes_back_exactly() {
        let u = SourceUrl::parse("postgres://cdc:p%40ss:w@db.example:5432/app?sslmode=require").unwrap();
        assert_eq!(u.kind, Kind::Postgres);
        assert_eq!(u.written, "postgres://cdc:${OUTFLOW_SOURCE_PASSWORD}@db.example:5432/app?sslmode=require");
        assert_eq!(u.password.as_deref(), Some("p%40ss:w"));
        assert_eq!(u.with_password(&format!("url = \"{}\"", u.written)), format!("url = \"{}\"", u.url));
    }

    #[test]
    fn without_a_password_the_url_is_kept() {
        let u = SourceUrl::parse("postgresql://cdc@db/app").unwrap();
        assert_eq!((u.written.as_str(), u.password.as_deref()), ("postgresql://cdc@db/app", None));
        let u = SourceUrl::parse("mariadb://root@127.0.0.1:3306/shop").unwrap();
        assert_eq!(u.kind, Kind::Mysql);
        assert_eq!(u.url, "mysql://root@127.0.0.1:3306/shop");
        assert_eq!(SourceUrl::parse("mysql://h:3306").unwrap().password, None);
    }

    #[test]
    fn other_schemes_and_variables_are_refused() {
        assert!(SourceUrl::parse("redis://h:6379").unwrap_err().message.contains("scheme redis"));
        assert!(SourceUrl::parse("db.example:5432").is_err());
        assert!(SourceUrl::parse("postgres://u:${PW}@h/d").is_err());
    }
}
