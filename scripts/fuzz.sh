#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ for SECONDS each (default 60), one
# after another: pgoutput, pg_text and binlog (the decoders' parsers), config
# (outflow.toml parsing and validation) and state (the state directory's
# file readers). `scripts/fuzz.sh 300 binlog` runs only the named targets.
# Installs cargo-fuzz if missing. Works on a stable toolchain: cargo-fuzz
# needs nightly-only flags, which RUSTC_BOOTSTRAP=1 unlocks.
# A crash stops the script; its input is left under fuzz/artifacts/<target>/.
# libFuzzer's last status line per target (#runs, exec/s) is the tally.
set -euo pipefail

secs="${1:-60}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$root/fuzz"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${secs}s" >&2
    mkdir -p "corpus/$target"
    dirs=("corpus/$target")
    if [ -d "seeds/$target" ]; then
        dirs+=("seeds/$target")
    fi
    cargo fuzz run "$target" "${dirs[@]}" -- -max_total_time="$secs"
done
