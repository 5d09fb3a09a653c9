#!/usr/bin/env bash
# The chaos run (issue 9): the e2e scenarios `chaos_postgres_*` and
# `chaos_mariadb_*` with more fault rounds. For each source a writer commits
# a known history into a database server of the test's own while one outflow
# fans out into JSONL, Parquet, Kafka and the PostgreSQL apply sink; kill -9,
# replication connections killed by the server, connections cut at a TCP
# proxy, a frozen broker and database restarts (clean and crash) are
# injected at random; every sink is read back by its independent reader and
# checked (per key: missing, duplicated, reordered, wrong value; the apply
# sink's tables row for row). Prints the markdown report and keeps it in
# target/chaos-report.md.
#
#   scripts/chaos.sh [--seed N] [ROUNDS]   (per source; default 40; CI runs the same tests with 5)
#
# Each test prints its seed and puts it in the report; --seed N (or
# OUTFLOW_CHAOS_SEED=N) replays the same fault order, pauses and writer
# transactions.
#
# Starts the shared test servers if they are not running (like
# scripts/test-services.sh up) and leaves them running; with OUTFLOW_TEST_*
# already set (`eval "$(scripts/test-services.sh env)"`) it uses those.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outflow/target}"
if [[ -z "${OUTFLOW_TEST_PG_URL:-}" ]]; then
    scripts/test-services.sh up
    eval "$(scripts/test-services.sh env)"
fi
OUTFLOW_TEST_PYTHON="${OUTFLOW_TEST_PYTHON:-$(scripts/python-env.sh)}"
export OUTFLOW_TEST_PYTHON
mkdir -p target
if [[ "${1:-}" == "--seed" ]]; then
    [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--seed needs an unsigned integer, e.g. --seed 42"
    export OUTFLOW_CHAOS_SEED="$2"
    shift 2
fi
export OUTFLOW_CHAOS_ROUNDS="${1:-40}"
export OUTFLOW_CHAOS_REPORT_DIR="$REPO/target/chaos"
rm -rf "$OUTFLOW_CHAOS_REPORT_DIR"
mkdir -p "$OUTFLOW_CHAOS_REPORT_DIR"
log "chaos: $OUTFLOW_CHAOS_ROUNDS fault rounds per source"
started=$SECONDS
cargo test --test e2e chaos_ -- --nocapture --test-threads=2
{
    printf 'Chaos run: %s fault rounds per source, %d s.\n\n' "$OUTFLOW_CHAOS_ROUNDS" $((SECONDS - started))
    cat "$OUTFLOW_CHAOS_REPORT_DIR"/chaos-postgresql.md
    printf '\n'
    cat "$OUTFLOW_CHAOS_REPORT_DIR"/chaos-mariadb.md
} >target/chaos-report.md
cat target/chaos-report.md
