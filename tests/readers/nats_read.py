"""Independent reader for the NATS sink's stream, used by tests/e2e/nats.rs.

    python nats_read.py read URL STREAM
    python nats_read.py count URL STREAM
    python nats_read.py create URL STREAM SUBJECT DUPLICATE_WINDOW_SECONDS

A plain nats-py client. `read` gets every message of the JetStream stream
STREAM by sequence (the "get message" API), with its headers, and prints one
JSON object: {"messages": [{"seq", "subject", "headers", "id", "key",
"value", "op", "table", "position"}]} in stream order, with the Outflow-Key
header and the body parsed as JSON when they are JSON, else as text; a
missing stream reads as no messages. `count` prints the stream's message
count (0 when it is missing). `create` creates the stream with one subject
filter and the given duplicate window, and prints its config.
"""
import asyncio
import json
import os
import ssl
import sys

import nats
from nats.js.errors import NotFoundError


def parse(b):
    """JSON when the bytes are JSON (outflow's keys and bodies), else the text."""
    if b is None:
        return None
    if isinstance(b, str):
        b = b.encode()
    try:
        return json.loads(b)
    except ValueError:
        return b.decode("utf-8", "replace")


def tls(url):
    """For tls:// URLs: trust the CA in $OUTFLOW_TEST_TLS_CA."""
    if not url.startswith("tls://"):
        return {}
    return {"tls": ssl.create_default_context(cafile=os.environ["OUTFLOW_TEST_TLS_CA"])}


async def read(url, stream):
    nc = await nats.connect(url, allow_reconnect=False, **tls(url))
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return []
        out = []
        if info.state.messages == 0:
            return out
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                m = await js.get_msg(stream, seq)
            except NotFoundError:
                continue
            headers = dict(m.headers or {})
            out.append({
                "seq": m.seq,
                "subject": m.subject,
                "headers": headers,
                "id": headers.get("Nats-Msg-Id"),
                "key": parse(headers.get("Outflow-Key")),
                "value": parse(m.data),
                "op": headers.get("Outflow-Op"),
                "table": headers.get("Outflow-Table"),
                "position": headers.get("Outflow-Position"),
            })
        return out
    finally:
        await nc.close()


async def count(url, stream):
    nc = await nats.connect(url, allow_reconnect=False, **tls(url))
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    except NotFoundError:
        return 0
    finally:
        await nc.close()


async def create(url, stream, subject, duplicate_window):
    nc = await nats.connect(url, allow_reconnect=False, **tls(url))
    try:
        info = await nc.jetstream().add_stream(name=stream, subjects=[subject], duplicate_window=duplicate_window)
        return info.config.as_dict()
    finally:
        await nc.close()


def main():
    verb, url, stream = sys.argv[1:4]
    if verb == "read":
        print(json.dumps({"messages": asyncio.run(read(url, stream))}))
    elif verb == "count":
        print(asyncio.run(count(url, stream)))
    elif verb == "create":
        print(json.dumps(asyncio.run(create(url, stream, sys.argv[4], float(sys.argv[5])))))
    else:
        sys.exit(f"unknown verb {verb}; use read, count or create")


if __name__ == "__main__":
    main()
