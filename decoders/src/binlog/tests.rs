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
