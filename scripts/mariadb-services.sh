# Throwaway MariaDB servers for outflow's tests; sourced by test-services.sh
# (which defines SERVICES_DIR, log, die, wait_until).
#
#   mariadb         127.0.0.1:56436  log_bin, ROW, row image/metadata FULL,
#                   server_id 1, GTIDs strict, log_slave_updates
#   mariadb_nobin   127.0.0.1:56437  binary log off (preflight error path)
#   mariadb_misc    127.0.0.1:56438  log_bin, binlog_format=STATEMENT; tests
#                   that need other wrong settings SET GLOBAL them here, one
#                   test at a time (preflight error paths, purged binlogs)
#
# Each runs as root (--user=root) with its data, socket and log under
# $SERVICES_DIR/<name>; user root@127.0.0.1 has no password. `mariadb`
# also offers TLS (optional for clients) with a throwaway CA and a server
# certificate for IP 127.0.0.1 (make_certs; CA in $SERVICES_DIR/mariadb/ca.crt).

MARIADB_SERVERS=("mariadb:56436:1" "mariadb_nobin:56437:2" "mariadb_misc:56438:3")

mariadb_ping() { mariadb-admin --no-defaults --socket="$1/mysqld.sock" -uroot ping >/dev/null 2>&1; }

mariadb_start_one() {
    local name="$1" port="$2" id="$3" dir="$SERVICES_DIR/$1"
    if mariadb_ping "$dir"; then
        log "$name already running on 127.0.0.1:$port"
        return 0
    fi
    if [[ ! -f "$dir/.outflow-configured" ]]; then
        log "initializing $name in $dir"
        rm -rf "$dir"
        mkdir -p "$dir"
        mariadb-install-db --no-defaults --datadir="$dir/data" --user=root --skip-test-db \
            --auth-root-authentication-method=normal >"$dir/install.log" 2>&1 ||
            die "mariadb-install-db for $name failed; see $dir/install.log"
        if [[ "$name" == mariadb ]]; then make_certs "$dir"; fi
    fi
    # Each server its own tmpdir: a starting server deletes the `#sql*` temp
    # files it finds there, other servers' included (an information_schema
    # query failed with "Error on delete of '/tmp/#sql-temptable-...'").
    mkdir -p "$dir/tmp"
    local args=(--no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" --socket="$dir/mysqld.sock" --port="$port"
        --bind-address=127.0.0.1 --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" --user=root
        --server-id="$id" --skip-name-resolve --innodb-buffer-pool-size=32M --innodb-log-file-size=48M
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci --default-time-zone=+00:00
        --max-connections=300 --sync-binlog=0 --innodb-flush-log-at-trx-commit=2)
    case "$name" in
    mariadb) args+=(--log-bin=mysql-bin --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL
        --gtid-strict-mode=1 --log-slave-updates --binlog-checksum=CRC32
        --ssl-ca="$dir/ca.crt" --ssl-cert="$dir/server.crt" --ssl-key="$dir/server.key") ;;
    mariadb_misc) args+=(--log-bin=mysql-bin --binlog-format=STATEMENT) ;;
    esac
    log "starting $name on 127.0.0.1:$port"
    setsid mariadbd "${args[@]}" >/dev/null 2>&1 < /dev/null &
    if ! wait_until 60 "$name on port $port" mariadb_ping "$dir"; then
        tail -n 20 "$dir/error.log" >&2 || true
        die "$name did not become ready; see $dir/error.log"
    fi
    mariadb --no-defaults --socket="$dir/mysqld.sock" -uroot -e \
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
    touch "$dir/.outflow-configured"
}

mariadb_up() {
    command -v mariadbd >/dev/null || die "mariadb-server is not installed; scripts/test.sh installs it (apt-get install mariadb-server)"
    local s
    for s in "${MARIADB_SERVERS[@]}"; do
        IFS=: read -r name port id <<<"$s"
        mariadb_start_one "$name" "$port" "$id"
    done
}

mariadb_down() {
    local s dir
    for s in "${MARIADB_SERVERS[@]}"; do
        IFS=: read -r name _ _ <<<"$s"
        dir="$SERVICES_DIR/$name"
        if [[ -f "$dir/mysqld.pid" ]]; then
            log "stopping $name"
            mariadb-admin --no-defaults --socket="$dir/mysqld.sock" -uroot shutdown >/dev/null 2>&1 ||
                kill "$(cat "$dir/mysqld.pid")" 2>/dev/null || true
        fi
        rm -rf "$dir"
    done
}

mariadb_env() {
    printf 'export OUTFLOW_TEST_MYSQL_URL=%q\n' "mysql://root@127.0.0.1:56436"
    printf 'export OUTFLOW_TEST_MYSQL_NOBIN_URL=%q\n' "mysql://root@127.0.0.1:56437"
    printf 'export OUTFLOW_TEST_MYSQL_MISC_URL=%q\n' "mysql://root@127.0.0.1:56438"
    printf 'export OUTFLOW_TEST_MYSQL_CA=%q\n' "$SERVICES_DIR/mariadb/ca.crt"
}
