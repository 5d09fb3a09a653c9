"""Independent reader for the Kafka sink's topics, used by tests/e2e/kafka.rs.

    python kafka_read.py BROKERS TOPIC [TOPIC...]
    python kafka_read.py BROKERS --list PREFIX

A plain confluent-kafka consumer, no consumer group: every partition of each
topic is assigned explicitly from its beginning and read until the partition
reports EOF (read_uncommitted, like any consumer that does not opt into
transactions). Prints one JSON object:
{"topics": {TOPIC: {"partitions": N, "records": [{"partition", "offset",
"key", "value", "headers"}]}}} with key and value parsed as JSON when they
are JSON, else as text (null for a null key or a tombstone) and headers as {name: text}. Records are in
partition order, then offset order. With --list, prints the topic names that
start with PREFIX.
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

DEADLINE_S = 120


def parse(b):
    """JSON when the bytes are JSON (outflow's keys and values), else the text."""
    if b is None:
        return None
    try:
        return json.loads(b)
    except ValueError:
        return b.decode("utf-8", "replace")


def read_topic(brokers, topic, decode=None):
    """The topic's records; `decode(topic, field, bytes)` ("key"/"value")
    turns keys and values into JSON-ready values (default: `parse`)."""
    decode = decode or (lambda _topic, _field, b: parse(b))
    admin = AdminClient({"bootstrap.servers": brokers})
    md = admin.list_topics(topic, timeout=30)
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        return {"partitions": 0, "records": []}
    parts = sorted(t.partitions)
    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "outflow-e2e-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_uncommitted",
    })
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    open_parts = set(parts)
    by_part = {p: [] for p in parts}
    deadline = time.monotonic() + DEADLINE_S
    while open_parts:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out reading {topic}: partitions {sorted(open_parts)} never reached EOF")
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                open_parts.discard(m.partition())
                continue
            raise SystemExit(f"reading {topic}: {m.error()}")
        by_part[m.partition()].append({
            "partition": m.partition(),
            "offset": m.offset(),
            "key": decode(topic, "key", m.key()),
            "value": decode(topic, "value", m.value()),
            "headers": {k: (v.decode() if v is not None else None) for k, v in (m.headers() or [])},
        })
    c.close()
    return {"partitions": len(parts), "records": [r for p in parts for r in by_part[p]]}


def main():
    brokers = sys.argv[1]
    if sys.argv[2] == "--list":
        md = AdminClient({"bootstrap.servers": brokers}).list_topics(timeout=30)
        print(json.dumps(sorted(t for t in md.topics if t.startswith(sys.argv[3]))))
        return
    print(json.dumps({"topics": {t: read_topic(brokers, t) for t in sys.argv[2:]}}))


if __name__ == "__main__":
    main()
