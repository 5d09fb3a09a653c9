#!/usr/bin/env bash
# The demo: a throwaway PostgreSQL with logical decoding and a small shop
# database; `outflow init` inspects it and writes the config; outflow
# snapshots the tables and replicates changes into target/demo/events.jsonl;
# the output and `outflow status` are shown; then `outflow run` stays up
# with its web console for a minute (or until Enter). Everything it started
# is stopped again.
#
# OUTFLOW_DEMO_CONSOLE_PORT (default 9187) moves the console;
# OUTFLOW_DEMO_CONSOLE_SECONDS (default 60) is how long it stays up. The
# PostgreSQL servers come from scripts/test-services.sh (OUTFLOW_PG_PORT,
# OUTFLOW_PG_REPLICA_WAL_PORT and OUTFLOW_SERVICES_DIR move them, e.g. next
# to running test servers).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

CONSOLE_PORT="${OUTFLOW_DEMO_CONSOLE_PORT:-9187}"
CONSOLE_SECONDS="${OUTFLOW_DEMO_CONSOLE_SECONDS:-60}"
PG_PORT="${OUTFLOW_PG_PORT:-56432}"

install_prereqs
cargo build --quiet --bin outflow
OUTFLOW="$CARGO_TARGET_DIR/debug/outflow"

RUN_PID=""
# stop_run: SIGTERM the background `outflow run` (it drains, commits its
# offsets and exits 0) and wait for it; returns its exit status.
stop_run() {
    [[ -n "$RUN_PID" ]] || return 0
    local pid="$RUN_PID" status=0
    RUN_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || status=$?
    return "$status"
}
trap 'stop_run || true; scripts/test-services.sh down' EXIT
scripts/test-services.sh up pg # the PostgreSQL servers only: the demo needs no broker
eval "$(scripts/test-services.sh env)"
PSQL=("$OUTFLOW_TEST_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres)

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS demo" -c "CREATE DATABASE demo"
"${PSQL[@]}" -d demo <<'SQL'
CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(10,2), placed_at timestamptz DEFAULT now());
INSERT INTO orders (id, customer, amount) VALUES (1, 'ada', 12.50), (2, 'grace', 99.99);
-- No primary key: `outflow init` leaves it out and says why.
CREATE TABLE page_views (path text, seen_at timestamptz DEFAULT now());
INSERT INTO page_views (path) VALUES ('/'), ('/orders');
SQL

DEMO="$REPO/target/demo"
rm -rf "$DEMO" && mkdir -p "$DEMO"
log "outflow init: inspects the demo database and writes $DEMO/outflow.toml"
"$OUTFLOW" init "postgres://postgres@127.0.0.1:$PG_PORT/demo" -o "$DEMO/outflow.toml"
# Turn on the admin server (and its console) that init left commented out.
sed -i -e 's/^# \[admin\]$/[admin]/' -e "s/^# listen = .*/listen = \"127.0.0.1:$CONSOLE_PORT\"/" "$DEMO/outflow.toml"
grep -q "^listen = \"127.0.0.1:$CONSOLE_PORT\"$" "$DEMO/outflow.toml" ||
    die "could not turn on [admin] in $DEMO/outflow.toml (did outflow init stop writing it?)"

log "first run: creates the publication and the slot, snapshots the orders, exits when caught up"
"$OUTFLOW" run -c "$DEMO/outflow.toml" --until-caught-up
"${PSQL[@]}" -d demo <<'SQL'
INSERT INTO orders (id, customer, amount) VALUES (3, 'edsger', 7.00);
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

echo
log "outflow run, in the background, with its console"
"$OUTFLOW" run -c "$DEMO/outflow.toml" 2>"$DEMO/run.log" &
RUN_PID=$!
if ! wait_until 60 "the console on 127.0.0.1:$CONSOLE_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$CONSOLE_PORT"; then
    tail -n 20 "$DEMO/run.log" >&2 || true
    die "outflow run did not start its console; see $DEMO/run.log"
fi
echo "console: http://127.0.0.1:$CONSOLE_PORT/"
if [[ -t 0 ]]; then
    echo "(up for ${CONSOLE_SECONDS}s; press Enter to stop it sooner)"
else
    echo "(up for ${CONSOLE_SECONDS}s)"
fi
# An order every 5 seconds meanwhile, so that the console has something to show.
deadline=$((SECONDS + CONSOLE_SECONDS)) tick=0
while ((SECONDS < deadline)) && kill -0 "$RUN_PID" 2>/dev/null; do
    if ((tick++ % 5 == 4)); then
        "${PSQL[@]}" -d demo -c "INSERT INTO orders (id, customer, amount) VALUES (100 + $tick, 'live', $tick)"
    fi
    if [[ -t 0 ]]; then
        status=0
        read -r -t 1 || status=$?
        ((status > 128)) || break # Enter (or end of input), not the timeout
    else
        sleep 1
    fi
done
kill -0 "$RUN_PID" 2>/dev/null || die "outflow run stopped by itself; see $DEMO/run.log"
log "stopping outflow run (SIGTERM: it commits its offsets and exits)"
stop_run || die "outflow run failed on SIGTERM; see $DEMO/run.log"
"${PSQL[@]}" -d postgres -o /dev/null \
    -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = 'demo'"
log "done"
