"""Echo-bridge throughput with a real homeserver in the loop (Synapse by default).

Starts the homeserver and the bridge like the e2e test, has one user send N messages into a
portal as fast as the homeserver takes them, and measures how long the homeserver took to accept
them and how long until every echo from the ghost was in the room. Prints one line per figure.

    python3 e2e/echo-bridge/bench_synapse.py [N]
ECHO_BRIDGE_BIN picks the bridge binary (use a --release build for figures).
"""

import asyncio
import os
import sys
import tempfile
import time

from nio import AsyncClient

from homeservers import launcher
from test_echo_bridge import EchoBridge, Timeline, body, is_plain_message, send_text


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def run(homeserver, bridge, n):
    domain = homeserver.server_name
    ghost = f"@echo_alice:{domain}"
    homeserver.register_user("alice", "alice-password")
    alice = AsyncClient(homeserver.base_url, f"@alice:{domain}")
    try:
        await alice.login("alice-password")
        room = (await alice.room_create(name="bench")).room_id
        timeline = Timeline(alice, room)
        await timeline.sync()
        bot = f"@echobot:{domain}"
        await alice.room_invite(room, bot)
        await timeline.wait_for(
            lambda e: e["type"] == "m.room.member" and e.get("state_key") == bot
            and e["content"].get("membership") == "join", "the bot to join")
        await send_text(alice, room, "warm-up")
        await timeline.wait_for(lambda e: e["sender"] == ghost and body(e) == "warm-up", "warm-up echo")

        texts = [f"bench {i}" for i in range(n)]
        started = time.time()
        for text in texts:
            await send_text(alice, room, text)
        accepted = time.time() - started
        wanted = set(texts)
        deadline = time.time() + 600
        while True:
            await timeline.sync()
            seen = {body(e) for e in timeline.events if e["sender"] == ghost and is_plain_message(e)}
            if wanted <= seen:
                break
            # /sync may skip part of a burst; /messages has everything.
            seen = {body(e) for e in await timeline.history() if e["sender"] == ghost and is_plain_message(e)}
            if wanted <= seen:
                break
            if time.time() > deadline:
                raise SystemExit(f"echoes missing after 600 s: {sorted(wanted - seen)[:10]}")
        echoed = time.time() - started
        print(f"messages: {n}", flush=True)
        print(f"homeserver accepted the sends in {accepted:.2f} s ({n / accepted:.0f} msg/s)")
        print(f"all echoes in the room after {echoed:.2f} s ({n / echoed:.0f} msg/s end to end)")
        print(f"echo-bridge rss: {rss_kib(bridge.proc.pid)} KiB")
    finally:
        await alice.close()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    keep = os.environ.get("E2E_KEEP_LOGS")
    with tempfile.TemporaryDirectory(prefix="echo-bench-") as tmp:
        workdir = keep or tmp
        homeserver = launcher(workdir)
        bridge = EchoBridge(workdir, homeserver)
        registration = bridge.generate_registration()
        try:
            homeserver.start([registration])
            bridge.start()
            asyncio.run(run(homeserver, bridge, n))
        finally:
            bridge.stop()
            homeserver.stop()


if __name__ == "__main__":
    main()
