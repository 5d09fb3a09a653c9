#!/usr/bin/env bash
# Throughput benchmark: outflow vs pg_recvlogical on the same backlog.
#
#   scripts/bench.sh [ROWS] [SINGLE_TXNS]     (defaults: 1000000 and 100000)
#
# Starts a throwaway PostgreSQL 15 (wal_level=logical) on 127.0.0.1:56460,
# creates a 6-column `orders` table, a publication and two slots (one per
# tool), loads the backlog (ROWS rows in one transaction, then SINGLE_TXNS
# single-row transactions), then drains it with
#   1. pg_recvlogical (pgoutput, proto 1) to /dev/null, up to the backlog's end;
#   2. outflow run --until-caught-up into a JSONL sink on /dev/null;
# and prints rows/s for both, the ratio, and outflow's peak RSS.
# Then (BENCH_SNAPSHOT=1, the default) the whole table is read once by
# `COPY ... TO STDOUT` and once by an outflow snapshot (mode initial_only).
# The server is stopped and its data removed at the end.
#
# BENCH_SINKS="jsonl parquet" also drains the same backlog (through its own
# slot) into a Parquet sink under $WORK/lake (local disk, zstd), and prints
# its rows/s, peak RSS and its rate relative to JSONL. Default: "jsonl".
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS="${1:-1000000}"
SINGLE="${2:-100000}"
PG_BIN="${OUTFLOW_PG_BIN:-/usr/lib/postgresql/15/bin}"
PORT=56460
WORK="${OUTFLOW_BENCH_DIR:-/tmp/outflow-bench}"
SINKS="${BENCH_SINKS:-jsonl}"
for kind in $SINKS; do
    case "$kind" in
        jsonl | parquet) ;;
        *) echo "BENCH_SINKS: unknown sink kind $kind (jsonl, parquet)" >&2; exit 2 ;;
    esac
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outflow/target}"

as_pg() { if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_b() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d bench "$@"; }

stop_server() {
    if [[ -f "$WORK/data/PG_VERSION" ]]; then
        as_pg "$PG_BIN/pg_ctl" stop -D "$WORK/data" -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap stop_server EXIT

echo "building release..." >&2
cargo build --release --quiet --bin outflow
OUTFLOW="$CARGO_TARGET_DIR/release/outflow"

stop_server
mkdir -p "$WORK"
if ((EUID == 0)); then chown postgres "$WORK"; fi
as_pg "$PG_BIN/initdb" -D "$WORK/data" -A trust -U postgres >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$WORK -c wal_level=logical \
        -c max_wal_size=8GB -c fsync=off -c synchronous_commit=off -c shared_buffers=256MB" start >/dev/null
"$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "CREATE DATABASE bench"

psql_b <<'SQL'
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    status text NOT NULL,
    amount numeric(12,2) NOT NULL,
    created_at timestamptz NOT NULL,
    note varchar(64)
);
CREATE PUBLICATION bench FOR TABLE orders WITH (publish_via_partition_root = true);
SELECT pg_create_logical_replication_slot('ref', 'pgoutput');
SQL

# config_for KIND: the config file draining into KIND (jsonl keeps the
# original names: slot outflow_bench, state dir $WORK/state).
config_for() {
    local kind="$1" slot="outflow_bench" state="$WORK/state" sink
    if [[ "$kind" != jsonl ]]; then slot="outflow_bench_$kind"; state="$WORK/state-$kind"; fi
    case "$kind" in
        jsonl) sink=$'name = "null"\nkind = "jsonl"\npath = "/dev/null"' ;;
        parquet) sink="name = \"null\"
kind = \"parquet\"
path = \"$WORK/lake\"" ;;
    esac
    cat >"$WORK/outflow-$kind.toml" <<EOF2
name = "bench"
[source]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:$PORT/bench"
tables = ["public.orders"]
slot = "$slot"
publication = "bench"
[state]
dir = "$state"
[[sink]]
$sink
EOF2
    echo "$WORK/outflow-$kind.toml"
}
# First run creates outflow's slot before the backlog is written.
for kind in $SINKS; do
    "$OUTFLOW" run -c "$(config_for "$kind")" --until-caught-up 2>/dev/null
done

echo "loading $ROWS rows in one transaction and $SINGLE single-row transactions..." >&2
psql_b -c "INSERT INTO orders SELECT g, g % 10000, CASE WHEN g % 3 = 0 THEN 'shipped' ELSE 'pending' END,
           (g % 100000) / 100.0, timestamptz '2024-01-01' + g * interval '1 second', 'note ' || g
           FROM generate_series(1, $ROWS) g"
if ((SINGLE > 0)); then
    seq 1 "$SINGLE" | awk -v base="$ROWS" '{ id = base + $1; printf "INSERT INTO orders VALUES (%d, %d, '"'"'new'"'"', %d.%02d, now(), NULL);\n", id, id % 10000, id % 1000, id % 100 }' \
        | psql_b -o /dev/null
fi
END_LSN=$(psql_b -At -c "SELECT pg_current_wal_lsn()")
TOTAL=$((ROWS + SINGLE))

now() { date +%s.%N; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }

echo "draining with pg_recvlogical..." >&2
t0=$(now)
"$PG_BIN/pg_recvlogical" -h 127.0.0.1 -p "$PORT" -U postgres -d bench --slot ref --start \
    --endpos "$END_LSN" -o proto_version=1 -o publication_names=bench -f /dev/null --no-loop
t1=$(now)
REF_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')

declare -A OUT_S RSS_MB EVENTS
for kind in $SINKS; do
    echo "draining with outflow -> $kind..." >&2
    state="$WORK/state"; [[ "$kind" == jsonl ]] || state="$WORK/state-$kind"
    t0=$(now)
    /usr/bin/time -f "%M" -o "$WORK/rss" "$OUTFLOW" run -c "$WORK/outflow-$kind.toml" --until-caught-up 2>"$WORK/outflow.log" \
        || { cat "$WORK/outflow.log" >&2; exit 1; }
    t1=$(now)
    OUT_S[$kind]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    RSS_MB[$kind]=$(($(tail -n 1 "$WORK/rss") / 1024))
    EVENTS[$kind]=$(grep -o '"events": [0-9]*' "$state/sinks/null.json" | grep -o '[0-9]*$')
done

printf '\n%-16s %10s %12s %10s\n' "tool" "seconds" "rows/s" "peak RSS"
printf '%-16s %10.2f %12s %10s\n' "pg_recvlogical" "$REF_S" "$(rate "$TOTAL" "$REF_S")" "-"
for kind in $SINKS; do
    printf '%-16s %10.2f %12s %7s MB\n' "outflow $kind" "${OUT_S[$kind]}" "$(rate "$TOTAL" "${OUT_S[$kind]}")" "${RSS_MB[$kind]}"
done
printf '\nrows %d\n' "$TOTAL"
status=0
for kind in $SINKS; do
    printf 'ratio outflow %s/pg_recvlogical: %s\n' "$kind" "$(awk -v a="$REF_S" -v b="${OUT_S[$kind]}" 'BEGIN { printf "%.2f", a / b }')"
    if [[ "${EVENTS[$kind]}" != "$TOTAL" ]]; then
        echo "error: outflow -> $kind delivered ${EVENTS[$kind]} events, expected $TOTAL" >&2
        status=1
    fi
done
if [[ -n "${OUT_S[jsonl]:-}" && -n "${OUT_S[parquet]:-}" ]]; then
    printf 'ratio parquet/jsonl: %s\n' "$(awk -v a="${OUT_S[jsonl]}" -v b="${OUT_S[parquet]}" 'BEGIN { printf "%.2f", a / b }')"
    printf 'parquet output: %s\n' "$(du -sh "$WORK/lake" | cut -f1)"
fi

# Snapshot case: the whole table read by COPY vs outflow's watermark snapshot
# (mode initial_only, default parallelism) into JSONL on /dev/null.
if [[ "${BENCH_SNAPSHOT:-1}" == 1 ]]; then
    SNAP_ROWS=$(psql_b -At -c "SELECT count(*) FROM orders")
    echo "snapshot: COPY of $SNAP_ROWS rows..." >&2
    t0=$(now)
    psql_b -c "COPY (SELECT * FROM orders) TO STDOUT" >/dev/null
    t1=$(now)
    COPY_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    cat >"$WORK/outflow-snapshot.toml" <<EOF2
name = "bench"
[source]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:$PORT/bench"
tables = ["public.orders"]
slot = "outflow_bench_snapshot"
publication = "bench"
[snapshot]
mode = "initial_only"
[state]
dir = "$WORK/state-snapshot"
[[sink]]
name = "null"
kind = "jsonl"
path = "/dev/null"
EOF2
    echo "snapshot: outflow initial_only..." >&2
    t0=$(now)
    /usr/bin/time -f "%M" -o "$WORK/rss" "$OUTFLOW" run -c "$WORK/outflow-snapshot.toml" 2>"$WORK/outflow.log" \
        || { cat "$WORK/outflow.log" >&2; exit 1; }
    t1=$(now)
    SNAP_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    SNAP_EVENTS=$(grep -o '"events": [0-9]*' "$WORK/state-snapshot/sinks/null.json" | grep -o '[0-9]*$')
    printf '\n%-24s %10s %12s %10s\n' "snapshot" "seconds" "rows/s" "peak RSS"
    printf '%-24s %10.2f %12s %10s\n' "COPY to /dev/null" "$COPY_S" "$(rate "$SNAP_ROWS" "$COPY_S")" "-"
    printf '%-24s %10.2f %12s %7s MB\n' "outflow initial_only" "$SNAP_S" "$(rate "$SNAP_ROWS" "$SNAP_S")" "$(($(tail -n 1 "$WORK/rss") / 1024))"
    printf 'ratio outflow/COPY: %s\n' "$(awk -v a="$COPY_S" -v b="$SNAP_S" 'BEGIN { printf "%.2f", a / b }')"
    if [[ "$SNAP_EVENTS" != "$SNAP_ROWS" ]]; then
        echo "error: the snapshot delivered $SNAP_EVENTS rows, expected $SNAP_ROWS" >&2
        status=1
    fi
fi
exit "$status"
