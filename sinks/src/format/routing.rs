//! What message sinks (Kafka, Redis, ...) share to address a change: the
//! destination name template (`{name}.{schema}.{table}`, Kafka's `topic`,
//! Redis's `stream`) and the record key (a JSON object of the key columns,
//! as Debezium's key).

use outflow_model::ChangeEvent;

use super::values::{write_debezium_value, write_json_str, ValueStyle};

/// A destination name template, parsed once: text with the placeholders
/// `{name}` (the pipeline), `{db}`, `{schema}` and `{table}`.
#[derive(Debug, Clone)]
pub struct NameTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Name,
    Db,
    Schema,
    Table,
}

impl NameTemplate {
    /// Parses `s`; the error says what is wrong (`what` names the setting
    /// for the empty case, e.g. "topic").
    pub fn parse(s: &str, what: &str) -> Result<NameTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or("a `{` is not closed")? + open;
            parts.push(match &rest[open + 1..close] {
                "name" => Part::Name,
                "db" => Part::Db,
                "schema" => Part::Schema,
                "table" => Part::Table,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}}; use {{name}}, {{db}}, {{schema}} or {{table}}"
                    ))
                }
            });
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err("a `}` has no matching `{`".into());
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if parts.is_empty() {
            return Err(format!("the {what} is empty"));
        }
        Ok(NameTemplate { parts })
    }

    /// The name for a table; `push` appends a placeholder's value (as it is,
    /// or with the characters the destination refuses replaced).
    pub fn render(&self, name: &str, db: &str, schema: &str, table: &str, push: fn(&mut String, &str)) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Name => push(&mut out, name),
                Part::Db => push(&mut out, db),
                Part::Schema => push(&mut out, schema),
                Part::Table => push(&mut out, table),
            }
        }
        out
    }
}

/// The record key of a change: a JSON object of its key columns (in column
/// order), rendered like the value's columns. `false` when the table has no
/// key columns (the key is null) or the change has no row (truncate).
pub fn write_key(out: &mut Vec<u8>, ev: &ChangeEvent, style: &ValueStyle) -> bool {
    write_key_from(out, ev, style, None, None)
}

/// [`write_key`] from chosen columns (`columns`: indexes, in key order;
/// `None`: the table's key), with an `extra` string field last (a topic
/// route's `__dbz__physicalTableIdentifier`).
pub fn write_key_from(
    out: &mut Vec<u8>,
    ev: &ChangeEvent,
    style: &ValueStyle,
    columns: Option<&[usize]>,
    extra: Option<(&str, &str)>,
) -> bool {
    let Some(row) = ev.key_row() else { return false };
    let start = out.len();
    let field = |out: &mut Vec<u8>, name: &str| {
        out.push(if out.len() > start { b',' } else { b'{' });
        write_json_str(out, name);
        out.push(b':');
    };
    match columns {
        None => {
            for (col, v) in ev.table.columns.iter().zip(row).filter(|(c, _)| c.key) {
                field(out, &col.name);
                write_debezium_value(out, v, col, style);
            }
        }
        Some(indexes) => {
            for &i in indexes {
                let (Some(col), Some(v)) = (ev.table.columns.get(i), row.get(i)) else { continue };
                field(out, &col.name);
                write_debezium_value(out, v, col, style);
            }
        }
    }
    let any = out.len() > start;
    if any {
        if let Some((name, value)) = extra {
            field(out, name);
            write_json_str(out, value);
        }
        out.push(b'}');
    }
    any
}
