//! Kafka errors, classified: transient ones (broker down, leader moving,
//! timeouts) are retried by librdkafka and by the sink's wait loops;
//! definite ones stop the sink with a message naming the setting to change.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::SinkError;

/// The error code inside a Kafka error, when it has one.
pub fn code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// A definite error about `topic` (retrying will not help), explained; `None`
/// for errors worth retrying.
pub fn definite(e: &KafkaError, topic: &str) -> Option<SinkError> {
    use RDKafkaErrorCode as C;
    let msg = match code(e)? {
        C::MessageSizeTooLarge | C::InvalidMessageSize => format!(
            "a record for topic {topic} is larger than kafka accepts ({e}); raise the topic's max.message.bytes \
             (and the broker's message.max.bytes), and [sink.producer] \"message.max.bytes\" to match"
        ),
        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition => format!(
            "topic {topic} does not exist ({e}); create it, or set create_topics = true on this sink"
        ),
        C::TopicAuthorizationFailed => format!(
            "not authorized to write topic {topic} ({e}); grant the principal in [sink.producer] sasl.username \
             WRITE, DESCRIBE and READ (and CREATE with create_topics = true) on it"
        ),
        C::ClusterAuthorizationFailed => format!(
            "not authorized on the cluster ({e}); grant the principal in [sink.producer] sasl.username IdempotentWrite \
             (and CREATE with create_topics = true), or fix the credentials"
        ),
        C::SaslAuthenticationFailed | C::Authentication => format!(
            "kafka authentication failed ({e}); check [sink.producer] security.protocol, sasl.mechanism, sasl.username and sasl.password"
        ),
        C::InvalidTopic => {
            format!("topic name {topic:?} is not valid ({e}); change this sink's `topic` template")
        }
        C::PolicyViolation | C::InvalidReplicationFactor | C::InvalidPartitions | C::InvalidConfig => format!(
            "the broker refused to create topic {topic} ({e}); change `partitions` / `replication_factor`, \
             or create the topic yourself and set create_topics = false"
        ),
        C::Fatal | C::OutOfOrderSequenceNumber | C::UnsupportedForMessageFormat | C::UnsupportedVersion => {
            format!("kafka producer failed for topic {topic} ({e}); the broker does not support idempotent produce, or lost acknowledged data")
        }
        _ => return None,
    };
    Some(SinkError::Data(msg))
}
