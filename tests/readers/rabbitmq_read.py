"""Independent readers of what the RabbitMQ sink wrote, for the e2e tests.

  rabbitmq_read.py bind AMQP_URL EXCHANGE QUEUE
      declares a durable topic exchange and a durable queue bound to it with
      `#` (pika), so that every message the sink publishes is kept.
  rabbitmq_read.py queue AMQP_URL QUEUE
      drains the queue (basic.get until empty, pika) and prints
      {"messages": [{"routing_key", "message_id", "delivery_mode",
      "headers", "value"}, ...]} in queue order.
  rabbitmq_read.py stream HOST PORT USER PASSWORD VHOST STREAM
      reads the stream from its first offset over the stream protocol
      (rstream) until nothing more arrives and prints {"messages": [{"offset",
      "key", "op", "table", "position", "value"}, ...]}. A stream has no
      end marker (RabbitMQ 3.10 has no stream stats), so the reader stops
      when no message came for a while after the last one; the tests call
      it once outflow has finished writing.
  rabbitmq_read.py count HOST PORT USER PASSWORD VHOST STREAM
      the same read, printing only {"messages": N, "positions": distinct
      `position` values} (scripts/bench.sh: a stream's `messages` in
      rabbitmqctl also counts the broker's deduplication records).
"""

import asyncio
import json
import sys
import time


def text(v):
    return v.decode() if isinstance(v, (bytes, bytearray)) else v


def bind(url, exchange, queue):
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
    ch.queue_declare(queue=queue, durable=True)
    ch.queue_bind(queue=queue, exchange=exchange, routing_key="#")
    conn.close()


def drain(url, queue):
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    out = []
    while True:
        method, props, body = ch.basic_get(queue=queue, auto_ack=True)
        if method is None:
            break
        headers = {k: text(v) for k, v in (props.headers or {}).items()}
        headers["key"] = json.loads(headers["key"]) if "key" in headers else None
        out.append(
            {
                "routing_key": method.routing_key,
                "message_id": props.message_id,
                "delivery_mode": props.delivery_mode,
                "content_type": props.content_type,
                "headers": headers,
                "value": json.loads(body),
            }
        )
    conn.close()
    print(json.dumps({"messages": out}))


async def read_stream(host, port, user, password, vhost, stream, count_only=False):
    from rstream import Consumer, ConsumerOffsetSpecification, OffsetType, amqp_decoder

    out = []
    positions = set()
    last = [time.monotonic()]

    async def on_message(msg, ctx):
        if count_only:
            props = msg.application_properties or {}
            positions.add(props.get(b"position", props.get("position")))
            out.append(None)
            last[0] = time.monotonic()
            return
        props = {text(k): text(v) for k, v in (msg.application_properties or {}).items()}
        body = b"".join(msg.body) if isinstance(msg.body, list) else msg.body
        out.append(
            {
                "offset": ctx.offset,
                "key": json.loads(props["key"]),
                "op": props.get("op"),
                "table": props.get("table"),
                "position": props.get("position"),
                "value": json.loads(body),
            }
        )
        last[0] = time.monotonic()

    consumer = Consumer(host, int(port), username=user, password=password, vhost=vhost)
    await consumer.start()
    await consumer.subscribe(
        stream,
        on_message,
        decoder=amqp_decoder,
        offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST, None),
        initial_credit=50,
    )
    started = time.monotonic()
    while True:
        await asyncio.sleep(0.2)
        idle = time.monotonic() - last[0]
        if out and idle > 2.0:
            break
        if not out and time.monotonic() - started > 5.0:
            break
        if time.monotonic() - started > 600:
            break
    await consumer.close()
    if count_only:
        print(json.dumps({"messages": len(out), "positions": len(positions)}))
    else:
        print(json.dumps({"messages": out}))


def main():
    cmd = sys.argv[1]
    if cmd == "bind":
        bind(*sys.argv[2:5])
    elif cmd == "queue":
        drain(*sys.argv[2:4])
    elif cmd == "stream":
        asyncio.run(read_stream(*sys.argv[2:8]))
    elif cmd == "count":
        asyncio.run(read_stream(*sys.argv[2:8], count_only=True))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
