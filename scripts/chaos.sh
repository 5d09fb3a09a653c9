#!/usr/bin/env bash
# The chaos run (issue 9): the e2e scenario `chaos` with more fault rounds.
# A writer commits a known history into PostgreSQL while one outflow fans out
# into JSONL, Parquet and Kafka; kill -9, cut replication connections and a
# frozen broker are injected at random; every sink is read back by its
# independent reader and checked per key (missing, duplicated, reordered,
# wrong value). Prints the markdown report and keeps it in
# target/chaos-report.md.
#
#   scripts/chaos.sh [ROUNDS]      (default 40; CI runs the same test with 6)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
mkdir -p target
export OUTFLOW_CHAOS_ROUNDS="${1:-40}"
export OUTFLOW_CHAOS_REPORT="$REPO/target/chaos-report.md"
rm -f "$OUTFLOW_CHAOS_REPORT"
log "chaos: $OUTFLOW_CHAOS_ROUNDS fault rounds"
scripts/test.sh --test e2e chaos -- --nocapture
cat "$OUTFLOW_CHAOS_REPORT"
