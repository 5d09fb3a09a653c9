"""A webhook receiver for the HTTP sink's tests and bench.

    http_receiver.py DIR [--secret S] [--count-only] [--tls CERT KEY]

Binds a free loopback port and writes it to DIR/port (atomically), then
serves POSTs on any path, one thread per connection (HTTP/1.1 keep-alive);
with --tls, over TLS with that certificate chain and key (PEM files).

Each request's X-Outflow-Signature (`sha256=<hex>`) is checked here, with
Python's own hmac/hashlib, against the exact body bytes and the secret.
Every request is appended to DIR/requests.jsonl as one JSON object: path,
status answered, idempotency key, headers (lowercase names), sig_ok
(true/false, null without --secret), count, body (the parsed JSON).

DIR/control.json, read on every request, changes the answers while the
receiver runs (the test rewrites it):
  {"status": 503, "body": "...", "retry_after": "1"}
      answer that status (with that body and Retry-After) instead of 200;
  {"drop": true}          close the connection without answering;
  {"sleep": 0.5}          wait that many seconds before answering;
  {"max_body": 1000}      answer 413 to bodies larger than that;
  "until": EPOCH          (with any of them) only until that epoch time.
Dropped requests are recorded with status 0.

--count-only (bench): no parsing, no file per request; sums X-Outflow-Count
and writes the total to DIR/count (atomically) after each request.
"""

import hashlib
import hmac
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIR = sys.argv[1]
SECRET = None
COUNT_ONLY = "--count-only" in sys.argv
if "--secret" in sys.argv:
    SECRET = sys.argv[sys.argv.index("--secret") + 1].encode()

LOCK = threading.Lock()
TOTAL = 0
LOG = None if COUNT_ONLY else open(os.path.join(DIR, "requests.jsonl"), "a", buffering=1)


def write_atomic(name, text):
    tmp = os.path.join(DIR, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(DIR, name))


def control():
    try:
        with open(os.path.join(DIR, "control.json")) as f:
            c = json.load(f)
    except (OSError, ValueError):
        return {}
    if "until" in c and time.time() >= float(c["until"]):
        return {}
    return c


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", retry_after=None):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        global TOTAL
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if COUNT_ONLY:
            with LOCK:
                TOTAL += int(self.headers.get("X-Outflow-Count", "0"))
                write_atomic("count", str(TOTAL))
            self.answer(200)
            return
        c = control()
        if c.get("sleep"):
            time.sleep(float(c["sleep"]))
        status, text, retry_after = 200, b"", None
        if c.get("drop"):
            status = 0
        elif c.get("status"):
            status, text = int(c["status"]), c.get("body", "").encode()
            retry_after = c.get("retry_after")
        elif c.get("max_body") and len(body) > int(c["max_body"]):
            status, text = 413, b"body too large for this receiver"
        sig_ok = None
        if SECRET is not None:
            want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
            sig_ok = hmac.compare_digest(want, self.headers.get("X-Outflow-Signature", ""))
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        record = {
            "path": self.path,
            "status": status,
            "key": self.headers.get("Idempotency-Key"),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "sig_ok": sig_ok,
            "count": int(self.headers.get("X-Outflow-Count", "0")),
            "body": parsed,
            "t": time.time(),
        }
        with LOCK:
            LOG.write(json.dumps(record) + "\n")
        if status == 0:
            self.close_connection = True
            return
        self.answer(status, text, retry_after)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client killed mid-request (the kill -9 tests): not an error here.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


server = Server(("127.0.0.1", 0), Handler)
if "--tls" in sys.argv:
    i = sys.argv.index("--tls")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(sys.argv[i + 1], sys.argv[i + 2])
    server.socket = tls.wrap_socket(server.socket, server_side=True)
write_atomic("port", str(server.server_address[1]))
server.serve_forever()
