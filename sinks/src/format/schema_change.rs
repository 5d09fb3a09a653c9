//! Debezium's schema change records (`[sink.debezium]
//! include.schema.changes`), as its MySQL connector writes them to the
//! `<topic.prefix>` topic: key `{"databaseName"}`, value `{"source",
//! "ts_ms", "databaseName", "schemaName", "ddl", "tableChanges"}` with one
//! table change describing the table's new shape.
//!
//! What the shape says comes from the model ([`ColumnSchema`]): name, type
//! name, JDBC type (`java.sql.Types`, as Debezium's MySQL connector gives
//! each type), length and scale (declared precision, decimal digits, bit
//! width, fractional seconds; integer display widths as MariaDB defaults
//! them), position, optional, the key's columns and enum/set values.
//! The binlog does not carry character sets, defaults, comments or
//! auto-increment, so those are `null`/`false` (and a `VARCHAR`'s length,
//! which the binlog gives in bytes, is `null`). PostgreSQL, which Debezium
//! writes no schema change records for, gets the same record with its own
//! `source` block, `schemaName` set, no `ddl`, and the JDBC types of the
//! PostgreSQL driver.

use outflow_model::{ColumnSchema, ColumnType, Dialect, SchemaChange, SourceInfo, TableSchema};

use super::envelope::EventWriter;
use super::schema::{self, Schema};
use super::values::write_json_str;

/// `tableChanges[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Alter,
}

impl ChangeKind {
    /// `CREATE` for a statement that creates the table or a table not
    /// described before (`first`), `ALTER` otherwise.
    pub fn of(change: &SchemaChange, first: bool) -> ChangeKind {
        let creates = change.ddl.as_ref().is_some_and(|d| {
            let words: Vec<String> = d.statement.split_whitespace().take(4).map(str::to_ascii_uppercase).collect();
            words.first().is_some_and(|w| w == "CREATE") && words.contains(&"TABLE".to_string())
        });
        if creates || first {
            ChangeKind::Create
        } else {
            ChangeKind::Alter
        }
    }

    fn name(self) -> &'static str {
        match self {
            ChangeKind::Create => "CREATE",
            ChangeKind::Alter => "ALTER",
        }
    }
}

/// The database a table's schema change records are keyed by: the table's
/// database for MySQL, the source database for PostgreSQL.
pub fn database<'a>(writer: &'a EventWriter, table: &'a TableSchema) -> &'a str {
    match writer.ctx().dialect {
        Dialect::Mysql => &table.id.schema,
        Dialect::Postgres => &writer.ctx().db,
    }
}

/// The record key's payload: `{"databaseName":…}`.
pub fn key(db: &str) -> Vec<u8> {
    let mut out = b"{\"databaseName\":".to_vec();
    write_json_str(&mut out, db);
    out.push(b'}');
    out
}

/// The table's shape as `tableChanges[].table` (also what tells one shape
/// from another: two shapes that render alike are the same).
pub fn table_json(table: &TableSchema, dialect: Dialect) -> Vec<u8> {
    let mut out = b"{\"defaultCharsetName\":null,\"primaryKeyColumnNames\":[".to_vec();
    for (i, c) in table.columns.iter().filter(|c| c.key).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(&mut out, &c.name);
    }
    out.extend_from_slice(b"],\"columns\":[");
    for (i, c) in table.columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_column(&mut out, c, i + 1, dialect);
    }
    out.extend_from_slice(b"],\"comment\":null}");
    out
}

impl EventWriter {
    /// The record value's payload. `source`: where the change is (the DDL
    /// statement's own place when known, else the first change under the
    /// new shape); `table`: [`table_json`] of the new shape.
    pub fn write_schema_change(
        &self,
        out: &mut Vec<u8>,
        change: &SchemaChange,
        source: &SourceInfo,
        kind: ChangeKind,
        table: &[u8],
    ) {
        let id = &change.schema.id;
        let dialect = self.ctx().dialect;
        out.extend_from_slice(b"{\"source\":");
        self.write_source(out, change.ddl.as_ref().map_or(source, |d| &d.source), &id.schema, &id.name);
        out.extend_from_slice(b",\"ts_ms\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.now_us() / 1000).as_bytes());
        out.extend_from_slice(b",\"databaseName\":");
        write_json_str(out, database(self, &change.schema));
        out.extend_from_slice(b",\"schemaName\":");
        match dialect {
            Dialect::Mysql => out.extend_from_slice(b"null"),
            Dialect::Postgres => write_json_str(out, &id.schema),
        }
        out.extend_from_slice(b",\"ddl\":");
        match &change.ddl {
            Some(d) => write_json_str(out, &d.statement),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"tableChanges\":[{\"type\":\"");
        out.extend_from_slice(kind.name().as_bytes());
        out.extend_from_slice(b"\",\"id\":");
        write_json_str(out, &format!("\"{}\".\"{}\"", id.schema, id.name));
        out.extend_from_slice(b",\"table\":");
        out.extend_from_slice(table);
        out.extend_from_slice(b"}]}");
    }
}

fn write_column(out: &mut Vec<u8>, c: &ColumnSchema, position: usize, dialect: Dialect) {
    let facts = match dialect {
        Dialect::Mysql => mysql_facts(c),
        Dialect::Postgres => postgres_facts(c),
    };
    let opt = |v: Option<i64>| v.map_or("null".to_string(), |v| v.to_string());
    out.extend_from_slice(b"{\"name\":");
    write_json_str(out, &c.name);
    out.extend_from_slice(format!(",\"jdbcType\":{},\"nativeType\":null,\"typeName\":", facts.jdbc).as_bytes());
    write_json_str(out, &facts.type_name);
    out.extend_from_slice(b",\"typeExpression\":");
    write_json_str(out, &facts.type_name);
    out.extend_from_slice(
        format!(
            ",\"charsetName\":null,\"length\":{},\"scale\":{},\"position\":{position},\"optional\":{},\
             \"autoIncremented\":false,\"generated\":false,\"comment\":null,\"defaultValueExpression\":null,\
             \"enumValues\":",
            opt(facts.length),
            opt(facts.scale),
            c.nullable
        )
        .as_bytes(),
    );
    match &c.ty {
        ColumnType::Enum { labels } | ColumnType::Set { labels } if !labels.is_empty() => {
            out.push(b'[');
            for (i, l) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(out, &format!("'{}'", l.replace('\'', "''")));
            }
            out.push(b']');
        }
        _ => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// What a column's description holds beyond its name.
struct Facts {
    /// `java.sql.Types`.
    jdbc: i32,
    type_name: String,
    length: Option<i64>,
    scale: Option<i64>,
}

/// Fractional-second digits, when declared above 0.
fn fraction(c: &ColumnSchema) -> Option<i64> {
    c.ty.precision().filter(|p| *p > 0).map(i64::from)
}

/// As Debezium's MySQL connector describes the column (checked with
/// debezium-ref against MariaDB 10.11's `SHOW CREATE TABLE` forms).
fn mysql_facts(c: &ColumnSchema) -> Facts {
    let type_name = c.type_name.to_ascii_uppercase();
    let unsigned = type_name.ends_with(" UNSIGNED");
    let base = type_name.split(' ').next().unwrap_or_default();
    let width = |signed: i64| Some(if unsigned { signed - 1 } else { signed });
    let (jdbc, length, scale) = match base {
        "TINYINT" => (5, width(4), None),
        "SMALLINT" => (5, width(6), None),
        "MEDIUMINT" => (4, width(9), None),
        "INT" => (4, width(11), None),
        "BIGINT" => (-5, Some(20), None),
        "YEAR" => (4, Some(4), None),
        "FLOAT" => (6, None, None),
        "DOUBLE" => (8, None, None),
        "DECIMAL" => match c.ty {
            ColumnType::Decimal(Some((p, s))) => (3, Some(i64::from(p)), Some(i64::from(s))),
            _ => (3, None, None),
        },
        "BIT" => (-7, Some(i64::from(c.type_modifier.max(1))), None),
        "DATE" => (91, None, None),
        "TIME" => (92, fraction(c), None),
        "DATETIME" => (93, fraction(c), None),
        "TIMESTAMP" => (2014, fraction(c), None),
        "ENUM" | "SET" | "CHAR" => (1, None, None),
        "BINARY" => (-2, None, None),
        "VARBINARY" => (-3, None, None),
        "BLOB" => (2004, None, None),
        "GEOMETRY" => (1111, None, None),
        _ => (12, None, None),
    };
    Facts { jdbc, type_name, length, scale }
}

/// As the PostgreSQL JDBC driver types the column.
fn postgres_facts(c: &ColumnSchema) -> Facts {
    let (jdbc, length, scale) = match &c.ty {
        ColumnType::Array(_) => (2003, None, None),
        ColumnType::Bool => (-7, None, None),
        ColumnType::Int { bits: 16, .. } => (5, None, None),
        ColumnType::Int { bits: 32, signed: true } => (4, None, None),
        ColumnType::Int { .. } => (-5, None, None),
        ColumnType::Float32 => (7, None, None),
        ColumnType::Float64 => (8, None, None),
        ColumnType::Decimal(Some((p, s))) => (2, Some(i64::from(*p)), Some(i64::from(*s))),
        ColumnType::Decimal(None) if c.type_name == "money" => (8, None, None),
        ColumnType::Decimal(None) => (2, None, None),
        ColumnType::Text { max_chars } => {
            (if c.type_name == "bpchar" { 1 } else { 12 }, max_chars.map(i64::from), None)
        }
        ColumnType::Bytes => (-2, None, None),
        ColumnType::Date => (91, None, None),
        ColumnType::Time { .. } | ColumnType::TimeTz { .. } => (92, fraction(c), None),
        ColumnType::Timestamp { .. } | ColumnType::TimestampTz { .. } => (93, fraction(c), None),
        ColumnType::Xml => (2009, None, None),
        ColumnType::Bits { length, varying: false } => (-7, length.map(i64::from), None),
        _ => (1111, None, None),
    };
    Facts { jdbc, type_name: c.type_name.clone(), length, scale }
}

/// The record key's Connect schema (`SchemaChangeKey`).
pub fn key_schema(dialect: Dialect) -> Schema {
    let fields = vec![("databaseName".to_string(), Schema::of("string", false))];
    Schema { version: Some(1), ..Schema::structure(format!("{}.SchemaChangeKey", connector(dialect)), false, fields) }
}

/// The record value's Connect schema (`SchemaChangeValue`), as Debezium
/// 3.6.3's MySQL connector declares it.
pub fn value_schema(dialect: Dialect) -> Schema {
    let s = |t| Schema::of(t, false);
    let o = |t| Schema::of(t, true);
    let strings = |optional| Schema { items: Some(Box::new(s("string"))), ..Schema::of("array", optional) };
    let fields = |list: Vec<(&str, Schema)>| list.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
    let column = Schema {
        version: Some(1),
        ..Schema::structure(
            "io.debezium.connector.schema.Column".into(),
            false,
            fields(vec![
                ("name", s("string")),
                ("jdbcType", s("int32")),
                ("nativeType", o("int32")),
                ("typeName", s("string")),
                ("typeExpression", o("string")),
                ("charsetName", o("string")),
                ("length", o("int32")),
                ("scale", o("int32")),
                ("position", s("int32")),
                ("optional", o("boolean")),
                ("autoIncremented", o("boolean")),
                ("generated", o("boolean")),
                ("comment", o("string")),
                ("defaultValueExpression", o("string")),
                ("enumValues", strings(true)),
            ]),
        )
    };
    let table = Schema {
        version: Some(1),
        ..Schema::structure(
            "io.debezium.connector.schema.Table".into(),
            true,
            fields(vec![
                ("defaultCharsetName", o("string")),
                ("primaryKeyColumnNames", strings(true)),
                ("columns", Schema { items: Some(Box::new(column)), ..Schema::of("array", false) }),
                ("comment", o("string")),
            ]),
        )
    };
    let change = Schema {
        version: Some(1),
        ..Schema::structure(
            "io.debezium.connector.schema.Change".into(),
            false,
            fields(vec![("type", s("string")), ("id", s("string")), ("table", table)]),
        )
    };
    let value = fields(vec![
        ("source", schema::source(dialect)),
        ("ts_ms", s("int64")),
        ("databaseName", o("string")),
        ("schemaName", o("string")),
        ("ddl", o("string")),
        ("tableChanges", Schema { items: Some(Box::new(change)), ..Schema::of("array", false) }),
    ]);
    Schema { version: Some(1), ..Schema::structure(format!("{}.SchemaChangeValue", connector(dialect)), false, value) }
}

fn connector(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Mysql => "io.debezium.connector.mysql",
        Dialect::Postgres => "io.debezium.connector.postgresql",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record schemas are Debezium 3.6.3's, as debezium-ref printed them
    /// for a MariaDB `ALTER TABLE` with `schemas.enable=true`.
    #[test]
    fn mysql_record_schemas_are_debeziums() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden/schema_change.mariadb.schemas.json");
        let golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let render = |s: Schema| {
            let mut out = Vec::new();
            s.write(&mut out, None);
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        assert_eq!(render(key_schema(Dialect::Mysql)), golden["key"]);
        assert_eq!(render(value_schema(Dialect::Mysql)), golden["value"]);
    }

    /// With Avro, Debezium's own records transcode under the schemas and
    /// read back with apache-avro's decoder.
    #[test]
    fn debeziums_records_transcode_to_avro() {
        use apache_avro::types::Value as Avro;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden/schema_change.mariadb.jsonl");
        let text = std::fs::read_to_string(path).unwrap();
        for line in text.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            for (schema, payload) in
                [(key_schema(Dialect::Mysql), &record["key"]), (value_schema(Dialect::Mysql), &record["value"])]
            {
                let avro = super::super::avro::AvroSchema::of(&schema).unwrap();
                let mut out = Vec::new();
                super::super::avro::encode(&schema, payload.to_string().as_bytes(), &mut out).unwrap();
                let Avro::Record(fields) = apache_avro::from_avro_datum(&avro.parsed, &mut &out[..], None).unwrap()
                else {
                    panic!("not a record")
                };
                let field = |n: &str| fields.iter().find(|(f, _)| f == n).map(|(_, v)| v.clone());
                match field("ddl") {
                    Some(ddl) => {
                        assert_eq!(ddl, Avro::Union(1, Box::new(Avro::String(payload["ddl"].as_str().unwrap().into()))))
                    }
                    None => assert_eq!(field("databaseName"), Some(Avro::String("dbz".into()))),
                }
            }
        }
    }
}
