//! `kind = "kafka"`: change events as Kafka records shaped like Debezium's
//! (topics, keys, envelope values, tombstones, transaction records), on
//! librdkafka, exactly-once across crashes without broker transactions.
//!
//! Delivery: the producer is idempotent with `acks=all` and no delivery
//! timeout, so librdkafka retries a record until the broker has it, never
//! twice and never out of order within a partition. `write` hands records to
//! librdkafka and returns; when its queue (`max_in_flight_messages`) is full,
//! `write` waits, which stops the pipeline and so the source (back-pressure).
//! `flush` returns only once every record written so far has its delivery
//! report; the pipeline stores and acknowledges a position only after that,
//! so a broker outage holds the database's slot where it is.
//!
//! Exactly-once ([`recovery`]): every record carries its source position in
//! a header. After each flush the sink appends `{position, anchors}` to the
//! compacted `{name}.outflow-offsets` topic. On start it reads its last
//! offsets record, skips everything at or before that position, and, the
//! first time it writes to a topic, reads each partition's tail (from the
//! anchor) to skip records that were delivered after that offsets record
//! but before the crash. The state directory only caches where the offsets
//! record is.
//!
//! `outflow check` fetches the cluster's metadata (brokers reachable, and
//! the credentials accepted) within a timeout.
//!
//! Avro (`format = "avro"`, [`registry`]): keys and values in Confluent's
//! wire format, schemas registered in a Schema Registry. Only the bodies
//! change: headers, partitioning (by the record key's bytes, as Kafka's
//! default partitioner does with the Avro converter's keys) and recovery
//! are the same, and recovery reads headers only, never a value.
//!
//! Definite errors (record too large, missing topic without
//! `create_topics`, authorization) stop the sink with a message naming the
//! setting; nothing past the failing record is acknowledged.

mod config;
mod delivery;
mod errors;
mod factory;
mod heartbeat;
mod offsets;
pub mod message;
mod recovery;
mod registry;
mod schema_changes;
#[cfg(test)]
mod tests;
mod topics;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outflow_model::{ChangeEvent, Op, Position, StreamItem, TableId, TableSchema};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use serde_json::json;

pub use config::{KafkaConfig, KafkaFormat, Setting};
pub use registry::RegistrySettings;
use message::{NEW_KEY_HEADER, OLD_KEY_HEADER, POSITION_HEADER, SEQ_HEADER};
use recovery::{Anchor, Mark, OffsetsRecord};
use registry::{AvroRecords, Fixed};

use crate::exactly_once::Delivered;
use crate::format::envelope::EventWriter;
use crate::format::Format;
use crate::format::debezium::{Debezium, Heartbeat};
use crate::format::routing::{write_key_from, NameTemplate};
use crate::format::schema::{self, SchemaCache};
use crate::format::values::ValueStyle;
use crate::snapshot_marks::SnapshotRecord;
use crate::{Checkpoint, Durable, Sink, SinkContext, SinkError};
use delivery::Delivery;
use heartbeat::HeartbeatClock;
use schema_changes::SchemaChanges;
use topics::TopicState;

/// How often a wait on the broker says so in the log.
const WAIT_LOG: Duration = Duration::from_secs(10);
/// Longest pause between retries of a metadata or admin request.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub struct KafkaSink {
    cfg: KafkaConfig,
    template: NameTemplate,
    ctx: SinkContext,
    writer: EventWriter,
    style: ValueStyle,
    producer: BaseProducer<Delivery>,
    admin: AdminClient<DefaultClientContext>,
    consumer: Option<BaseConsumer>,
    offsets_topic: String,
    /// Known topics: partition count, recovered tails, last record sent.
    topics: HashMap<String, TopicState>,
    table_topics: HashMap<TableId, TableRoute>,
    /// `message.key.columns` resolved per table: its schema version and
    /// the key columns' indexes (`None`: the table's own key).
    key_columns: HashMap<TableId, (u32, KeyIndexes)>,
    /// Rendered key schemas per table, when keys carry them.
    key_schemas: Option<SchemaCache>,
    /// The schemas of the records that belong to no table, when keys or
    /// values carry schemas.
    fixed_schemas: FixedSchemas,
    /// `tombstones`, or `[sink.debezium] tombstones.on.delete`.
    tombstones: bool,
    debezium: Debezium,
    /// What the last offsets record says was delivered (everything at or
    /// before its position, and its snapshot progress), and what was
    /// written since.
    delivered: Delivered,
    /// Anchors from the last offsets record, for topics not yet touched.
    anchors: BTreeMap<String, BTreeMap<i32, Anchor>>,
    /// Offset of the last offsets record (the checkpoint).
    offsets_offset: Option<i64>,
    tx: Option<Tx>,
    key: Vec<u8>,
    value: Vec<u8>,
    /// Bytes of record keys and values produced by this instance.
    bytes: u64,
    /// Avro records: the JSON rendered above, transcoded, with its
    /// registered schema's id.
    avro: Option<AvroRecords>,
    /// `[sink.debezium] heartbeat.interval.ms`: when the next heartbeat
    /// record is due, and the furthest position written.
    heartbeat: Option<HeartbeatClock>,
    /// `[sink.debezium] include.schema.changes`.
    schema_changes: Option<SchemaChanges>,
}

/// A table's `message.key.columns` as column indexes (`None`: its own key).
type KeyIndexes = Option<Arc<[usize]>>;

/// Where a table's records go: its topic (after `[sink.debezium]` routes)
/// and, when a route merged it with others, the key field naming the
/// table's own topic.
#[derive(Clone)]
struct TableRoute {
    topic: String,
    key_field: Option<(String, String)>,
    /// Where the record schemas' struct names start: the routed topic for
    /// a routed table (as `ByLogicalTableRouter` renames them), else
    /// `<prefix>.<schema>.<table>`.
    struct_name: String,
}

/// The open transaction, for the transaction topic's BEGIN/END records.
/// Like Debezium, BEGIN is published with the transaction's first record,
/// so transactions without captured changes publish nothing.
struct Tx {
    id: String,
    ts_ms: i64,
    position: Position,
    begun: bool,
    counts: Vec<(String, u64)>,
}

impl KafkaConfig {
    /// Connects (waiting for the broker if it is down) and, for exactly-once,
    /// reads back what earlier runs delivered. `checkpoint` is the state
    /// directory's cache: `{"offsets_offset": N}`.
    /// `runtime` carries the schema registry's requests (Avro only).
    pub fn open(
        &self,
        ctx: SinkContext,
        checkpoint: Option<&Checkpoint>,
        runtime: tokio::runtime::Handle,
    ) -> Result<KafkaSink, SinkError> {
        let config::Checked { template, debezium, registry } = self.check()?;
        let style = ValueStyle { modes: debezium.values, ..ValueStyle::new(self.unavailable_value_placeholder.clone()) };
        let writer =
            EventWriter::new(self.format.records(), style.clone(), ctx.clone()).with_schemas(debezium.schemas.value);
        let avro = registry.map(|r| AvroRecords::new(&r, &self.name, runtime)).transpose()?;
        let client_error = |what: &str, e: KafkaError| {
            SinkError::Data(format!(
                "cannot create the kafka {what} for sink {:?}: {e}; check [sink.producer]",
                self.name
            ))
        };
        let producer: BaseProducer<Delivery> =
            self.producer_config().create_with_context(Delivery::default()).map_err(|e| client_error("producer", e))?;
        let admin: AdminClient<DefaultClientContext> =
            self.admin_config().create().map_err(|e| client_error("admin client", e))?;
        let offsets_topic = format!("{}.outflow-offsets", sanitize(&ctx.pipeline));
        let heartbeat = debezium.heartbeat.clone().map(|every| HeartbeatClock {
            topic: every.topic(&sanitize(&ctx.pipeline)),
            next: Instant::now() + every.interval,
            every,
            ready: false,
            position: None,
        });
        let schema_changes = debezium.schema_changes.then(|| {
            SchemaChanges::new(&ctx.pipeline, ctx.dialect, (debezium.schemas.key, debezium.schemas.value))
        });
        let mut sink = KafkaSink {
            cfg: self.clone(),
            template,
            ctx,
            writer,
            style,
            producer,
            admin,
            consumer: None,
            offsets_topic,
            topics: HashMap::new(),
            table_topics: HashMap::new(),
            key_columns: HashMap::new(),
            tombstones: debezium.tombstones.unwrap_or(self.tombstones),
            key_schemas: (debezium.schemas.key && self.format == KafkaFormat::Debezium).then(SchemaCache::default),
            fixed_schemas: FixedSchemas::new(debezium.schemas.key, debezium.schemas.value),
            debezium,
            delivered: Delivered::default(),
            anchors: BTreeMap::new(),
            offsets_offset: None,
            tx: None,
            key: Vec::with_capacity(256),
            value: Vec::with_capacity(4096),
            bytes: 0,
            heartbeat,
            schema_changes,
            avro,
        };
        if self.exactly_once {
            let consumer: BaseConsumer = self.consumer_config().create().map_err(|e| client_error("consumer", e))?;
            sink.consumer = Some(consumer);
            let from = checkpoint.and_then(|c| c.get("offsets_offset")).and_then(|o| o.as_i64());
            sink.recover(from)?;
        }
        Ok(sink)
    }
}

/// `{"schema":…,"payload":` of the records that belong to no table
/// (logical decoding messages' keys, transaction records), rendered once.
struct FixedSchemas {
    message_key: Option<Vec<u8>>,
    transaction_key: Option<Vec<u8>>,
    transaction_value: Option<Vec<u8>>,
}

impl FixedSchemas {
    fn new(keys: bool, values: bool) -> FixedSchemas {
        FixedSchemas {
            message_key: keys.then(|| schema::message_key().record_prefix()),
            transaction_key: keys.then(|| schema::transaction_key().record_prefix()),
            transaction_value: values.then(|| schema::transaction_value().record_prefix()),
        }
    }
}

/// `payload` as a record with its schema when there is one.
fn with_schema(prefix: &Option<Vec<u8>>, payload: Vec<u8>) -> Vec<u8> {
    match prefix {
        None => payload,
        Some(prefix) => {
            let mut out = Vec::with_capacity(prefix.len() + payload.len() + 1);
            out.extend_from_slice(prefix);
            out.extend_from_slice(&payload);
            out.push(b'}');
            out
        }
    }
}

/// Characters Kafka refuses in topic names become `_`.
fn sanitize(s: &str) -> String {
    let mut out = String::new();
    message::push_topic_chars(&mut out, s);
    out
}

impl KafkaSink {
    fn table_route(&mut self, table: &TableId) -> TableRoute {
        if let Some(t) = self.table_topics.get(table) {
            return t.clone();
        }
        let topic =
            self.template.render(&self.ctx.pipeline, &self.ctx.db, &table.schema, &table.name, message::push_topic_chars);
        let routed = self.debezium.routes.iter().any(|r| r.regex.is_match(&topic));
        let (topic, key_field) = self.debezium.route(topic);
        let struct_name = if routed { topic.clone() } else { schema::table_name(&self.ctx.pipeline, table) };
        let route = TableRoute { topic, key_field, struct_name };
        self.table_topics.insert(table.clone(), route.clone());
        route
    }

    /// The columns `message.key.columns` names for the event's table, as
    /// indexes (`None`: the table's own key). A named column the table does
    /// not have is a definite error.
    fn key_columns(&mut self, table: &Arc<TableSchema>) -> Result<KeyIndexes, SinkError> {
        if let Some((version, cols)) = self.key_columns.get(&table.id) {
            if *version == table.version {
                return Ok(cols.clone());
            }
        }
        let resolved = match self.debezium.key_columns_for(&table.id.to_string()) {
            None => None,
            Some(names) => {
                let mut indexes = Vec::with_capacity(names.len());
                for name in names {
                    let i = table.columns.iter().position(|c| &c.name == name).ok_or_else(|| SinkError::Fatal {
                        message: format!(
                            "sink {:?}: [sink.debezium] message.key.columns names column {name:?}, which table {} does not have",
                            self.cfg.name, table.id
                        ),
                        hint: "fix `message.key.columns` (columns of the table, comma-separated)".into(),
                    })?;
                    indexes.push(i);
                }
                Some(Arc::from(indexes))
            }
        };
        self.key_columns.insert(table.id.clone(), (table.version, resolved.clone()));
        Ok(resolved)
    }

    /// Renders the event's record key into `out` (with its schema when keys
    /// carry them); `false` for a null key.
    fn render_key(&mut self, out: &mut Vec<u8>, ev: &ChangeEvent, route: &TableRoute) -> Result<bool, SinkError> {
        if self.key_schemas.is_none() {
            return self.render_key_payload(out, ev, route);
        }
        if ev.op == Op::Truncate {
            return Ok(false);
        }
        let columns = self.key_columns(&ev.table)?;
        let extra = route.key_field.as_ref().map(|(f, v)| (f.as_str(), v.as_str()));
        let cache = self.key_schemas.as_mut().expect("checked above");
        let start = out.len();
        let modes = self.style.modes;
        out.extend_from_slice(cache.get(&ev.table, || {
            schema::key(&ev.table, &route.struct_name, columns.as_deref(), extra.map(|(f, _)| f), &modes)
        }));
        if write_key_from(out, ev, &self.style, columns.as_deref(), extra) {
            out.push(b'}');
            Ok(true)
        } else {
            out.truncate(start);
            Ok(false)
        }
    }

    /// The event's record key without a schema; `false` for a null key.
    fn render_key_payload(&mut self, out: &mut Vec<u8>, ev: &ChangeEvent, route: &TableRoute) -> Result<bool, SinkError> {
        if ev.op == Op::Truncate {
            return Ok(false);
        }
        let columns = self.key_columns(&ev.table)?;
        let extra = route.key_field.as_ref().map(|(f, v)| (f.as_str(), v.as_str()));
        Ok(write_key_from(out, ev, &self.style, columns.as_deref(), extra))
    }

    /// Produces one record (unless an earlier run already delivered it),
    /// waiting while librdkafka's queue is full.
    fn send(&mut self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>, mark: Mark) -> Result<(), SinkError> {
        self.send_with(topic, key, value, mark, &[])
    }

    /// [`Self::send`] with more headers (`name`, value).
    fn send_with(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        mark: Mark,
        extra_headers: &[(&str, &[u8])],
    ) -> Result<(), SinkError> {
        let state = self.topic_state(topic)?;
        let partition = message::partition_for(key, state.partitions);
        let p = partition as usize;
        if state.tails[p].as_ref().is_some_and(|t| mark <= *t) {
            return Ok(());
        }
        let position = mark.position.to_string();
        let mut headers =
            OwnedHeaders::new_with_capacity(2).insert(Header { key: POSITION_HEADER, value: Some(&position) });
        if mark.seq > 0 {
            headers = headers.insert(Header { key: SEQ_HEADER, value: Some(&mark.seq.to_string()) });
        }
        for &(name, value) in extra_headers {
            headers = headers.insert(Header { key: name, value: Some(value) });
        }
        state.sent[p] = Some(mark);
        self.bytes += (key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len)) as u64;
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(partition).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        let mut waiting_since: Option<Instant> = None;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                    self.check_failed()?;
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= WAIT_LOG {
                        self.log_waiting("queue full: waiting for kafka to acknowledge records");
                        waiting_since = Some(Instant::now());
                    }
                }
                Err((e, _)) => {
                    return Err(errors::definite(&e, topic)
                        .unwrap_or_else(|| SinkError::Data(format!("cannot produce to topic {topic}: {e}"))))
                }
            }
        }
    }

    /// Publishes the open transaction's BEGIN before its first record.
    fn begin_transaction(&mut self) -> Result<(), SinkError> {
        let Some(tx) = self.tx.as_mut().filter(|tx| !tx.begun) else { return Ok(()) };
        tx.begun = true;
        if !self.cfg.transaction_topic {
            return Ok(());
        }
        let (id, position) = (tx.id.clone(), tx.position.clone());
        let value = message::transaction_begin(&id, tx.ts_ms);
        self.send_transaction(&id, &value, &position)
    }

    fn write_change(&mut self, ev: &ChangeEvent) -> Result<(), SinkError> {
        self.begin_transaction()?;
        self.write_schema_change(ev)?;
        let route = self.table_route(&ev.table.id);
        let split = if self.cfg.format.records() == Format::Debezium { ev.split_key_change() } else { None };
        let events = split.as_ref().map_or(1, |_| 2);
        let result = match &split {
            Some([delete, create]) => self.write_key_change(&route, delete, create),
            None => self.write_event(&route, ev),
        };
        if let Some(tx) = &mut self.tx {
            let table = ev.table.id.to_string();
            match tx.counts.iter_mut().find(|(t, _)| *t == table) {
                Some((_, n)) => *n += events,
                None => tx.counts.push((table, events)),
            }
        }
        result
    }

    /// One event's records: a delete as `tombstones` and the unwrap
    /// transform's delete handling say; truncates are not flat rows, so the
    /// unwrap transform drops them.
    fn write_event(&mut self, route: &TableRoute, ev: &ChangeEvent) -> Result<(), SinkError> {
        match ev.op {
            Op::Delete => {
                let (record, tombstone) = self.delete_records();
                if record {
                    self.write_record(route, ev, 0, None)?;
                }
                if tombstone {
                    self.tombstone(route, ev)?;
                }
                Ok(())
            }
            Op::Truncate if self.debezium.unwrap.is_some() => Ok(()),
            _ => self.write_record(route, ev, 0, None),
        }
    }

    /// `(delete record, tombstone)` for a delete.
    fn delete_records(&self) -> (bool, bool) {
        match &self.debezium.unwrap {
            Some(u) => u.deletes.records(self.tombstones),
            None => (true, self.tombstones),
        }
    }

    /// An update that moved its row to another key, as Debezium emits it: a
    /// delete under the old key with header `__debezium.newkey`, its
    /// tombstone, and a create under the new key with `__debezium.oldkey`.
    /// The three share the update's position (`outflow.seq` 0, 1, 2).
    fn write_key_change(&mut self, route: &TableRoute, delete: &ChangeEvent, create: &ChangeEvent) -> Result<(), SinkError> {
        // The headers hold the keys' payloads: headers have their own
        // converter, which `key.converter.schemas.enable` does not touch.
        let (mut old_key, mut new_key) = (Vec::new(), Vec::new());
        self.render_key_payload(&mut old_key, delete, route)?;
        self.render_key_payload(&mut new_key, create, route)?;
        let (record, tombstone) = self.delete_records();
        if record {
            self.write_record(route, delete, 0, Some((NEW_KEY_HEADER, &new_key)))?;
        }
        if tombstone {
            self.tombstone(route, delete)?;
        }
        self.write_record(route, create, 2, Some((OLD_KEY_HEADER, &old_key)))
    }

    /// The tombstone of a delete: its key, no value, `outflow.seq = 1`.
    fn tombstone(&mut self, route: &TableRoute, delete: &ChangeEvent) -> Result<(), SinkError> {
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        let result = self.render_key(&mut key, delete, route).and_then(|keyed| {
            if keyed {
                self.avro_key(&mut key, delete, route)?;
            }
            let mark = Mark { position: delete.position.clone(), seq: 1 };
            self.send(&route.topic, keyed.then_some(key.as_slice()), None, mark)
        });
        self.key = key;
        result
    }

    /// One change's record: its key, its value (the envelope, the flat row,
    /// or the unwrap transform's row) and headers.
    fn write_record(
        &mut self,
        route: &TableRoute,
        ev: &ChangeEvent,
        seq: u8,
        header: Option<(&str, &[u8])>,
    ) -> Result<(), SinkError> {
        let mut key = std::mem::take(&mut self.key);
        let mut value = std::mem::take(&mut self.value);
        key.clear();
        value.clear();
        let result = self.render_key(&mut key, ev, route).and_then(|keyed| {
            if keyed {
                self.avro_key(&mut key, ev, route)?;
            }
            let mut added: Vec<(String, Vec<u8>)> = Vec::new();
            match &self.debezium.unwrap {
                Some(unwrap) => {
                    self.writer.write_unwrapped(&mut value, ev, unwrap);
                    for meta in &unwrap.headers {
                        let v = match self.writer.meta_value(ev, &meta.field) {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        added.push((meta.name.clone(), v.into_bytes()));
                    }
                }
                None => {
                    let name = self.debezium.schemas.value.then_some(route.struct_name.as_str());
                    self.writer.write_value(&mut value, ev, name);
                }
            }
            self.avro_value(&mut value, ev, route)?;
            let mut headers: Vec<(&str, &[u8])> = added.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
            headers.extend(header);
            let mark = Mark { position: ev.position.clone(), seq };
            self.send_with(&route.topic, keyed.then_some(key.as_slice()), Some(&value), mark, &headers)
        });
        self.key = key;
        self.value = value;
        result
    }

    fn write_item(&mut self, item: &StreamItem) -> Result<(), SinkError> {
        match item {
            StreamItem::Change(ev) => self.write_change(ev),
            StreamItem::Message(m) => {
                self.begin_transaction()?;
                let topic = format!("{}.message", sanitize(&self.ctx.pipeline));
                let mut key = with_schema(&self.fixed_schemas.message_key, message::message_key(&m.prefix));
                let mut value = Vec::new();
                self.writer.write_message(&mut value, m);
                value.pop();
                self.avro_fixed(&mut key, Fixed::MessageKey, &topic)?;
                self.avro_fixed(&mut value, Fixed::MessageValue, &topic)?;
                self.send(&topic, Some(&key), Some(&value), Mark { position: m.position.clone(), seq: 0 })
            }
            StreamItem::Begin { tx_id, commit_ts_us, position } => {
                let id = message::transaction_id(*tx_id, position);
                let ts_ms = commit_ts_us.div_euclid(1000);
                self.tx = Some(Tx { id, ts_ms, position: position.clone(), begun: false, counts: Vec::new() });
                Ok(())
            }
            StreamItem::Commit { tx_id, commit_ts_us, position } => {
                let tx = self.tx.take();
                if self.cfg.transaction_topic {
                    // Resumed inside a transaction: its BEGIN went out before.
                    let (id, counts) = match tx {
                        Some(tx) if !tx.begun => return Ok(()),
                        Some(tx) => (tx.id, tx.counts),
                        None => (message::transaction_id(*tx_id, position), Vec::new()),
                    };
                    let value = message::transaction_end(&id, commit_ts_us.div_euclid(1000), &counts);
                    self.send_transaction(&id, &value, position)?;
                }
                Ok(())
            }
            // Schema changes (see `write`), heartbeats and snapshot
            // bookkeeping carry no record of their own.
            _ => Ok(()),
        }
    }

    fn send_transaction(&mut self, id: &str, value: &[u8], position: &Position) -> Result<(), SinkError> {
        let topic = format!("{}.transaction", sanitize(&self.ctx.pipeline));
        let mut key = with_schema(&self.fixed_schemas.transaction_key, message::transaction_key(id));
        let mut value = with_schema(&self.fixed_schemas.transaction_value, value.to_vec());
        self.avro_fixed(&mut key, Fixed::TransactionKey, &topic)?;
        self.avro_fixed(&mut value, Fixed::TransactionValue, &topic)?;
        self.send(&topic, Some(&key), Some(&value), Mark { position: position.clone(), seq: 0 })
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, items: &[StreamItem]) -> Result<(), SinkError> {
        self.writer.start_batch();
        for item in items {
            let Some(position) = item.position() else {
                // A schema change: its record (if any) goes with the table's next change.
                if let (StreamItem::SchemaChange(change), Some(changes)) = (item, &mut self.schema_changes) {
                    changes.announce(change);
                }
                continue;
            };
            if self.delivered.holds(position) {
                continue;
            }
            self.write_item(item)?;
            self.delivered.note(item);
        }
        if let Some(clock) = &mut self.heartbeat {
            clock.position = items.iter().rev().find_map(StreamItem::position).cloned().or(clock.position.take());
        }
        self.heartbeat()?;
        self.producer.poll(Duration::ZERO);
        self.check_failed()
    }

    fn idle(&mut self) -> Result<(), SinkError> {
        self.heartbeat()?;
        self.check_failed()
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }

    fn flush(&mut self) -> Result<Checkpoint, SinkError> {
        self.wait_delivered()?;
        if self.cfg.exactly_once {
            if let Some(position) = self.delivered.uncommitted() {
                self.write_offsets(&position)?;
                self.delivered.committed(position);
            }
        }
        Ok(match self.offsets_offset {
            Some(o) => json!({ "offsets_offset": o }),
            None => Checkpoint::Null,
        })
    }

    fn exactly_once(&self) -> bool {
        self.cfg.exactly_once
    }

    fn recovered_snapshot(&self) -> Option<&SnapshotRecord> {
        self.delivered.recovered_snapshot()
    }
}
