//! Debezium's heartbeat records (`[sink.debezium] heartbeat.interval.ms`).

use super::*;

pub(super) struct HeartbeatClock {
    pub(super) every: Heartbeat,
    pub(super) topic: String,
    /// The topic exists (checked on the first heartbeat).
    pub(super) ready: bool,
    pub(super) next: Instant,
    pub(super) position: Option<Position>,
}

impl KafkaSink {
    /// Produces a heartbeat record when one is due: key `{"serverName":
    /// <pipeline>}`, value `{"ts_ms": <now>}` (Debezium's), with the furthest
    /// position written in the position header. Heartbeats are not changes:
    /// they skip the exactly-once bookkeeping (a crash may repeat or drop
    /// one) and a full queue skips one rather than holding the source.
    pub(super) fn heartbeat(&mut self) -> Result<(), SinkError> {
        let Some(clock) = self.heartbeat.as_mut().filter(|c| Instant::now() >= c.next) else { return Ok(()) };
        clock.next = Instant::now() + clock.every.interval;
        let topic = clock.topic.clone();
        if !clock.ready {
            self.ensure_topic(&topic, 1, false)?;
        }
        let clock = self.heartbeat.as_mut().expect("checked above");
        clock.ready = true;
        let ts_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let (key, value) = Heartbeat::record(&self.ctx.pipeline, ts_ms, self.debezium.schemas);
        let position = clock.position.as_ref().map(ToString::to_string);
        let mut headers = OwnedHeaders::new_with_capacity(1);
        if let Some(p) = &position {
            headers = headers.insert(Header { key: POSITION_HEADER, value: Some(p) });
        }
        let record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&topic).partition(0).key(key.as_slice()).payload(value.as_slice()).headers(headers);
        match self.producer.send(record) {
            Ok(()) | Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {}
            Err((e, _)) => {
                return Err(errors::definite(&e, &topic)
                    .unwrap_or_else(|| SinkError::Data(format!("cannot produce to topic {topic}: {e}"))))
            }
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }
}
