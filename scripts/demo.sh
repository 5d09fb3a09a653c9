#!/usr/bin/env bash
# The demo: a throwaway PostgreSQL with logical decoding, a table with some
# changes, outflow replicating them into target/demo/events.jsonl, and the
# output and `outflow status` shown. Everything it started is stopped again.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

install_prereqs
cargo build --quiet --bin outflow
OUTFLOW="$CARGO_TARGET_DIR/debug/outflow"

trap 'scripts/test-services.sh down' EXIT
scripts/test-services.sh up pg # the PostgreSQL servers only: the demo needs no broker
eval "$(scripts/test-services.sh env)"
PSQL=("$OUTFLOW_TEST_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 56432 -U postgres)

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS demo" -c "CREATE DATABASE demo"
"${PSQL[@]}" -d demo <<'SQL'
CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(10,2), placed_at timestamptz DEFAULT now());
SQL

DEMO="$REPO/target/demo"
rm -rf "$DEMO" && mkdir -p "$DEMO"
cat >"$DEMO/outflow.toml" <<EOF2
name = "demo"
[source]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:56432/demo"
tables = ["public.orders"]
[state]
dir = "$DEMO/state"
[[sink]]
name = "events"
kind = "jsonl"
path = "$DEMO/events.jsonl"
EOF2

log "first run: creates the publication and the slot"
"$OUTFLOW" run -c "$DEMO/outflow.toml" --until-caught-up
"${PSQL[@]}" -d demo <<'SQL'
INSERT INTO orders (id, customer, amount) VALUES (1, 'ada', 12.50), (2, 'grace', 99.99);
UPDATE orders SET amount = 13.75 WHERE id = 1;
DELETE FROM orders WHERE id = 2;
SQL
log "second run: delivers the changes and exits when caught up"
"$OUTFLOW" run -c "$DEMO/outflow.toml" --until-caught-up
echo
echo "== $DEMO/events.jsonl"
cat "$DEMO/events.jsonl"
echo
echo "== outflow status"
"$OUTFLOW" status -c "$DEMO/outflow.toml"
"${PSQL[@]}" -d postgres -c "SELECT pg_drop_replication_slot('outflow')" -o /dev/null
