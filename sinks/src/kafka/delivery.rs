//! librdkafka's callbacks (delivery reports, client errors) and the sink's
//! waits on the broker: for every record's report, and the failure the
//! reports carried.

use super::*;

/// librdkafka callbacks: delivery reports and client errors, served by the
/// sink's own `poll`/`flush` calls on its thread.
#[derive(Default)]
pub(super) struct Delivery {
    pub(super) state: Mutex<DeliveryState>,
}

#[derive(Default)]
pub(super) struct DeliveryState {
    /// Highest delivered offset per topic and partition.
    pub(super) delivered: HashMap<String, Vec<i64>>,
    /// The first failed delivery.
    pub(super) failed: Option<SinkError>,
    /// The last client-level error (broker down...), for wait messages.
    pub(super) last_error: Option<String>,
}

impl ClientContext for Delivery {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::warn!(facility = fac, "librdkafka: {message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, "kafka: {reason}");
        self.state.lock().unwrap_or_else(|e| e.into_inner()).last_error = Some(reason.to_string());
    }
}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(msg) => {
                let (p, off) = (msg.partition() as usize, msg.offset());
                let slots = match st.delivered.get_mut(msg.topic()) {
                    Some(s) => s,
                    None => st.delivered.entry(msg.topic().to_string()).or_default(),
                };
                if slots.len() <= p {
                    slots.resize(p + 1, -1);
                }
                slots[p] = slots[p].max(off);
            }
            Err((e, msg)) => {
                if st.failed.is_none() {
                    let topic = msg.topic();
                    st.failed = Some(errors::definite(e, topic).unwrap_or_else(|| {
                        SinkError::Data(format!("kafka did not accept a record for topic {topic}: {e}"))
                    }));
                }
            }
        }
    }
}

impl KafkaSink {
    pub(super) fn check_failed(&self) -> Result<(), SinkError> {
        let mut st = self.producer.context().state.lock().unwrap_or_else(|e| e.into_inner());
        match st.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(super) fn log_waiting(&self, what: &str) {
        let last = self.producer.context().state.lock().unwrap_or_else(|e| e.into_inner()).last_error.clone();
        tracing::warn!(
            sink = %self.cfg.name,
            in_flight = self.producer.in_flight_count(),
            last_error = last.as_deref().unwrap_or("none"),
            "{what}; nothing after the last delivered record is acknowledged to the source"
        );
    }

    /// Waits until librdkafka has a delivery report for every record.
    pub(super) fn wait_delivered(&self) -> Result<(), SinkError> {
        let mut since = Instant::now();
        loop {
            match self.producer.flush(Duration::from_millis(500)) {
                Ok(()) => break,
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {}
                Err(e) => {
                    if let Some(fatal) = errors::definite(&e, "(flush)") {
                        return Err(fatal);
                    }
                }
            }
            self.check_failed()?;
            if let Some((code, reason)) = self.producer.client().fatal_error() {
                return Err(SinkError::Data(format!("kafka producer failed: {code}: {reason}")));
            }
            if since.elapsed() >= WAIT_LOG {
                self.log_waiting("waiting for kafka to acknowledge records");
                since = Instant::now();
            }
        }
        self.check_failed()
    }
}
