//! Scenario tests are in the e2e suite against a real MariaDB; here only what
//! needs no server: filters.

use super::*;

#[test]
fn table_filter_matches_exact_names_and_prefixes() {
    let f = TableFilter::new(&["app.orders".into(), "app.customer*".into()]);
    assert!(f.matches("app", "orders"));
    assert!(f.matches("app", "customers"));
    assert!(!f.matches("app", "order"));
    assert!(!f.matches("other", "orders"));
    assert!(TableFilter::all().matches("x", "y"));
}

/// Found by the `binlog` fuzz target: a header claiming more bytes than are
/// left made mysql_common's reader panic.
#[test]
fn event_sizes_beyond_the_input_are_errors_not_panics() {
    let crash = [4u8, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 10];
    assert!(super::decode_bytes(&crash).is_err());
    assert!(super::decode_bytes(&crash[..10]).is_err());
    let mut tiny = [0u8; 19];
    tiny[9] = 5; // smaller than a header
    assert!(super::decode_bytes(&tiny).is_err());
}
