"""End to end: the echo bridge against a real homeserver (Synapse by default; see homeservers.py).

A Matrix user invites the bridge bot to a room, which becomes a portal; each message comes back
from the ghost @echo_<localpart>; edits and redactions are mirrored; the bridge is killed and
restarted while messages are being sent, and every message is echoed exactly once, in order.
"""

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import yaml
from nio import AsyncClient, RoomCreateResponse, RoomSendResponse

from homeservers import cargo_binary, free_port, launcher, stop_process

TIMEOUT = float(os.environ.get("E2E_TIMEOUT", "120"))


class EchoBridge:
    """The echo-bridge binary, started and killed by the test."""

    def __init__(self, workdir, homeserver):
        self.binary = os.environ.get("ECHO_BRIDGE_BIN") or cargo_binary("echo-bridge")
        self.dir = os.path.join(workdir, "bridge")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.config = os.path.join(self.dir, "config.yaml")
        self.registration = os.path.join(self.dir, "registration.yaml")
        self.proc = None
        self.starts = 0
        with open(self.config, "w") as f:
            yaml.safe_dump({
                "homeserver": {"address": homeserver.base_url, "domain": homeserver.server_name},
                "appservice": {
                    "address": f"http://127.0.0.1:{self.port}",
                    "hostname": "127.0.0.1",
                    "port": self.port,
                    "id": "echo",
                    "bot": {"username": "echobot", "displayname": "Echo bridge"},
                    # E2E_BRIDGE_DATABASE=postgres://... runs the bridge on PostgreSQL instead.
                    "database": os.environ.get("E2E_BRIDGE_DATABASE")
                    or f"sqlite:{os.path.join(self.dir, 'echo.db')}",
                },
                "bridge": {"permissions": {homeserver.server_name: "user"}},
            }, f)

    def generate_registration(self):
        subprocess.run([self.binary, "-c", self.config, "-g", "-r", self.registration], check=True)
        return self.registration

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.dir, f"bridge-{self.starts}.log"), "w")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info,appservice_sdk=debug"))
        self.proc = subprocess.Popen([self.binary, "-c", self.config, "-r", self.registration],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, f"echo-bridge exited; see {log.name}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("echo-bridge did not listen")

    def kill(self):
        """SIGKILL: no graceful shutdown, like a crash."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        stop_process(self.proc)


class Timeline:
    """Collects a room's timeline events through /sync."""

    def __init__(self, client, room_id):
        self.client = client
        self.room_id = room_id
        self.events = []
        self.since = None

    async def sync(self):
        # A large timeline limit: with the default (10) a busy room's sync is "limited" and
        # skips events.
        resp = await self.client.sync(timeout=1000, since=self.since,
                                      sync_filter={"room": {"timeline": {"limit": 1000}}})
        assert hasattr(resp, "rooms"), resp
        self.since = resp.next_batch
        room = resp.rooms.join.get(self.room_id)
        if room:
            self.events.extend(ev.source for ev in room.timeline.events)

    async def history(self):
        """Every event of the room, oldest first, paginated with /messages (unlike /sync, never
        skips part of a burst)."""
        events, token = [], self.since
        while True:
            resp = await self.client.room_messages(self.room_id, start=token, limit=500)
            assert hasattr(resp, "chunk"), resp
            events.extend(ev.source for ev in resp.chunk)
            if not resp.chunk or not resp.end or resp.end == token:
                return list(reversed(events))
            token = resp.end

    async def wait_for(self, predicate, what, timeout=TIMEOUT):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [e for e in self.events if predicate(e)]
            if found:
                return found[0]
            await self.sync()
        raise AssertionError(f"timed out waiting for {what}")


def body(event):
    return event.get("content", {}).get("body")


def is_plain_message(event):
    return event["type"] == "m.room.message" and "m.relates_to" not in event.get("content", {})


async def send_text(client, room_id, text):
    resp = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})
    assert isinstance(resp, RoomSendResponse), resp
    return resp.event_id


async def scenario(homeserver, bridge):
    domain = homeserver.server_name
    ghost = f"@echo_alice:{domain}"
    bot = f"@echobot:{domain}"
    homeserver.register_user("alice", "alice-password")
    alice = AsyncClient(homeserver.base_url, f"@alice:{domain}")
    try:
        await alice.login("alice-password")
        created = await alice.room_create(name="echo test")
        assert isinstance(created, RoomCreateResponse), created
        room = created.room_id
        timeline = Timeline(alice, room)
        await timeline.sync()

        # The invited bot joins: the room is now a portal.
        await alice.room_invite(room, bot)
        await timeline.wait_for(
            lambda e: e["type"] == "m.room.member" and e.get("state_key") == bot
            and e["content"].get("membership") == "join", "the bot to join")

        # A message comes back from the ghost, with the same text.
        original = await send_text(alice, room, "hello echo")
        echo = await timeline.wait_for(
            lambda e: e["sender"] == ghost and is_plain_message(e) and body(e) == "hello echo",
            "the echo of the first message")
        profile = await alice.get_displayname(ghost)
        assert profile.displayname == "alice (echo)"

        # A reaction is mirrored: the ghost reacts to the same message with the same key.
        await alice.room_send(room, "m.reaction", {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": original, "key": "👍"}})
        await timeline.wait_for(
            lambda e: e["type"] == "m.reaction" and e["sender"] == ghost
            and e["content"]["m.relates_to"] == {"rel_type": "m.annotation", "event_id": original, "key": "👍"},
            "the ghost's reaction")

        # An edit is mirrored onto the echo.
        await alice.room_send(room, "m.room.message", {
            "msgtype": "m.text", "body": "* hello again",
            "m.new_content": {"msgtype": "m.text", "body": "hello again"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        })
        await timeline.wait_for(
            lambda e: e["sender"] == ghost and e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
            and e["content"]["m.relates_to"]["event_id"] == echo["event_id"]
            and e["content"]["m.new_content"]["body"] == "hello again",
            "the echo to be edited")

        # A redaction is mirrored onto the echo.
        await alice.room_redact(room, original, reason="oops")
        await timeline.wait_for(
            lambda e: e["type"] == "m.room.redaction" and e["sender"] == ghost
            and (e.get("redacts") or e["content"].get("redacts")) == echo["event_id"],
            "the echo to be redacted")

        # The bridge crashes while messages are being sent, and comes back.
        texts = [f"message {i}" for i in range(1, 10)]
        for text in texts[:3]:
            await send_text(alice, room, text)
        bridge.kill()
        for text in texts[3:6]:
            await send_text(alice, room, text)
        await asyncio.sleep(1)
        bridge.start()
        for text in texts[6:]:
            await send_text(alice, room, text)

        async def echoes():
            await timeline.sync()
            return [body(e) for e in await timeline.history()
                    if e["sender"] == ghost and is_plain_message(e) and body(e) in texts]

        deadline = time.time() + TIMEOUT
        seen = await echoes()
        while set(seen) != set(texts) and time.time() < deadline:
            await asyncio.sleep(1)
            seen = await echoes()
        assert set(seen) == set(texts), f"lost: {sorted(set(texts) - set(seen))}"
        # Give a late duplicate the chance to show up before checking there is none.
        await asyncio.sleep(5)
        seen = await echoes()
        assert seen == texts, f"echoes doubled or out of order: {seen}"
    finally:
        await alice.close()


def test_echo_bridge_end_to_end():
    with tempfile.TemporaryDirectory(prefix="echo-e2e-") as workdir:
        homeserver = launcher(workdir)
        bridge = EchoBridge(workdir, homeserver)
        registration = bridge.generate_registration()
        try:
            homeserver.start([registration])
            bridge.start()
            asyncio.run(scenario(homeserver, bridge))
        finally:
            bridge.stop()
            homeserver.stop()
            keep = os.environ.get("E2E_KEEP_LOGS")
            if keep:
                subprocess.run(["cp", "-r", workdir, keep], check=False)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-x", "-q"]))
