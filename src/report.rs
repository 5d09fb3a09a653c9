//! What `outflow check` and `outflow status` print with, shared by the
//! commands and by each source's own part of them: the ✓/✗ checklist and
//! table cells.

/// `outflow check`'s items: ✓ or ✗, each ✗ with the exact fix.
#[derive(Debug, Default)]
pub struct Checklist {
    pub failed: usize,
}

impl Checklist {
    /// Prints one item; a failed one counts and shows `fix`.
    pub fn item(&mut self, ok: bool, what: &str, fix: &str) {
        if ok {
            println!("✓ {what}");
        } else {
            self.failed += 1;
            println!("✗ {what}\n    fix: {fix}");
        }
    }

    /// Prints a line that is neither a pass nor a failure (`- ...`).
    pub fn note(&self, what: &str) {
        println!("- {what}");
    }
}

/// A JSON value as a table cell: `-` for null, strings unquoted.
pub fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
