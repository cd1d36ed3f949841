#!/usr/bin/env bash
# End-to-end test of telegram-bridge between fake-bot-api and a real homeserver.
# Needs: python3 with matrix-synapse, matrix-nio, pytest, pyyaml (e2e/requirements.txt); cargo.
# E2E_HOMESERVER=synapse (default) | causeway picks the homeserver; E2E_BRIDGE_DATABASE=postgres://...
# runs the bridge on PostgreSQL; E2E_KEEP_LOGS=DIR keeps the logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -p telegram-bridge --bins
exec python3 -m pytest e2e/telegram -x -q "$@"
