//! Topics: created when allowed, waited for while the broker is away, and
//! each topic's partitions with what an earlier run left at their ends.

use super::*;

pub(super) struct TopicState {
    pub(super) partitions: i32,
    /// What an earlier run left at each partition's end (exactly-once only).
    pub(super) tails: Vec<Option<Mark>>,
    /// The last record this run produced to each partition.
    pub(super) sent: Vec<Option<Mark>>,
}

impl KafkaSink {
    /// Makes sure `topic` exists (creating it first when allowed: some
    /// brokers auto-create a topic with their own partition count as soon
    /// as its metadata is asked for) and returns its partition count; waits
    /// with backoff while the broker is unreachable.
    pub(super) fn ensure_topic(&self, topic: &str, partitions: i32, compact: bool) -> Result<i32, SinkError> {
        if self.cfg.create_topics {
            self.create_topic(topic, partitions, compact)?;
        }
        let mut backoff = Duration::from_millis(200);
        let mut logged: Option<Instant> = None;
        loop {
            match self.producer.client().fetch_metadata(Some(topic), Duration::from_secs(5)) {
                Ok(md) => {
                    let t = md.topics().iter().find(|t| t.name() == topic);
                    let n = t.map_or(0, |t| t.partitions().len() as i32);
                    match t.and_then(|t| t.error()).map(RDKafkaErrorCode::from) {
                        None if n > 0 => return Ok(n),
                        None | Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
                            if !self.cfg.create_topics =>
                        {
                            return Err(SinkError::Data(format!(
                                "topic {topic} does not exist; create it, or set create_topics = true on sink {:?}",
                                self.cfg.name
                            )))
                        }
                        Some(code) => {
                            if let Some(fatal) = errors::definite(&KafkaError::MetadataFetch(code), topic) {
                                if !matches!(
                                    code,
                                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
                                ) {
                                    return Err(fatal);
                                }
                            }
                        }
                        None => {}
                    }
                }
                Err(e) => {
                    if let Some(fatal) = errors::definite(&e, topic) {
                        return Err(fatal);
                    }
                    if logged.is_none_or(|l| l.elapsed() >= WAIT_LOG) {
                        tracing::warn!(sink = %self.cfg.name, brokers = %self.cfg.brokers, error = %e,
                            "kafka is not reachable; retrying (check `brokers` if this persists)");
                        logged = Some(Instant::now());
                    }
                }
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Creates `topic`; an existing topic is fine. Retries while the broker
    /// is unreachable.
    pub(super) fn create_topic(&self, topic: &str, partitions: i32, compact: bool) -> Result<(), SinkError> {
        let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(self.cfg.replication_factor));
        if compact {
            new = new.set("cleanup.policy", "compact");
        }
        let opts = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(30)))
            .request_timeout(Some(Duration::from_secs(10)));
        let mut backoff = Duration::from_millis(200);
        let mut logged: Option<Instant> = None;
        loop {
            match futures::executor::block_on(self.admin.create_topics([&new], &opts)) {
                Ok(results) => {
                    for r in results {
                        match r {
                            Ok(_) => tracing::info!(topic, partitions, "created kafka topic"),
                            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                            Err((_, code)) => {
                                let e = KafkaError::AdminOp(code);
                                return Err(errors::definite(&e, topic).unwrap_or_else(|| {
                                    SinkError::Data(format!(
                                        "cannot create topic {topic}: {code}; create it yourself and set create_topics = false"
                                    ))
                                }));
                            }
                        }
                    }
                    return Ok(());
                }
                Err(e) => {
                    if let Some(fatal) = errors::definite(&e, topic) {
                        return Err(fatal);
                    }
                    if logged.is_none_or(|l| l.elapsed() >= WAIT_LOG) {
                        tracing::warn!(sink = %self.cfg.name, brokers = %self.cfg.brokers, error = %e,
                            "cannot reach kafka to create topic {topic}; retrying (check `brokers` if this persists)");
                        logged = Some(Instant::now());
                    }
                }
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The topic state, learning about the topic the first time: partition
    /// count, and (exactly-once) what an earlier run left at its tails.
    pub(super) fn topic_state(&mut self, topic: &str) -> Result<&mut TopicState, SinkError> {
        if !self.topics.contains_key(topic) {
            let partitions = self.ensure_topic(topic, self.cfg.partitions, false)?;
            let tails = match &self.consumer {
                Some(consumer) => recovery::read_tails(consumer, topic, partitions, self.anchors.get(topic))?,
                None => vec![None; partitions as usize],
            };
            if let Some((p, last)) =
                tails.iter().enumerate().filter_map(|(p, t)| Some((p, t.as_ref()?))).max_by(|a, b| a.1.cmp(b.1))
            {
                tracing::info!(topic, partition = p, position = %last.position, "topic already holds changes up to this position; skipping those");
            }
            let sent = vec![None; partitions as usize];
            self.topics.insert(topic.to_string(), TopicState { partitions, tails, sent });
        }
        Ok(self.topics.get_mut(topic).expect("inserted above"))
    }
}
