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

install_prereqs

# The independent readers (pyarrow for Parquet, a local S3 server) live in a venv.
OUTFLOW_TEST_PYTHON="$(scripts/python-env.sh)"
export OUTFLOW_TEST_PYTHON

trap 'scripts/test-services.sh down' EXIT
scripts/test-services.sh up
eval "$(scripts/test-services.sh env)"

log "cargo test (target dir $CARGO_TARGET_DIR)"
cargo test --workspace --no-fail-fast "$@"
