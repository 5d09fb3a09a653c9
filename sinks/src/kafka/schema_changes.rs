//! Debezium's schema change topic (`[sink.debezium] include.schema.changes`):
//! a record on the `<pipeline>` topic (one partition) for each new shape of
//! a captured table, written just before the table's first change under
//! that shape, at that change's position (so a replay writes it exactly
//! once, like the change). A table's current shape is announced again
//! whenever streaming starts; the fingerprint of the last shape written per
//! table (kept in the offsets record, so it survives restarts on an
//! exactly-once sink) tells a real change from such a repeat.

use sha2::Digest;

use outflow_model::SchemaChange;

use super::*;
use crate::format::schema_change::{self, ChangeKind};

pub(super) struct SchemaChanges {
    pub(super) topic: String,
    /// The topic exists (checked before the first record).
    ready: bool,
    /// Per table (`schema.table`): the fingerprint of the last shape written.
    pub(super) written: BTreeMap<String, String>,
    /// Shapes announced and not yet written, by table.
    pending: HashMap<TableId, SchemaChange>,
    key_schema: Option<Vec<u8>>,
    value_schema: Option<Vec<u8>>,
}

impl SchemaChanges {
    pub(super) fn new(pipeline: &str, dialect: outflow_model::Dialect, schemas: (bool, bool)) -> SchemaChanges {
        SchemaChanges {
            topic: sanitize(pipeline),
            ready: false,
            written: BTreeMap::new(),
            pending: HashMap::new(),
            key_schema: schemas.0.then(|| schema_change::key_schema(dialect).record_prefix()),
            value_schema: schemas.1.then(|| schema_change::value_schema(dialect).record_prefix()),
        }
    }

    pub(super) fn announce(&mut self, change: &SchemaChange) {
        self.pending.insert(change.schema.id.clone(), change.clone());
    }
}

impl KafkaSink {
    /// Writes the schema change record of `ev`'s table when its shape was
    /// announced and differs from the last one written.
    pub(super) fn write_schema_change(&mut self, ev: &ChangeEvent) -> Result<(), SinkError> {
        let Some(changes) = self.schema_changes.as_mut() else { return Ok(()) };
        let Some(change) = changes.pending.remove(&ev.table.id) else { return Ok(()) };
        let dialect = self.ctx.dialect;
        let table = schema_change::table_json(&change.schema, dialect);
        let fingerprint = hex::encode(&sha2::Sha256::digest(&table)[..16]);
        let name = change.schema.id.to_string();
        let previous = changes.written.insert(name, fingerprint.clone());
        if previous.as_deref() == Some(fingerprint.as_str()) {
            return Ok(());
        }
        let kind = ChangeKind::of(&change, previous.is_none());
        let mut key = with_schema(&changes.key_schema, schema_change::key(schema_change::database(&self.writer, &change.schema)));
        let mut value = Vec::new();
        self.writer.write_schema_change(&mut value, &change, &ev.source, kind, &table);
        let mut value = with_schema(&changes.value_schema, value);
        let topic = changes.topic.clone();
        if !changes.ready {
            self.ensure_topic(&topic, 1, false)?;
            self.schema_changes.as_mut().expect("checked above").ready = true;
        }
        self.avro_fixed(&mut key, Fixed::SchemaChangeKey, &topic)?;
        self.avro_fixed(&mut value, Fixed::SchemaChangeValue, &topic)?;
        self.send(&topic, Some(&key), Some(&value), Mark { position: ev.position.clone(), seq: 0 })
    }
}
