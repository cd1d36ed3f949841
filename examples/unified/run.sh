#!/usr/bin/env bash
# The unified stack on this machine, for a demo without a Telegram account: InspIRCd on 127.0.0.1:6667,
# fake-bot-api on 127.0.0.1:8081 standing in for Telegram, the homeserver on 127.0.0.1:8008,
# telegram-bridge (29317) and irc-bridge (29318), each a separate process. Ctrl-C stops them all.
#
#   examples/unified/run.sh [DIR]       # DIR (default ./unified-demo) holds configs, registrations, data, logs
#
# First run: copies homeserver.yaml, telegram.yaml and irc.yaml from this folder into DIR (with a fresh
# registration_shared_secret and signing key from `homeserver generate-config`) and writes the bridges'
# registrations with their `-g`. Later runs reuse DIR as it is, so edits there (the IRC channel mapping)
# stay. `kill -HUP $(cat DIR/run.pid)` restarts the two bridges (after editing their configs) and leaves the
# rest running. DEMO=0 starts only the homeserver and the bridges (a real Telegram and IRC in the configs).
# Binaries: $CAUSEWAY_BIN_DIR, else target/release, else target/debug (CARGO_TARGET_DIR is honoured).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DIR=$(mkdir -p "${1:-unified-demo}" && cd "${1:-unified-demo}" && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${CAUSEWAY_BIN_DIR:-}
if [ -z "$BIN" ]; then
    for profile in release debug; do
        if [ -x "$TARGET/$profile/homeserver" ] && [ -x "$TARGET/$profile/telegram-bridge" ] \
            && [ -x "$TARGET/$profile/irc-bridge" ]; then BIN=$TARGET/$profile; break; fi
    done
fi
if [ -z "$BIN" ]; then
    echo "run.sh: no binaries in $TARGET; build them first:" >&2
    echo "  cargo build --release -p homeserver -p telegram-bridge -p irc-bridge" >&2
    exit 2
fi
DEMO=${DEMO:-1}

cd "$DIR"
mkdir -p data logs
if [ ! -f homeserver.yaml ]; then
    "$BIN/homeserver" generate-config --server-name localhost --config-path data/generated.yaml --data-dir data
    mv data/localhost.signing.key data/signing.key
    secret=$(sed -n 's/^registration_shared_secret: "\(.*\)"$/\1/p' data/generated.yaml)
    sed "s/\"CHANGE-ME\"/\"$secret\"/" "$HERE/homeserver.yaml" > homeserver.yaml
    rm data/generated.yaml
    cp "$HERE/telegram.yaml" "$HERE/irc.yaml" .
    echo "run.sh: configs written to $DIR"
fi
[ -f telegram-registration.yaml ] || "$BIN/telegram-bridge" -c telegram.yaml -g -r telegram-registration.yaml
[ -f irc-registration.yaml ] || "$BIN/irc-bridge" -c irc.yaml -g -r irc-registration.yaml

declare -A pid_of=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pid_of[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -f "$DIR/run.pid"
    exit 0
}
trap cleanup EXIT INT TERM
restart_bridges=0
trap 'restart_bridges=1' HUP
echo $$ > run.pid

wait_port() {  # wait_port PORT NAME PID
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$3" 2>/dev/null || { echo "run.sh: $2 exited; see $DIR/logs/$2.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "run.sh: $2 is not listening on port $1; see $DIR/logs/$2.log" >&2
    exit 1
}

start() {  # start NAME PORT COMMAND...
    local name=$1 port=$2
    shift 2
    "$@" >>"logs/$name.log" 2>&1 &
    pid_of[$name]=$!
    wait_port "$port" "$name" "$!"
    echo "run.sh: $name is up (port $port, log $DIR/logs/$name.log)"
}

if [ "$DEMO" = 1 ]; then
    # InspIRCd with the same config as the IRC bridge's end-to-end test (e2e/irc/inspircd.py), on port 6667.
    python3 - "$REPO/e2e/irc" "$DIR/data" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
from inspircd import InspIRCd
ircd = InspIRCd(sys.argv[2])
ircd.port = 6667
with open(os.path.join(ircd.dir, "inspircd.conf"), "w") as f:
    f.write(ircd.config())
with open(os.path.join(ircd.dir, "motd.txt"), "w") as f:
    f.write("Causeway demo IRC server\n")
PY
    ircd_args=(--nofork --nopid --config "$DIR/data/inspircd/inspircd.conf")
    [ "$(id -u)" = 0 ] && ircd_args+=(--runasroot)
    start inspircd 6667 "$(command -v inspircd || echo /usr/sbin/inspircd)" "${ircd_args[@]}"
    start fake-bot-api 8081 "$BIN/fake-bot-api" --listen 127.0.0.1:8081
fi
start homeserver 8008 "$BIN/homeserver" -c homeserver.yaml
start_bridges() {
    start telegram-bridge 29317 "$BIN/telegram-bridge" -c telegram.yaml -r telegram-registration.yaml
    start irc-bridge 29318 "$BIN/irc-bridge" -c irc.yaml -r irc-registration.yaml
}
start_bridges
echo "run.sh: the stack is running; Ctrl-C stops it, kill -HUP $$ restarts the bridges"
while true; do
    wait -n "${pid_of[@]}" || true
    if [ "$restart_bridges" = 1 ]; then
        restart_bridges=0
        for name in telegram-bridge irc-bridge; do
            kill "${pid_of[$name]}" 2>/dev/null || true
            wait "${pid_of[$name]}" 2>/dev/null || true
        done
        start_bridges
        continue
    fi
    break
done
echo "run.sh: a process exited; stopping the others (see $DIR/logs)" >&2
