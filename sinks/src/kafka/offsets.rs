//! The sink's `{name}.outflow-offsets` record (see `recovery`): read back
//! at start, appended after each flush once every record is delivered.

use super::*;

impl KafkaSink {
    /// Reads the last offsets record of this sink.
    pub(super) fn recover(&mut self, from: Option<i64>) -> Result<(), SinkError> {
        let topic = self.offsets_topic.clone();
        let partitions = self.ensure_topic(&topic, 1, true)?;
        if partitions != 1 {
            return Err(SinkError::Data(format!(
                "{topic} has {partitions} partitions; outflow's offsets topic must have exactly one: delete it and let outflow create it"
            )));
        }
        let consumer = self.consumer.as_ref().expect("exactly-once sinks have a consumer");
        let found = recovery::read_offsets(consumer, &topic, &self.cfg.name, from)?;
        if let Some((offset, rec)) = found {
            let position: Position = rec
                .position
                .parse()
                .map_err(|e| SinkError::Checkpoint(format!("offsets record at offset {offset} of {topic}: {e}")))?;
            tracing::info!(sink = %self.cfg.name, position = %position, "resuming after what kafka already has");
            self.delivered = Delivered::recovered(Some(position), BTreeMap::new(), rec.snapshot);
            self.anchors = rec.partitions;
            if let Some(changes) = &mut self.schema_changes {
                changes.written = rec.shapes;
            }
            self.offsets_offset = Some(offset);
        }
        Ok(())
    }

    /// Appends this sink's offsets record and waits for its delivery.
    pub(super) fn write_offsets(&mut self, position: &Position) -> Result<(), SinkError> {
        let delivered = self.producer.context().state.lock().unwrap_or_else(|e| e.into_inner()).delivered.clone();
        let mut partitions = std::mem::take(&mut self.anchors);
        for (topic, state) in &self.topics {
            let Some(offsets) = delivered.get(topic) else { continue };
            for (p, mark) in state.sent.iter().enumerate() {
                let (Some(mark), Some(&offset)) = (mark, offsets.get(p)) else { continue };
                if offset >= 0 {
                    partitions
                        .entry(topic.clone())
                        .or_default()
                        .insert(p as i32, Anchor(offset, mark.position.to_string(), mark.seq));
                }
            }
        }
        let snapshot = Some(self.delivered.commit_record(&Durable::All).clone());
        let shapes = self.schema_changes.as_ref().map(|c| c.written.clone()).unwrap_or_default();
        let record = OffsetsRecord { position: position.to_string(), partitions, snapshot, shapes };
        let value = serde_json::to_vec(&record).expect("offsets records serialize");
        self.anchors = record.partitions;
        let topic = self.offsets_topic.clone();
        let name = self.cfg.name.clone();
        let r: BaseRecord<'_, str, [u8]> =
            BaseRecord::to(&topic).partition(0).key(name.as_str()).payload(value.as_slice());
        self.producer.send(r).map_err(|(e, _)| {
            errors::definite(&e, &topic).unwrap_or_else(|| SinkError::Data(format!("cannot write {topic}: {e}")))
        })?;
        self.wait_delivered()?;
        let st = self.producer.context().state.lock().unwrap_or_else(|e| e.into_inner());
        self.offsets_offset = st.delivered.get(&topic).and_then(|o| o.first().copied()).filter(|&o| o >= 0);
        Ok(())
    }
}
