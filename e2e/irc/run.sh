#!/usr/bin/env bash
# End-to-end test of irc-bridge between a real InspIRCd (Debian's `inspircd`, started by the test
# on a free port with its own config) and a real homeserver, with a matrix-nio client and raw IRC clients.
# Needs: inspircd (apt-get install -y inspircd); python3 with matrix-nio, pytest, pyyaml (and
# matrix-synapse for the default homeserver); cargo.
# E2E_HOMESERVER=synapse (default) | causeway picks the homeserver; E2E_KEEP_LOGS=DIR keeps the logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -p irc-bridge
exec python3 -m pytest e2e/irc -x -q "$@"
