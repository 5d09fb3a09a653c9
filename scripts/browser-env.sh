#!/usr/bin/env bash
# What the console's browser test (tests/e2e/console.rs) needs: Debian's
# headless-capable Chromium and Node.js, and playwright-core from npm (the
# library only: it drives the system Chromium, it downloads no browser).
#
#   scripts/browser-env.sh     # prints the node_modules directory on stdout
#
# playwright-core is pinned to a release that runs on Debian 12's Node.js 18
# (later ones want 20). Idempotent: installs chromium and nodejs only when
# missing, and runs `npm ci` into $HOME/.cache/outflow/browser only when
# tests/browser/package.json or package-lock.json changed since the last
# successful install (a hash stamp next to them).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

DIR="${OUTFLOW_BROWSER_DIR:-$HOME/.cache/outflow/browser}"
LOCK="tests/browser/package-lock.json"

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
have node || missing+=(nodejs)
have npm || missing+=(npm)
if ((${#missing[@]} > 0)); then
    apt_install "${missing[@]}"
fi

want="$(cat tests/browser/package.json "$LOCK" | sha256sum | cut -d' ' -f1)"
stamp="$DIR/.outflow-lock.sha256"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" || ! -d "$DIR/node_modules/playwright-core" ]]; then
    log "installing playwright-core into $DIR"
    mkdir -p "$DIR"
    cp tests/browser/package.json "$LOCK" "$DIR/"
    # No browser download: the test uses /usr/bin/chromium.
    (cd "$DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$stamp"
fi

echo "$DIR/node_modules"
