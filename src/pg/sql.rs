//! Small SQL helpers both PostgreSQL connections share (the tokio-postgres
//! one in `catalog.rs` and the hand-written replication one in
//! `replication.rs`): identifier quoting and which SQLSTATEs mean a lost
//! connection rather than a refused request.

/// Quotes an identifier for SQL.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Whether an SQLSTATE means the connection (not the request) failed, so a
/// new connection may succeed: 57P01 admin shutdown (a server stopping or
/// restarting, or the backend terminated), 57P02 crash shutdown, 57P03
/// cannot connect now (starting up), 57P05 idle session timeout, and class
/// 08 (connection exception). Not 57P04 (the database was dropped).
pub fn connection_lost(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03" | "57P05") || code.starts_with("08")
}

#[cfg(test)]
mod tests {
    use super::connection_lost;

    #[test]
    fn a_server_going_away_is_a_lost_connection_a_dropped_database_is_not() {
        for code in ["57P01", "57P02", "57P03", "57P05", "08006", "08003"] {
            assert!(connection_lost(code), "{code}");
        }
        for code in ["57P04", "42P01", "55006", "42501"] {
            assert!(!connection_lost(code), "{code}");
        }
    }
}
