"""A test implementation of the Confluent Schema Registry's REST contract,
for tests/e2e/avro.rs. NOT a schema registry: no compatibility checks, no
storage beyond the process, no references, Avro only. It answers the
endpoints outflow and confluent-kafka's SchemaRegistryClient use, with the
documented request and response shapes
(https://docs.confluent.io/platform/current/schema-registry/develop/api.html):

    POST /subjects/{subject}/versions  {"schema": "...", "schemaType"?: "AVRO"}
                                       -> {"id": N}  (the same schema -> the same id,
                                          ids global across subjects, as Confluent's)
    GET  /schemas/ids/{id}             -> {"schema": "..."}
    GET  /subjects                     -> ["subject", ...]
    GET  /subjects/{subject}/versions  -> [1, 2, ...]
    GET  /subjects/{subject}/versions/{version|latest}
                                       -> {"subject", "version", "id", "schema"}

Errors are {"error_code": N, "message": "..."} with Confluent's codes
(40401 subject not found, 40402 version not found, 40403 schema not found,
42201 invalid schema, 401 unauthorized).

    python schema_registry.py [--port N] [--user U --password P] [--refuse-new-versions]

listens on 127.0.0.1 on port N (default: a free port), prints `listening PORT` on stdout, and
serves until killed. With --user/--password every request needs HTTP basic
auth with them (else 401). With --refuse-new-versions a second, different
schema for a subject is answered 409 (error_code 409), as a registry whose
compatibility rule refuses it would (no rule is actually evaluated).
"""
import argparse
import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class Incompatible(Exception):
    pass


class Registry:
    def __init__(self, refuse_new_versions=False):
        self.refuse_new_versions = refuse_new_versions
        self.lock = threading.Lock()
        self.schemas = []  # id - 1 -> schema text
        self.by_canonical = {}  # canonical text -> id
        self.subjects = {}  # subject -> [id of version 1, 2, ...]

    def register(self, subject, schema):
        canonical = json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
        with self.lock:
            sid = self.by_canonical.get(canonical)
            versions = self.subjects.get(subject, [])
            if self.refuse_new_versions and versions and sid not in versions:
                raise Incompatible(subject)
            if sid is None:
                self.schemas.append(schema)
                sid = len(self.schemas)
                self.by_canonical[canonical] = sid
            versions = self.subjects.setdefault(subject, [])
            if sid not in versions:
                versions.append(sid)
            return sid


def handler(registry, auth):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stderr.write("schema_registry: " + (fmt % args) + "\n")

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status, code, message):
            self.reply(status, {"error_code": code, "message": message})

        def authorized(self):
            if auth is None:
                return True
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                try:
                    if base64.b64decode(header[6:]).decode() == auth:
                        return True
                except ValueError:
                    pass
            self.error(401, 401, "Unauthorized")
            return False

        def parts(self):
            return [unquote(p) for p in urlsplit(self.path).path.split("/") if p]

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            if not self.authorized():
                return
            p = self.parts()
            if len(p) != 3 or p[0] != "subjects" or p[2] != "versions":
                return self.error(404, 404, "HTTP 404 Not Found")
            try:
                req = json.loads(body)
                if req.get("schemaType", "AVRO") != "AVRO":
                    raise ValueError("only AVRO schemas")
                sid = registry.register(p[1], req["schema"])
            except Incompatible:
                return self.error(409, 409, "Schema being registered is incompatible with an earlier schema "
                                            f"for subject \"{p[1]}\"")
            except (ValueError, KeyError, TypeError) as e:
                return self.error(422, 42201, f"Invalid schema: {e}")
            self.reply(200, {"id": sid})

        def do_GET(self):
            if not self.authorized():
                return
            p = self.parts()
            with registry.lock:
                if len(p) == 3 and p[:2] == ["schemas", "ids"]:
                    sid = int(p[2]) if p[2].isdigit() else 0
                    if not 0 < sid <= len(registry.schemas):
                        return self.error(404, 40403, "Schema not found")
                    return self.reply(200, {"schema": registry.schemas[sid - 1]})
                if p == ["subjects"]:
                    return self.reply(200, sorted(registry.subjects))
                if len(p) >= 3 and p[0] == "subjects" and p[2] == "versions":
                    versions = registry.subjects.get(p[1])
                    if versions is None:
                        return self.error(404, 40401, f"Subject '{p[1]}' not found.")
                    if len(p) == 3:
                        return self.reply(200, list(range(1, len(versions) + 1)))
                    if len(p) == 4:
                        v = len(versions) if p[3] == "latest" else (int(p[3]) if p[3].isdigit() else 0)
                        if not 0 < v <= len(versions):
                            return self.error(404, 40402, "Version not found.")
                        sid = versions[v - 1]
                        return self.reply(200, {"subject": p[1], "version": v, "id": sid,
                                                "schema": registry.schemas[sid - 1]})
            self.error(404, 404, "HTTP 404 Not Found")

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--refuse-new-versions", action="store_true")
    args = ap.parse_args()
    auth = f"{args.user}:{args.password}" if args.user is not None else None
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(Registry(args.refuse_new_versions), auth))
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
