#!/usr/bin/env bash
# End-to-end test of the unified chat: our homeserver, telegram-bridge against fake-bot-api and irc-bridge
# against a real InspIRCd, configured from examples/unified/, one room linked to a Telegram group and an IRC
# channel, every process restarted in turn. Needs: inspircd (apt-get install -y inspircd); python3 with
# matrix-nio, pytest, pyyaml (e2e/requirements.txt); cargo. E2E_KEEP_LOGS=DIR keeps the logs and configs.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -p homeserver -p telegram-bridge -p irc-bridge
exec python3 -m pytest e2e/unified -x -q "$@"
