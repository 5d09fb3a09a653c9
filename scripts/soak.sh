#!/usr/bin/env bash
# Soak (issue 9): outflow (release build) streams a steady write load from
# the throwaway PostgreSQL of scripts/test-services.sh into a JSONL file for
# SECONDS (default 600) at RATE transactions/s (default 200, pgbench -R),
# sampling outflow's RSS and the slot's lag (bytes of WAL not yet confirmed)
# every second. Prints RSS after warm-up / max / at the end, lag max and
# mean, and checks that every row written was delivered exactly once.
#
#   scripts/soak.sh [SECONDS] [RATE]
#
# Starts the shared test servers if they are not running and leaves them
# running; with OUTFLOW_TEST_* already set it uses those.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
secs="${1:-600}"
rate="${2:-200}"
PG_BIN="${OUTFLOW_PG_BIN:-/usr/lib/postgresql/15/bin}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outflow/target}"
cargo build --release --quiet --bin outflow
OUTFLOW="$CARGO_TARGET_DIR/release/outflow"

if [[ -z "${OUTFLOW_TEST_PG_URL:-}" ]]; then
    scripts/test-services.sh up
    eval "$(scripts/test-services.sh env)"
fi
base="${OUTFLOW_TEST_PG_URL%/*}"
url="$base/outflow_soak"
work="$(mktemp -d /tmp/outflow-soak.XXXXXX)"
cleanup() {
    [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    "$PG_BIN/psql" -X -q "$OUTFLOW_TEST_PG_URL" -c "SELECT pg_drop_replication_slot('outflow_soak') FROM pg_replication_slots WHERE slot_name = 'outflow_soak'" >/dev/null 2>&1 || true
    "$PG_BIN/psql" -X -q "$OUTFLOW_TEST_PG_URL" -c "DROP DATABASE IF EXISTS outflow_soak" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$PG_BIN/psql" -X -q "$OUTFLOW_TEST_PG_URL" -c "DROP DATABASE IF EXISTS outflow_soak" -c "CREATE DATABASE outflow_soak"
"$PG_BIN/psql" -X -q "$url" -c "CREATE TABLE t (id bigserial PRIMARY KEY, n int NOT NULL, payload text NOT NULL)"
cat >"$work/outflow.toml" <<EOT
[source]
kind = "postgres"
url = "$url"
tables = ["public.t"]
slot = "outflow_soak"
publication = "outflow_soak"
[snapshot]
mode = "never"
[state]
dir = "$work/state"
[[sink]]
name = "file"
kind = "jsonl"
path = "$work/out.jsonl"
EOT
printf "INSERT INTO t (n, payload) VALUES (1, repeat('x', 200));\nUPDATE t SET n = n + 1 WHERE id = (SELECT max(id) FROM t);\n" >"$work/load.sql"

"$OUTFLOW" run -c "$work/outflow.toml" 2>"$work/outflow.log" &
pid=$!
# Streaming, not merely active: a slot is active while it is still being
# created, and a transaction committed before its consistent point reaches
# the sink only through a snapshot (as `r`, which the counts below leave out).
# (psql exits 0 on an empty result, so the check compares its output.)
streaming() {
    [[ "$("$PG_BIN/psql" -X -qAt "$url" -c "SELECT count(*) FROM pg_stat_replication r
        JOIN pg_replication_slots s ON s.active_pid = r.pid
        WHERE s.slot_name = 'outflow_soak' AND r.state = 'streaming'")" == 1 ]]
}
wait_until 30 "the slot streaming" streaming || die "outflow did not start: $(cat "$work/outflow.log")"
log "soak: ${secs}s at ${rate} tx/s (2 statements each), sampling every second"
"$PG_BIN/pgbench" -n -f "$work/load.sql" -R "$rate" -T "$secs" -c 2 "$url" >"$work/pgbench.log" 2>&1 &
bench=$!
: >"$work/samples"
for ((i = 0; i < secs; i++)); do
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
    lag=$("$PG_BIN/psql" -X -qAt "$url" -c "SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'outflow_soak'")
    echo "$i $rss $lag" >>"$work/samples"
    sleep 1
done
wait "$bench" || die "pgbench failed: $(cat "$work/pgbench.log")"
rows=$("$PG_BIN/psql" -X -qAt "$url" -c "SELECT count(*) FROM t")
updates=$("$PG_BIN/psql" -X -qAt "$url" -c "SELECT coalesce(sum(n - 1), 0) FROM t")
wait_until 120 "every change delivered" bash -c "[[ \$(grep -c '\"op\":\"c\"' '$work/out.jsonl') -ge $rows ]]" || true
sleep 2
kill -TERM "$pid"
wait "$pid" || die "outflow did not exit cleanly: $(tail -5 "$work/outflow.log")"
pid=
creates=$(grep -c '"op":"c"' "$work/out.jsonl" || true)
ups=$(grep -c '"op":"u"' "$work/out.jsonl" || true)
awk -v warm=30 '
    $1 == warm { start = $2 }
    { if ($2 > max) max = $2; last = $2; if ($3 > lagmax) lagmax = $3; lagsum += $3; n++ }
    END {
        printf "| samples | RSS after %ds | RSS max | RSS at end | lag max (bytes) | lag mean (bytes) |\n", warm
        printf "|---|---|---|---|---|---|\n"
        printf "| %d | %.1f MB | %.1f MB | %.1f MB | %d | %.0f |\n", n, start / 1024, max / 1024, last / 1024, lagmax, lagsum / n
    }' "$work/samples"
printf '\nrows inserted %s (delivered %s), updates %s (delivered %s)\n' "$rows" "$creates" "$updates" "$ups"
grep -E "tps|latency average" "$work/pgbench.log" || true
[[ "$creates" == "$rows" && "$ups" == "$updates" ]] || die "delivered counts differ from what was written"
