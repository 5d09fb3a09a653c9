#!/usr/bin/env bash
# Supply chain checks with cargo-deny, against the policy in deny.toml:
# licenses, banned crates and sources always; security advisories only when
# the RustSec database (a git repository on GitHub) can be fetched, else
# skipped with a note, so that a machine without GitHub still passes.
# Installs cargo-deny when missing (scripts/lib.sh). scripts/test.sh runs it
# before the servers start; a failure there fails the suite, but the tests
# still run.
#
# Only errors are printed, then a summary per check; the duplicate-version
# warnings (with their inclusion graphs) show with OUTFLOW_DENY_LOG=warn.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

install_cargo_deny

checks=(licenses bans sources)
advisory_db=https://github.com/rustsec/advisory-db
if have git && timeout 10 git ls-remote --exit-code "$advisory_db" HEAD >/dev/null 2>&1; then
    checks+=(advisories)
else
    log "advisories skipped: the RustSec database ($advisory_db) cannot be fetched from here"
fi

log "cargo deny check ${checks[*]}"
cargo deny --log-level "${OUTFLOW_DENY_LOG:-error}" check --show-stats "${checks[@]}"
