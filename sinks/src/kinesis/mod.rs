//! `kind = "kinesis"`: every change event as a record of one Kinesis data
//! stream, in order per key, exactly-once across restarts.
//!
//! **Records.** A record's `Data` is the configured format's bytes (the
//! Debezium envelope by default, `format = "json"` flat); its partition key
//! is the JSON of the table's key columns (as Debezium's Kafka key), so all
//! changes of one row go to one shard, cut to Kinesis's 256 characters
//! with a SHA-256 of the whole when longer ([`records::partition_key`]);
//! changes of keyless tables and truncates use the table's name. Kinesis
//! records have no headers: the table, op and position are in the data (the
//! envelope's `source` block and `op`; the flat format's `_table`, `_op` and
//! `_position`). Transaction boundaries, logical decoding messages and
//! schema changes carry no record. A record over 1 MiB (data plus key)
//! stops the run with an error naming its table and position; nothing
//! after the last flush is acknowledged.
//!
//! **Order per key.** Records go out in `PutRecords` calls of up to
//! `batch_records` (≤ 500) records and 5 MiB, one call at a time. Kinesis
//! keeps order within a call only for the records that succeed, and may
//! refuse some records of a call (throttling) while taking later ones, so a
//! call never holds two records of the same key: a later change of a key
//! waits in the queue until the earlier one is acknowledged. Only the
//! refused records are sent again (with backoff while Kinesis throttles),
//! and before anything newer of their keys. Keyless tables have no key to
//! order by: their records may share a call, and a refused one may land
//! after a later one of the same table.
//!
//! **Exactly-once.** Kinesis has no idempotent put, so the sink looks
//! before it writes again. Each flush waits for every record's
//! acknowledgement and returns, as the checkpoint stored with the offset,
//! each shard's last acknowledged sequence number. On start the sink reads
//! every shard after that sequence number (from `TRIM_HORIZON` for a shard
//! the checkpoint does not name, or when there is no checkpoint: a first run
//! or a lost state directory) — exactly what a crashed run wrote after its
//! last checkpoint — and skips each replayed change whose record is already
//! there. Records are matched by partition key and data; what differs on a
//! replay is left out of the match: the envelope's processing time
//! (`ts_ms`, `ts_us`, `ts_ns`) and the PostgreSQL source block's `sequence`
//! (the previous commit, known to the decoder only within one run)
//! ([`records::identity`]). A call that gets no
//! answer (timeout, lost connection, server error) may have landed: the sink
//! reads the shards the same way before resending, and sends only what is
//! not there. Limits, stated in docs/src/sinks/kinesis.md: outflow must be
//! the only writer of its records to the stream; without a checkpoint the whole retained
//! stream is read once at start (memory grows with it); snapshot rows that a
//! restarted snapshot reads again carry a new snapshot position, so they are
//! written again; a call the server finishes only after the sink gave up on
//! it and looked (the 90 s call timeout) can land twice. The failpoint
//! `kinesis.lost_reply` drops one call's reply to test that lookup.
//!
//! **Back-pressure.** `write` queues records and, once a full call's worth
//! is queued, sends calls until it is not: memory is bounded by about two
//! calls' worth, and a slow, throttling or unreachable Kinesis holds the
//! source. Unreachable or refusing endpoints are retried with backoff;
//! definite errors (missing stream with `create_stream = false`, access
//! denied, bad settings) stop the run with one line and its fix
//! ([`errors`]).
//!
//! The AWS SDK (`aws-config`, `aws-sdk-kinesis`, rustls) signs the calls
//! and resolves region and credentials through its usual chain; its own
//! retries are off, since a blind resend of `PutRecords` duplicates.

mod config;
mod errors;
mod factory;
pub mod records;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Region};
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;
use outflow_model::{ChangeEvent, Op, StreamItem};
use serde_json::json;
use tokio::runtime::Handle;

pub use config::KinesisConfig;
use config::{MAX_BATCH_BYTES, MAX_RECORD_BYTES};
use errors::{classify, Failure};
use records::{partition_key, seq_after, Found};

use crate::format::envelope::EventWriter;
use crate::format::routing::write_key;
use crate::format::values::ValueStyle;
use crate::{Checkpoint, Sink, SinkContext, SinkError};

/// How often a wait on Kinesis says so in the log.
const WAIT_LOG: Duration = Duration::from_secs(10);
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one call may take before it counts as unanswered (longer than
/// a server pause the sink should ride out without an ambiguous resend).
const CALL_TIMEOUT: Duration = Duration::from_secs(90);
/// How far a call looks down the queue for records of keys not yet in it.
const SCAN_WINDOW: usize = 5000;
/// Records read per `GetRecords` call while looking at a shard.
const READ_LIMIT: i32 = 10_000;

/// One record waiting for Kinesis's acknowledgement.
struct Rec {
    pk: String,
    data: Vec<u8>,
    /// Whether the partition key is a row's key (order kept) rather than
    /// a keyless table's name.
    keyed: bool,
}

impl Rec {
    fn size(&self) -> usize {
        self.pk.len() + self.data.len()
    }
}

/// Where to start reading a shard.
enum Start {
    After(String),
    TrimHorizon,
    At(DateTime),
}

/// Exponential backoff with a log line now and then.
#[derive(Default)]
struct Backoff {
    next: Duration,
    logged: Option<Instant>,
}

impl Backoff {
    fn wait(&mut self, sink: &str, what: &str, error: &str) {
        if self.logged.is_none_or(|l| l.elapsed() >= WAIT_LOG) {
            tracing::warn!(sink, error,
                "{what}; retrying (nothing after the last acknowledged record is acknowledged to the source)");
            self.logged = Some(Instant::now());
        }
        self.next = if self.next.is_zero() { Duration::from_millis(100) } else { (self.next * 2).min(MAX_BACKOFF) };
        std::thread::sleep(self.next);
    }

    fn reset(&mut self) {
        self.next = Duration::ZERO;
        self.logged = None;
    }
}

pub struct KinesisSink {
    cfg: KinesisConfig,
    stream: String,
    writer: EventWriter,
    style: ValueStyle,
    runtime: Handle,
    client: Client,
    /// Per shard: the sequence number of its last acknowledged record.
    acked: BTreeMap<String, String>,
    /// Records the stream held past the checkpoint when the sink opened.
    found: Found,
    /// Records waiting for an acknowledgement, in source order.
    pending: VecDeque<Rec>,
    pending_bytes: usize,
    backoff: Backoff,
    /// When this sink opened (a bound for looking at shards it never wrote).
    opened: SystemTime,
    key: Vec<u8>,
    value: Vec<u8>,
    /// Bytes of partition keys and data written by this instance.
    bytes: u64,
}

/// The Kinesis client for these settings: the SDK's region and credential
/// chain, the endpoint override, no SDK retries. Fails when no region or
/// no credentials can be found.
pub(crate) async fn client(cfg: &KinesisConfig) -> Result<Client, SinkError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = &cfg.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(e) = &cfg.endpoint {
        loader = loader.endpoint_url(e);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(SinkError::fatal(
            format!("sink {:?}: no AWS region for the kinesis stream", cfg.name),
            "set `region` in the sink (e.g. \"us-east-1\") or AWS_REGION",
        ));
    }
    let no_credentials = |why: String| {
        SinkError::fatal(
            format!("sink {:?}: no AWS credentials for kinesis ({why})", cfg.name),
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance/task role",
        )
    };
    let Some(credentials) = sdk.credentials_provider() else { return Err(no_credentials("none configured".into())) };
    match tokio::time::timeout(Duration::from_secs(15), credentials.provide_credentials()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(no_credentials(errors::one_line(&e.to_string()))),
        Err(_) => return Err(no_credentials("the credential chain did not answer within 15 s".into())),
    }
    let conf = aws_sdk_kinesis::config::Builder::from(&sdk)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(CALL_TIMEOUT)
                .build(),
        )
        .build();
    Ok(Client::from_conf(conf))
}

/// The checkpoint's shard sequence numbers (None: no checkpoint).
fn parse_checkpoint(checkpoint: Option<&Checkpoint>) -> Result<Option<BTreeMap<String, String>>, SinkError> {
    let Some(c) = checkpoint.filter(|c| !c.is_null()) else { return Ok(None) };
    let shards = c
        .get("shards")
        .and_then(|s| s.as_object())
        .ok_or_else(|| SinkError::Checkpoint(format!("expected {{\"shards\": {{...}}}}, found {c}")))?;
    shards
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_string())),
            None => Err(SinkError::Checkpoint(format!("shard {k}: sequence number {v} is not a string"))),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

impl KinesisConfig {
    /// Connects (waiting while Kinesis cannot be reached), creates the
    /// stream if allowed and reads what the stream holds past `checkpoint`.
    pub fn open(
        &self,
        ctx: SinkContext,
        runtime: Handle,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<KinesisSink, SinkError> {
        let template = self.check()?;
        let stream = self.stream_name(&template, &ctx.pipeline, &ctx.db)?;
        let stored = parse_checkpoint(checkpoint)?;
        let client = runtime.block_on(client(self))?;
        let style = ValueStyle::new(self.unavailable_value_placeholder.clone());
        let mut sink = KinesisSink {
            cfg: self.clone(),
            stream,
            writer: EventWriter::new(self.format, style.clone(), ctx),
            style,
            runtime,
            client,
            acked: BTreeMap::new(),
            found: Found::default(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            backoff: Backoff::default(),
            opened: SystemTime::now(),
            key: Vec::with_capacity(256),
            value: Vec::with_capacity(4096),
            bytes: 0,
        };
        sink.ensure_stream()?;
        sink.recover(stored)?;
        Ok(sink)
    }
}

impl KinesisSink {
    /// Waits until the stream is active, creating it when it is missing
    /// and `create_stream` allows. (`ListShards` rather than
    /// `DescribeStreamSummary`: it answers the same question, and moto's
    /// summary has a timestamp the SDK cannot parse.)
    fn ensure_stream(&mut self) -> Result<(), SinkError> {
        let mut created = false;
        loop {
            let listed =
                self.runtime.block_on(self.client.list_shards().stream_name(&self.stream).max_results(1).send());
            let e = match listed {
                Ok(_) => {
                    self.backoff.reset();
                    return Ok(());
                }
                Err(e) => e,
            };
            if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) {
                if !self.cfg.create_stream {
                    return Err(errors::missing_stream(&self.stream));
                }
                if !created {
                    let shards = i32::try_from(self.cfg.shards).unwrap_or(i32::MAX);
                    let made = self.runtime.block_on(
                        self.client.create_stream().stream_name(&self.stream).shard_count(shards).send(),
                    );
                    match made {
                        Ok(_) => tracing::info!(sink = %self.cfg.name, stream = %self.stream, shards, "created the kinesis stream"),
                        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
                        Err(e) => match classify(&e, &self.stream) {
                            Failure::Fatal(f) => return Err(f),
                            Failure::Retry(t) | Failure::Ambiguous(t) => {
                                self.backoff.wait(&self.cfg.name, "cannot create the kinesis stream", &t);
                                continue;
                            }
                        },
                    }
                    created = true;
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            match classify(&e, &self.stream) {
                Failure::Fatal(f) => return Err(f),
                Failure::Retry(t) | Failure::Ambiguous(t) => {
                    self.backoff.wait(&self.cfg.name, "cannot reach the kinesis stream", &t)
                }
            }
        }
    }

    /// Every shard of the stream (open and closed).
    fn list_shards(&mut self) -> Result<Vec<String>, SinkError> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = match &token {
                Some(t) => self.client.list_shards().next_token(t),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            match self.runtime.block_on(req.send()) {
                Ok(out) => {
                    shards.extend(out.shards().iter().map(|s| s.shard_id().to_string()));
                    match out.next_token() {
                        Some(t) => token = Some(t.to_string()),
                        None => break,
                    }
                }
                Err(e) => match classify(&e, &self.stream) {
                    Failure::Fatal(f) => return Err(f),
                    Failure::Retry(t) | Failure::Ambiguous(t) => {
                        self.backoff.wait(&self.cfg.name, "cannot list the kinesis stream's shards", &t)
                    }
                },
            }
        }
        self.backoff.reset();
        Ok(shards)
    }

    /// Reads `shard` from `start` to its end, handing each record's
    /// partition key and data to `each`; returns the last sequence number.
    fn scan(&mut self, shard: &str, start: Start, mut each: impl FnMut(&str, &[u8])) -> Result<Option<String>, SinkError> {
        let mut iterator = loop {
            let req = self.client.get_shard_iterator().stream_name(&self.stream).shard_id(shard);
            let req = match &start {
                Start::After(seq) => {
                    req.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(seq)
                }
                Start::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
                Start::At(t) => req.shard_iterator_type(ShardIteratorType::AtTimestamp).timestamp(*t),
            };
            match self.runtime.block_on(req.send()) {
                Ok(out) => match out.shard_iterator() {
                    Some(it) => break it.to_string(),
                    None => return Ok(None),
                },
                Err(e) => match classify(&e, &self.stream) {
                    Failure::Fatal(f) => return Err(f),
                    Failure::Retry(t) | Failure::Ambiguous(t) => {
                        self.backoff.wait(&self.cfg.name, "cannot read a kinesis shard", &t)
                    }
                },
            }
        };
        let mut last = None;
        loop {
            let out = match self.runtime.block_on(self.client.get_records().shard_iterator(&iterator).limit(READ_LIMIT).send()) {
                Ok(out) => out,
                Err(e) => match classify(&e, &self.stream) {
                    Failure::Fatal(f) => return Err(f),
                    Failure::Retry(t) | Failure::Ambiguous(t) => {
                        self.backoff.wait(&self.cfg.name, "cannot read a kinesis shard", &t);
                        continue;
                    }
                },
            };
            self.backoff.reset();
            for r in out.records() {
                each(r.partition_key().unwrap_or_default(), r.data().as_ref());
                last = Some(r.sequence_number().to_string());
            }
            let caught_up = out.records().is_empty() && out.millis_behind_latest().unwrap_or(0) == 0;
            match out.next_shard_iterator() {
                Some(next) if !caught_up => iterator = next.to_string(),
                _ => break,
            }
        }
        Ok(last)
    }

    /// On start: reads each shard past the checkpoint and remembers its
    /// records, so that the changes they carry are not written again.
    fn recover(&mut self, stored: Option<BTreeMap<String, String>>) -> Result<(), SinkError> {
        let shards = self.list_shards()?;
        let mut found = Found::default();
        for shard in shards {
            let from = stored.as_ref().and_then(|s| s.get(&shard)).cloned();
            let start = from.clone().map_or(Start::TrimHorizon, Start::After);
            if let Some(seq) = self.scan(&shard, start, |pk, data| found.add(pk, data))?.or(from) {
                self.acked.insert(shard, seq);
            }
        }
        if found.records > 0 {
            tracing::info!(sink = %self.cfg.name, stream = %self.stream, records = found.records,
                "the stream holds records past the last checkpoint; changes already there are not written again");
        }
        self.found = found;
        Ok(())
    }

    fn note_ack(&mut self, shard: &str, seq: &str) {
        match self.acked.get_mut(shard) {
            Some(cur) if !seq_after(seq, cur) => {}
            Some(cur) => *cur = seq.to_string(),
            None => {
                self.acked.insert(shard.to_string(), seq.to_string());
            }
        }
    }

    /// Queues the change's record (unless the stream holds it).
    fn write_change(&mut self, ev: &ChangeEvent) -> Result<(), SinkError> {
        self.key.clear();
        self.value.clear();
        let keyed = ev.op != Op::Truncate && write_key(&mut self.key, ev, &self.style);
        let table = ev.table.id.to_string();
        let key = if keyed { std::str::from_utf8(&self.key).ok() } else { None };
        let pk = partition_key(key, &table);
        self.writer.write_change(&mut self.value, ev);
        self.value.pop(); // the line's newline
        let size = pk.len() + self.value.len();
        if size > MAX_RECORD_BYTES {
            return Err(SinkError::fatal(
                format!(
                    "the change to {table} at {} is {size} bytes as a kinesis record; Kinesis takes at most \
                     {MAX_RECORD_BYTES} bytes (1 MiB) of data plus partition key",
                    ev.position
                ),
                "leave the large columns out with a [[transform]] exclude_columns, or send this table to another \
                 sink; nothing from this change on was acknowledged",
            ));
        }
        if !self.found.is_empty() && self.found.take(&pk, &self.value) {
            return Ok(());
        }
        self.bytes += size as u64;
        self.pending_bytes += size;
        self.pending.push_back(Rec { pk, data: self.value.clone(), keyed });
        while self.pending.len() >= self.cfg.batch_records || self.pending_bytes >= MAX_BATCH_BYTES {
            self.put_batch()?;
        }
        Ok(())
    }

    /// Sends one `PutRecords` call of queued records (at most one per key)
    /// and drops from the queue those Kinesis acknowledged.
    fn put_batch(&mut self) -> Result<(), SinkError> {
        let chosen = choose(&self.pending, self.cfg.batch_records, MAX_BATCH_BYTES);
        let entries: Vec<_> = chosen
            .iter()
            .map(|&i| {
                let r = &self.pending[i];
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(r.data.clone()))
                    .partition_key(&r.pk)
                    .build()
                    .expect("data and partition key are set")
            })
            .collect();
        if chosen.is_empty() {
            return Ok(());
        }
        let started = SystemTime::now();
        let mut sent =
            self.runtime.block_on(self.client.put_records().stream_name(&self.stream).set_records(Some(entries)).send());
        let lost_reply = sent.is_ok() && crate::failpoints::fires("kinesis.lost_reply");
        let mut done = vec![false; chosen.len()];
        if lost_reply {
            sent = Err(aws_sdk_kinesis::error::SdkError::timeout_error("failpoint kinesis.lost_reply"));
        }
        match sent {
            Ok(out) => {
                let mut refused = None;
                for (j, r) in out.records().iter().enumerate().take(chosen.len()) {
                    match r.error_code() {
                        None => {
                            done[j] = true;
                            if let (Some(shard), Some(seq)) = (r.shard_id(), r.sequence_number()) {
                                self.note_ack(shard, seq);
                            }
                        }
                        Some(code) => refused = Some(format!("{code}: {}", r.error_message().unwrap_or(""))),
                    }
                }
                self.remove_done(&chosen, &done);
                match refused {
                    Some(t) => self.backoff.wait(&self.cfg.name, "kinesis refused some records of a PutRecords call", &t),
                    None => self.backoff.reset(),
                }
            }
            Err(e) => match classify(&e, &self.stream) {
                Failure::Fatal(f) => return Err(f),
                Failure::Retry(t) => self.backoff.wait(&self.cfg.name, "kinesis refused a PutRecords call", &t),
                Failure::Ambiguous(t) => {
                    self.backoff.wait(
                        &self.cfg.name,
                        "no answer from kinesis to a PutRecords call; looking for its records before resending",
                        &t,
                    );
                    self.reconcile(&chosen, started)?;
                }
            },
        }
        Ok(())
    }

    /// After an unanswered call: reads each shard past its last
    /// acknowledged record and drops from the queue the call's records that
    /// are there.
    fn reconcile(&mut self, chosen: &[usize], started: SystemTime) -> Result<(), SinkError> {
        let since = DateTime::from(self.opened.min(started) - Duration::from_secs(300));
        let mut found = Found::default();
        for shard in self.list_shards()? {
            let start = match self.acked.get(&shard) {
                Some(seq) => Start::After(seq.clone()),
                None => Start::At(since),
            };
            if let Some(last) = self.scan(&shard, start, |pk, data| found.add(pk, data))? {
                self.note_ack(&shard, &last);
            }
        }
        let done: Vec<bool> = chosen.iter().map(|&i| found.take(&self.pending[i].pk, &self.pending[i].data)).collect();
        let landed = done.iter().filter(|d| **d).count();
        tracing::info!(sink = %self.cfg.name, landed, of = chosen.len(),
            "records of the unanswered call found in the stream; only the others are sent again");
        self.remove_done(chosen, &done);
        Ok(())
    }

    /// Drops the acknowledged records (`done[j]` for `pending[chosen[j]]`).
    fn remove_done(&mut self, chosen: &[usize], done: &[bool]) {
        if !done.contains(&true) {
            return;
        }
        let mut drop = vec![false; self.pending.len()];
        for (&i, &d) in chosen.iter().zip(done) {
            if d {
                drop[i] = true;
                self.pending_bytes -= self.pending[i].size();
            }
        }
        let mut i = 0;
        self.pending.retain(|_| {
            i += 1;
            !drop[i - 1]
        });
    }
}

/// The queued records one `PutRecords` call takes (indexes into `pending`,
/// in queue order): up to `max_records` and `max_bytes`, and at most one
/// record per key, the key's first; keyless tables' records may repeat.
fn choose(pending: &VecDeque<Rec>, max_records: usize, max_bytes: usize) -> Vec<usize> {
    let mut chosen = Vec::new();
    let mut bytes = 0;
    let mut keys = HashSet::new();
    for (i, r) in pending.iter().enumerate().take(SCAN_WINDOW) {
        if chosen.len() == max_records || bytes + r.size() > max_bytes {
            break;
        }
        // A key already in this call: its later changes wait for the next one.
        if r.keyed && !keys.insert(r.pk.as_str()) {
            continue;
        }
        chosen.push(i);
        bytes += r.size();
    }
    chosen
}

impl Sink for KinesisSink {
    fn write(&mut self, items: &[StreamItem]) -> Result<(), SinkError> {
        self.writer.start_batch();
        for item in items {
            if let StreamItem::Change(ev) = item {
                self.write_change(ev)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Checkpoint, SinkError> {
        while !self.pending.is_empty() {
            self.put_batch()?;
        }
        Ok(json!({ "shards": self.acked }))
    }

    fn exactly_once(&self) -> bool {
        true
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pk: &str, keyed: bool, len: usize) -> Rec {
        Rec { pk: pk.into(), data: vec![b'x'; len], keyed }
    }

    #[test]
    fn a_call_takes_each_key_once_in_queue_order() {
        let q: VecDeque<Rec> = [
            rec("a", true, 1),
            rec("b", true, 1),
            rec("a", true, 1),
            rec("t", false, 1),
            rec("t", false, 1),
            rec("c", true, 1),
            rec("b", true, 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(choose(&q, 500, MAX_BATCH_BYTES), [0, 1, 3, 4, 5]);
        assert_eq!(choose(&q, 3, MAX_BATCH_BYTES), [0, 1, 3]);
        // The byte limit ends the call where the next record does not fit.
        let q: VecDeque<Rec> = [rec("a", true, 10), rec("b", true, 10), rec("c", true, 1)].into_iter().collect();
        assert_eq!(choose(&q, 500, 21), [0]);
        assert_eq!(choose(&q, 500, 22), [0, 1]);
    }
}
