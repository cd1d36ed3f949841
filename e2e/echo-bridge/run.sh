#!/usr/bin/env bash
# End-to-end test of examples/echo-bridge against a real homeserver.
# Needs: python3 with matrix-synapse, matrix-nio, pytest, pyyaml; cargo.
# E2E_HOMESERVER=synapse (default) | causeway picks the homeserver under test;
# E2E_BRIDGE_DATABASE=postgres://... runs the bridge on PostgreSQL (default: SQLite in a temp dir);
# E2E_KEEP_LOGS=DIR copies the homeserver and bridge logs there.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -p echo-bridge
export ECHO_BRIDGE_BIN="${CARGO_TARGET_DIR:-target}/debug/echo-bridge"
exec python3 -m pytest e2e/echo-bridge -x -q "$@"
