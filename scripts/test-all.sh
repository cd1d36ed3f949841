#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs and starts what the tests need
# (PostgreSQL on 127.0.0.1:5432, the Python peers), then the Rust suites on SQLite and PostgreSQL,
# then the end-to-end tests with real clients, then the lints.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

log "PostgreSQL on 127.0.0.1:5432"
if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432

log "InspIRCd (the IRC server of the IRC bridge's end-to-end test; each test starts its own)"
if ! command -v inspircd >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq inspircd >/dev/null
fi
inspircd --version

log "Python peers (matrix-nio, Synapse, pytest)"
python3 -m pip install -q --disable-pip-version-check -r e2e/requirements.txt 2>&1 | grep -v "Running pip as the 'root' user" || true

log "cargo test (every crate, SQLite and PostgreSQL)"
cargo test --workspace --all-targets 2>&1

log "end-to-end tests with real clients"
cargo build --workspace --bins 2>&1
(cd e2e && python3 -m pytest -q -p no:cacheprovider --ignore=unified .)  # unified: ours only, below
# The bridges' end-to-end tests run against Synapse above; again against our own homeserver; and the
# unified chat (both bridges in one room, examples/unified/'s configs), which needs our homeserver.
(cd e2e && E2E_HOMESERVER=causeway python3 -m pytest -q -p no:cacheprovider echo-bridge telegram irc unified)

log "lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings 2>&1
