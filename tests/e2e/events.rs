//! Reading the JSONL sink's events back independently (serde_json, line by
//! line) and picking them apart: changes of a table, their ops, rows.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

/// Calls `f(line_number, value)` for each line of a finished JSONL file,
/// parsed independently with serde_json. Fails on a missing file, a line
/// that is not JSON, or a partial (unterminated) last line. Streams, so it
/// suits large outputs.
pub fn for_each_jsonl(path: &Path, mut f: impl FnMut(usize, Value)) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if n == 0 {
            return;
        }
        number += 1;
        assert!(line.ends_with('\n'), "{}: line {number} is partial (no trailing newline): {line:?}", path.display());
        let value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: line {number} is not JSON ({e}): {line}", path.display()));
        f(number, value);
    }
}

/// All lines of a finished JSONL file (see [`for_each_jsonl`]).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let mut values = Vec::new();
    for_each_jsonl(path, |_, v| values.push(v));
    values
}

pub fn read_complete_lines(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => return Vec::new(),
    };
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display())))
        .collect()
}

// ---------------------------------------------------------------------------
// Looking at events

/// The row-change events (`op` in c, u, d, t, r) of `table`, in file order.
pub fn changes<'a>(events: &'a [Value], table: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| matches!(e["op"].as_str(), Some("c" | "u" | "d" | "t" | "r")))
        .filter(|e| e["source"]["table"].as_str() == Some(table))
        .collect()
}

/// The `op` codes of `events`, e.g. `["c", "u", "d"]`.
pub fn ops(events: &[&Value]) -> Vec<String> {
    events.iter().map(|e| e["op"].as_str().unwrap_or("?").to_string()).collect()
}

/// Asserts `row` is a JSON object with exactly `expected`'s columns and values.
#[track_caller]
pub fn assert_row(row: &Value, expected: Value) {
    assert_eq!(row, &expected, "row mismatch");
}

/// Asserts `row` carries `key`'s columns with their values and nothing else
/// but nulls (a key-only old tuple: Debezium renders the other columns null).
#[track_caller]
pub fn assert_key_only(row: &Value, key: Value) {
    let row_obj = row.as_object().unwrap_or_else(|| panic!("expected a key-only row, got {row}"));
    let key_obj = key.as_object().expect("key must be a JSON object");
    for (column, value) in key_obj {
        assert_eq!(row_obj.get(column), Some(value), "key column {column} in {row}");
    }
    for (column, value) in row_obj {
        if !key_obj.contains_key(column) {
            assert!(value.is_null(), "non-key column {column} should be null in a key-only row: {row}");
        }
    }
}

/// The sorted column names of a row object.
pub fn columns(row: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        row.as_object().unwrap_or_else(|| panic!("expected a row object, got {row}")).keys().cloned().collect();
    names.sort();
    names
}
