"""Independent reader for the Redis sink's streams, used by tests/e2e/redis.rs.

    python redis_read.py URL STREAM [STREAM...]

A plain redis-py client: XRANGE - + over each whole stream. Prints one JSON
object: {"streams": {STREAM: [{"id", "key", "value", "op", "table",
"position"}]}} in stream order, with key and value parsed as JSON when they
are JSON, else as text. A missing stream reads as no entries.
"""
import json
import sys

import redis


def parse(b):
    """JSON when the bytes are JSON (outflow's keys and values), else the text."""
    if b is None:
        return None
    try:
        return json.loads(b)
    except ValueError:
        return b.decode("utf-8", "replace")


def read_stream(r, stream):
    out = []
    last = "-"
    while True:
        batch = r.xrange(stream, min=last, max="+", count=10000)
        if last != "-" and batch and batch[0][0].decode() == last:
            batch = batch[1:]
        if not batch:
            return out
        for entry_id, fields in batch:
            f = {k.decode(): v for k, v in fields.items()}
            out.append({
                "id": entry_id.decode(),
                "key": parse(f.get("key")),
                "value": parse(f.get("value")),
                "op": f.get("op", b"").decode(),
                "table": f.get("table", b"").decode(),
                "position": f.get("position", b"").decode(),
            })
        last = batch[-1][0].decode()


def main():
    r = redis.Redis.from_url(sys.argv[1])
    print(json.dumps({"streams": {s: read_stream(r, s) for s in sys.argv[2:]}}))


if __name__ == "__main__":
    main()
