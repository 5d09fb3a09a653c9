#!/usr/bin/env bash
# The Python environment the end-to-end tests read sink output with (pyarrow
# for Parquet, moto as a local S3-compatible server, ...).
#
#   scripts/python-env.sh      # prints the venv's python path on stdout
#
# Idempotent: creates $HOME/.cache/outflow/venv if missing and runs
# `pip install -r tests/requirements.txt` only when that file changed since
# the last successful install (a hash stamp inside the venv).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

VENV="${OUTFLOW_VENV:-$HOME/.cache/outflow/venv}"
REQ="tests/requirements.txt"

if [[ ! -x "$VENV/bin/python" ]]; then
    have python3 || apt_install python3
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    log "creating python venv $VENV"
    python3 -m venv "$VENV"
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
stamp="$VENV/.outflow-requirements.sha256"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    log "installing $REQ into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
    echo "$want" >"$stamp"
fi

echo "$VENV/bin/python"
