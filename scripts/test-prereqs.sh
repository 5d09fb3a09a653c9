#!/usr/bin/env bash
# Tests the prerequisite detection that scripts/test.sh and scripts/demo.sh
# share (missing_prereqs in scripts/lib.sh), so that a fresh machine without
# cmake gets it installed before the build needs it: on this machine (after
# install_prereqs, so everything is there) it reports nothing; with cmake
# hidden from PATH it reports exactly cmake; with cmake and redis-server
# hidden, exactly those two. PATH is replaced by a directory of symlinks to
# every command on the real PATH but the hidden ones. Run by scripts/test.sh;
# exits 1 on a failure.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
failed=0

# path_without CMD...: a directory holding a symlink to every command on PATH
# except CMD... (the first of each name, as PATH lookup finds it).
path_without() {
    local hide=" $* " dir="$WORK/path-${*// /-}" entries entry cmd name
    local -A seen=()
    local links=()
    IFS=: read -ra entries <<<"$PATH"
    for entry in "${entries[@]}"; do
        [[ -d "$entry" ]] || continue
        for cmd in "$entry"/*; do
            name="${cmd##*/}"
            if [[ -x "$cmd" && ! -d "$cmd" && -z "${seen[$name]:-}" && "$hide" != *" $name "* ]]; then
                seen[$name]=1
                links+=("$cmd")
            fi
        done
    done
    mkdir -p "$dir"
    ln -s -t "$dir" "${links[@]}"
    printf '%s\n' "$dir"
}

# expect DESCRIPTION EXPECTED ACTUAL
expect() {
    if [[ "$2" == "$3" ]]; then
        log "ok: $1"
    else
        log "FAILED: $1: expected [${2//$'\n'/ }], got [${3//$'\n'/ }]"
        failed=1
    fi
}

have cmake || die "cmake is not installed: run install_prereqs (scripts/test.sh does) before this test"
expect "nothing is missing on this machine" "" "$(missing_prereqs)"

hidden="$(path_without cmake)"
[[ ! -e "$hidden/cmake" && -e "$hidden/dpkg" ]] || die "the PATH without cmake is not as intended: $hidden"
expect "cmake hidden from PATH is reported" "cmake" "$(PATH="$hidden" missing_prereqs)"

hidden="$(path_without cmake redis-server)"
expect "cmake and redis-server hidden are reported" "cmake"$'\n'"redis-server" "$(PATH="$hidden" missing_prereqs)"

exit "$failed"
