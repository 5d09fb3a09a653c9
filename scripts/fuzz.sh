#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (the decoders' parsers) for SECONDS each
# (default 60). Installs cargo-fuzz if missing. Works on a stable toolchain:
# cargo-fuzz needs nightly-only flags, which RUSTC_BOOTSTRAP=1 unlocks.
# A crash stops the script; its input is left under fuzz/artifacts/<target>/.
set -euo pipefail

secs="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$root/fuzz"
for target in $(cargo fuzz list); do
    echo "== fuzzing $target for ${secs}s" >&2
    mkdir -p "corpus/$target"
    dirs=("corpus/$target")
    if [ -d "seeds/$target" ]; then
        dirs+=("seeds/$target")
    fi
    cargo fuzz run "$target" "${dirs[@]}" -- -max_total_time="$secs"
done
