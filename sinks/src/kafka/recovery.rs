//! Finding out what a crashed run already delivered, by reading Kafka back.
//!
//! Two sources of truth, both in the cluster itself:
//! - the compacted `{name}.outflow-offsets` topic: one record per flush,
//!   keyed by the sink's name, holding the position everything was delivered
//!   through and, per partition written, the offset and position of its last
//!   record (the *anchor*), written only after every delivery report is in;
//! - the partitions' tails: every record carries its source position in a
//!   header, so reading a partition to its end tells the last change it
//!   holds, including those delivered after the last offsets record.
//!
//! Protocol surprises handled here: a partition's end is found by reading to
//! the partition-EOF event, never from the high watermark of ListOffsets
//! (tansu reports it wrong); reads use `read_uncommitted` (transactional
//! reads return nothing on some brokers) and explicit assignment, no
//! consumer group. An anchor is checked against the record actually found
//! at its offset; when they disagree (topic recreated, retention) the
//! partition is read from its beginning instead.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use outflow_model::Position;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::snapshot_marks::SnapshotRecord;

use super::message::{POSITION_HEADER, SEQ_HEADER};
use crate::SinkError;

/// The last record outflow wrote to a partition: its position, and 1 for a
/// tombstone (which follows the delete of the same position).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark {
    pub position: Position,
    pub seq: u8,
}

/// One partition's anchor in the offsets record: `[offset, position, seq]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anchor(pub i64, pub String, pub u8);

/// The value of a `{name}.outflow-offsets` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OffsetsRecord {
    /// Everything at or before this source position is delivered.
    pub position: String,
    /// topic → partition → anchor.
    #[serde(default)]
    pub partitions: BTreeMap<String, BTreeMap<i32, Anchor>>,
    /// Snapshot progress of the chunks delivered (see `snapshot_marks`);
    /// absent in records of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRecord>,
    /// Per table, the fingerprint of the last shape written to the schema
    /// change topic (`include.schema.changes`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shapes: BTreeMap<String, String>,
}

/// How long a read waits without any progress before it says so in the log
/// (it keeps waiting: the broker may be restarting).
const STALL_LOG: Duration = Duration::from_secs(10);

/// Reads `topic` partition 0 to its end and returns the last record keyed
/// `key` with its offset. `from` (the offset of the last record this sink
/// wrote, from the state directory) shortens the read when it still holds
/// that record.
pub fn read_offsets(
    consumer: &BaseConsumer,
    topic: &str,
    key: &str,
    from: Option<i64>,
) -> Result<Option<(i64, OffsetsRecord)>, SinkError> {
    if let Some(from) = from {
        let found = read_offsets_from(consumer, topic, key, Offset::Offset(from))?;
        if matches!(&found, Some((o, _)) if *o >= from) {
            return Ok(found);
        }
    }
    read_offsets_from(consumer, topic, key, Offset::Beginning)
}

fn read_offsets_from(
    consumer: &BaseConsumer,
    topic: &str,
    key: &str,
    from: Offset,
) -> Result<Option<(i64, OffsetsRecord)>, SinkError> {
    let mut last = None;
    read_to_end(consumer, topic, &[(0, from)], |_, offset, msg| {
        if msg.key() == Some(key.as_bytes()) {
            if let Some(v) = msg.payload() {
                let rec: OffsetsRecord = serde_json::from_slice(v).map_err(|e| {
                    SinkError::Checkpoint(format!(
                        "record at offset {offset} of {topic} is not an outflow offsets record ({e}); \
                         delete the topic or use another pipeline name"
                    ))
                })?;
                last = Some((offset, rec));
            }
        }
        Ok(())
    })?;
    Ok(last)
}

/// Reads every partition of `topic` from its anchor (or its beginning) to
/// its end; returns each partition's last outflow mark.
pub fn read_tails(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
    anchors: Option<&BTreeMap<i32, Anchor>>,
) -> Result<Vec<Option<Mark>>, SinkError> {
    let anchor_of = |p: i32| anchors.and_then(|a| a.get(&p));
    let starts: Vec<(i32, Offset)> =
        (0..partitions).map(|p| (p, anchor_of(p).map_or(Offset::Beginning, |a| Offset::Offset(a.0)))).collect();
    let mut tails: Vec<Option<Mark>> = vec![None; partitions as usize];
    let mut anchor_seen = vec![false; partitions as usize];
    read_to_end(consumer, topic, &starts, |p, offset, msg| {
        let Some(mark) = mark_of(msg)? else { return Ok(()) };
        let i = p as usize;
        if let Some(a) = anchor_of(p) {
            if a.0 == offset && mark.position.to_string() == a.1 && mark.seq == a.2 {
                anchor_seen[i] = true;
            }
        }
        if tails[i].as_ref().is_none_or(|t| mark > *t) {
            tails[i] = Some(mark);
        }
        Ok(())
    })?;
    // Anchors not found where they should be: read those partitions whole.
    let redo: Vec<(i32, Offset)> = (0..partitions)
        .filter(|&p| anchor_of(p).is_some() && !anchor_seen[p as usize])
        .map(|p| (p, Offset::Beginning))
        .collect();
    if !redo.is_empty() {
        tracing::info!(
            topic,
            partitions = redo.len(),
            "stored offsets do not match the topic; reading those partitions from the start"
        );
        for (p, _) in &redo {
            tails[*p as usize] = None;
        }
        read_to_end(consumer, topic, &redo, |p, _, msg| {
            if let Some(mark) = mark_of(msg)? {
                let t = &mut tails[p as usize];
                if t.as_ref().is_none_or(|t| mark > *t) {
                    *t = Some(mark);
                }
            }
            Ok(())
        })?;
    }
    Ok(tails)
}

/// The outflow mark in a record's headers; `None` for records outflow did
/// not write.
fn mark_of(msg: &rdkafka::message::BorrowedMessage<'_>) -> Result<Option<Mark>, SinkError> {
    let Some(headers) = msg.headers() else { return Ok(None) };
    let mut position = None;
    let mut seq = 0u8;
    for h in headers.iter() {
        match (h.key, h.value) {
            (POSITION_HEADER, Some(v)) => position = Some(v),
            (SEQ_HEADER, Some(v)) => seq = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
            _ => {}
        }
    }
    let Some(raw) = position else { return Ok(None) };
    let text = std::str::from_utf8(raw).map_err(|_| bad_header(msg))?;
    let position = text.parse().map_err(|_| bad_header(msg))?;
    Ok(Some(Mark { position, seq }))
}

fn bad_header(msg: &rdkafka::message::BorrowedMessage<'_>) -> SinkError {
    SinkError::Checkpoint(format!(
        "record at offset {} of {} partition {} has an unreadable {POSITION_HEADER} header; \
         another producer writes outflow's headers to this topic: give this sink its own topics",
        msg.offset(),
        msg.topic(),
        msg.partition()
    ))
}

/// Assigns the partitions at their start offsets and hands every record to
/// `each` until every partition reported EOF.
fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    starts: &[(i32, Offset)],
    mut each: impl FnMut(i32, i64, &rdkafka::message::BorrowedMessage<'_>) -> Result<(), SinkError>,
) -> Result<(), SinkError> {
    if starts.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in starts {
        tpl.add_partition_offset(topic, *p, *o).map_err(|e| kafka_read_error(topic, e))?;
    }
    consumer.assign(&tpl).map_err(|e| kafka_read_error(topic, e))?;
    let mut open: Vec<i32> = starts.iter().map(|(p, _)| *p).collect();
    let mut last_progress = Instant::now();
    let mut records = 0u64;
    while !open.is_empty() {
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Ok(msg)) => {
                if msg.topic() == topic {
                    each(msg.partition(), msg.offset(), &msg)?;
                    records += 1;
                }
                last_progress = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.retain(|&o| o != p);
                last_progress = Instant::now();
            }
            Some(Err(e)) => {
                if let Some(fatal) = super::errors::definite(&e, topic) {
                    return Err(fatal);
                }
                tracing::warn!(topic, error = %e, "reading back from kafka failed; retrying");
            }
        }
        if last_progress.elapsed() > STALL_LOG {
            tracing::warn!(
                topic,
                waiting_for = open.len(),
                "still reading partition tails back from kafka; is the broker reachable?"
            );
            last_progress = Instant::now();
        }
    }
    consumer.unassign().map_err(|e| kafka_read_error(topic, e))?;
    tracing::debug!(topic, records, "read back to the end");
    Ok(())
}

fn kafka_read_error(topic: &str, e: KafkaError) -> SinkError {
    SinkError::Data(format!("cannot read {topic} back from kafka: {e}"))
}
