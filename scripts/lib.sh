# shellcheck shell=bash
# Shared helpers for outflow's scripts. Source it; it defines functions and
# REPO (the repository root) and changes nothing else.
#
# Status lines go to stderr, prefixed with the calling script's name, so that
# stdout stays clean for output meant to be eval'ed (scripts/test-services.sh env).

# shellcheck disable=SC2034 # used by the scripts that source this file
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTFLOW_SCRIPT_NAME="$(basename "$0")"

log() {
    printf '%s: %s\n' "$OUTFLOW_SCRIPT_NAME" "$*" >&2
}

die() {
    printf '%s: error: %s\n' "$OUTFLOW_SCRIPT_NAME" "$*" >&2
    exit 1
}

# have CMD: true when CMD is on PATH.
have() {
    command -v "$1" >/dev/null 2>&1
}

# wait_until SECONDS DESCRIPTION CMD...: run CMD every 0.2s until it succeeds;
# fail (return 1, with a status line) once SECONDS have passed.
wait_until() {
    local seconds="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${seconds}s waiting for ${what}"
            return 1
        fi
        sleep 0.2
    done
}

# apt_install PKG...: install Debian packages non-interactively, running
# `apt-get update` first (only called when something is actually missing).
apt_install() {
    have apt-get || die "missing $*, and apt-get is not available to install it; install it by hand"
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# missing_prereqs: print the Debian packages that building outflow and
# running its test servers need and that are missing, one per line (nothing
# when all are there): PostgreSQL 15, MariaDB, Redis, NATS and RabbitMQ
# server binaries, openssl, and for librdkafka's build (rdkafka's
# cmake-build) cmake and the curl and OpenSSL headers. Looks at PATH, so a
# PATH without cmake reports cmake (scripts/test-prereqs.sh tests that).
missing_prereqs() {
    local pg_bin="${OUTFLOW_PG_BIN:-/usr/lib/postgresql/15/bin}"
    [[ -x "$pg_bin/initdb" ]] || echo postgresql-15
    have openssl || echo openssl
    have cmake || echo cmake
    [[ -f /usr/include/x86_64-linux-gnu/curl/curl.h || -f /usr/include/curl/curl.h ]] || echo libcurl4-openssl-dev
    dpkg -s libssl-dev >/dev/null 2>&1 || echo libssl-dev
    have mariadbd || echo mariadb-server
    have redis-server || echo redis-server
    have nats-server || [[ -x /usr/sbin/nats-server ]] || echo nats-server
    [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || echo rabbitmq-server
}

# install_prereqs: install what missing_prereqs reports (idempotent;
# scripts/test.sh and scripts/demo.sh both start with it). Puts
# ~/.cargo/bin on PATH when cargo is only there, and exports
# CARGO_TARGET_DIR (default ~/.cache/outflow/target, shared by clones) and
# CARGO_TERM_COLOR.
install_prereqs() {
    local missing=()
    mapfile -t missing < <(missing_prereqs)
    if ((${#missing[@]} > 0)); then
        apt_install "${missing[@]}"
    fi
    if ! have cargo && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    have cargo || die "cargo is not installed; install Rust from https://rustup.rs"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/outflow/target}"
    export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
}

# install_cargo_deny: put cargo-deny (the pinned version) on PATH, installing
# it from crates.io into ~/.cache/outflow/tools when missing (once: it
# compiles for a few minutes). Its own build directory keeps the install
# away from outflow's CARGO_TARGET_DIR.
install_cargo_deny() {
    local version=0.20.2 root="$HOME/.cache/outflow/tools"
    if ! have cargo && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    have cargo || die "cargo is not installed; install Rust from https://rustup.rs"
    PATH="$root/bin:$PATH"
    if [[ "$(cargo-deny --version 2>/dev/null)" != "cargo-deny $version" ]]; then
        log "installing cargo-deny $version into $root (a few minutes, once)"
        CARGO_TARGET_DIR="$HOME/.cache/outflow/deny-target" \
            cargo install cargo-deny --version "$version" --locked --root "$root" >&2
    fi
}
