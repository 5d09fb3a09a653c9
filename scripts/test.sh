#!/usr/bin/env bash
# The one test command (README, CI): install what is missing, start the
# throwaway servers (scripts/test-services.sh), run the whole workspace's
# tests (unit tests and the e2e binary), and always stop the servers again.
#
# CARGO_TARGET_DIR defaults to ~/.cache/outflow/target so that fresh clones
# (CI) reuse one build. Extra arguments go to `cargo test`, e.g.
#   scripts/test.sh --test e2e bad_input
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

PG_BIN="${OUTFLOW_PG_BIN:-/usr/lib/postgresql/15/bin}"

missing=()
[[ -x "$PG_BIN/initdb" ]] || missing+=(postgresql-15)
have openssl || missing+=(openssl)
# rdkafka (feature cmake-build) compiles librdkafka: cmake, and curl's headers.
have cmake || missing+=(cmake)
[[ -f /usr/include/x86_64-linux-gnu/curl/curl.h || -f /usr/include/curl/curl.h ]] || missing+=(libcurl4-openssl-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
have mariadbd || missing+=(mariadb-server)
if ((${#missing[@]} > 0)); then
    apt_install "${missing[@]}"
fi

if ! have cargo && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
have cargo || die "cargo is not installed; install Rust from https://rustup.rs"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outflow/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# The independent readers (pyarrow for Parquet, a local S3 server) live in a venv.
OUTFLOW_TEST_PYTHON="$(scripts/python-env.sh)"
export OUTFLOW_TEST_PYTHON

trap 'scripts/test-services.sh down' EXIT
scripts/test-services.sh up
eval "$(scripts/test-services.sh env)"

log "cargo test (target dir $CARGO_TARGET_DIR)"
cargo test --workspace --no-fail-fast "$@"
