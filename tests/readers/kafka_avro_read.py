"""Reads the Kafka sink's Avro records with Confluent's own client, for
tests/e2e/avro.rs.

    python kafka_avro_read.py REGISTRY_URL BROKERS TOPIC [TOPIC...]

REGISTRY_URL may carry `user:password@` for basic auth.

Keys and values are decoded by confluent-kafka's `AvroDeserializer` with a
`SchemaRegistryClient` (the writer schema fetched by the id in each
record's wire-format header), then shown the way Kafka Connect's JSON
converter shows the same data, so a test can compare them with the JSON
records of the same changes: `Decimal` as base64 of the unscaled value's
two's complement (Java's BigInteger.toByteArray), bytes as base64, Avro
`date`/`time-millis`/`timestamp-millis` as days/ms. Prints the same JSON as
kafka_read.py, with each record's `key_schema_id` and `value_schema_id`
(null for a null key or a tombstone).
"""
import base64
import datetime
import decimal
import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

import kafka_read

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def connect_json(v):
    """The JSON converter's form of a decoded Avro value."""
    if isinstance(v, dict):
        return {k: connect_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [connect_json(x) for x in v]
    if isinstance(v, decimal.Decimal):
        sign, digits, exponent = v.as_tuple()
        unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        n = (unscaled.bit_length() if unscaled >= 0 else (~unscaled).bit_length()) // 8 + 1
        return base64.b64encode(unscaled.to_bytes(n, "big", signed=True)).decode()
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, datetime.datetime):
        t = v if v.tzinfo else v.replace(tzinfo=datetime.timezone.utc)
        return (t - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(v, datetime.date):
        return (v - EPOCH.date()).days
    if isinstance(v, datetime.time):
        return ((v.hour * 60 + v.minute) * 60 + v.second) * 1000 + v.microsecond // 1000
    return v


def main():
    registry, brokers, topics = sys.argv[1], sys.argv[2], sys.argv[3:]
    conf = {"url": registry}
    scheme, _, rest = registry.partition("://")
    if "@" in rest:  # http://user:password@host:port
        info, _, host = rest.rpartition("@")
        conf = {"url": f"{scheme}://{host}", "basic.auth.user.info": info}
    deserializer = AvroDeserializer(SchemaRegistryClient(conf))

    def decode(topic, field, b):
        if b is None:
            return None
        if len(b) < 5 or b[0] != 0:
            raise SystemExit(f"{topic}: a {field} is not in Confluent's wire format: {b[:16]!r}")
        kind = MessageField.KEY if field == "key" else MessageField.VALUE
        return {"schema_id": int.from_bytes(b[1:5], "big"),
                "data": connect_json(deserializer(b, SerializationContext(topic, kind)))}

    out = {}
    for topic in topics:
        t = kafka_read.read_topic(brokers, topic, decode)
        for r in t["records"]:
            for field in ("key", "value"):
                d = r[field]
                r[f"{field}_schema_id"] = d["schema_id"] if d is not None else None
                r[field] = d["data"] if d is not None else None
        out[topic] = t
    print(json.dumps({"topics": out}))


if __name__ == "__main__":
    main()
