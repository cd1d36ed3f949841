"""End to end: irc-bridge between a real InspIRCd (see inspircd.py) and a real homeserver (Synapse by
default; E2E_HOMESERVER=causeway for ours, see ../echo-bridge/homeservers.py), with a matrix-nio client
for the Matrix user and raw-socket IRC clients (ircclient.py) for the IRC users.

A Matrix user and an IRC user talk both ways in a statically mapped channel (formatting, emotes, a long
message split at the 512-byte line limit, a reply) and privately; an IRC user changes nick; IRC kicks
happen to a ghost and to the Matrix user's own connection; a channel is reached by its alias; the bridge
is killed while IRC users keep talking and every missed line arrives once, in order, with IRC's time,
across two restarts.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import yaml
from nio import AsyncClient, JoinResponse, RoomCreateResponse, RoomPreset, RoomSendResponse, RoomVisibility

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "echo-bridge"))
sys.path.insert(0, HERE)
from homeservers import free_port, launcher, stop_process  # noqa: E402
from inspircd import InspIRCd  # noqa: E402
from ircclient import IrcClient  # noqa: E402

TIMEOUT = float(os.environ.get("E2E_TIMEOUT", "60"))
NET = "testnet"


def binary():
    override = os.environ.get("IRC_BRIDGE_BIN")
    if override:
        return override
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "..", "target"))
    path = os.path.join(target, "debug", "irc-bridge")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "-p", "irc-bridge"], check=True)
    return path


def wait_port(port, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        assert proc.poll() is None, f"{what} exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen")


class IrcBridge:
    def __init__(self, workdir, homeserver, ircd, irc_options=None, port=None, **network):
        """`network`: keys of the IRC network's config to set or override; `irc_options`: more keys of
        the `irc:` section (e.g. `media_proxy`); `port`: the appservice port (default a free one)."""
        self.dir = os.path.join(workdir, "bridge")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.config = os.path.join(self.dir, "config.yaml")
        self.registration = os.path.join(self.dir, "registration.yaml")
        self.proc = None
        self.starts = 0
        with open(self.config, "w") as f:
            yaml.safe_dump({
                "homeserver": {"address": homeserver.base_url, "domain": homeserver.server_name},
                "appservice": {
                    "address": f"http://127.0.0.1:{self.port}", "hostname": "127.0.0.1", "port": self.port,
                    "id": "irc", "bot": {"username": "ircbot", "displayname": "IRC bridge"},
                    "database": os.environ.get("E2E_BRIDGE_DATABASE")
                    or f"sqlite:{os.path.join(self.dir, 'irc.db')}",
                },
                "bridge": {"permissions": {homeserver.server_name: "user"}},
                "metrics": {"enabled": True},
                "irc": {"networks": {NET: {
                    "host": "127.0.0.1", "port": ircd.port, "tls": False, "nick": "relaybot",
                    "messages_per_second": 50, "burst": 50, "netsplit_grace": 2, "max_lines": 4,
                    "channels": {"#static": f"#static:{homeserver.server_name}"}, **network,
                }}, **(irc_options or {})},
            }, f)

    def generate_registration(self):
        subprocess.run([binary(), "-c", self.config, "-g", "-r", self.registration], check=True)
        return self.registration

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.dir, f"bridge-{self.starts}.log"), "w")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info,irc_bridge=debug"))
        self.proc = subprocess.Popen([binary(), "-c", self.config, "-r", self.registration],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_port(self.port, self.proc, "irc-bridge")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        stop_process(self.proc)


class Sync:
    """All rooms' timelines and invites of one client, through /sync."""

    def __init__(self, client):
        self.client = client
        self.since = None
        self.events = {}
        self.seen = set()
        self.invites = set()

    async def sync(self):
        resp = await self.client.sync(timeout=300, since=self.since)
        self.since = resp.next_batch
        # A room joined again comes with recent events seen before: keep each event once.
        for rooms in (resp.rooms.join, resp.rooms.leave):
            for room_id, room in rooms.items():
                for event in room.timeline.events:
                    if event.event_id not in self.seen:
                        self.seen.add(event.event_id)
                        self.events.setdefault(room_id, []).append(event.source)
        self.invites.update(resp.rooms.invite.keys())

    async def wait_for(self, predicate, what):
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            for room_id, events in self.events.items():
                for event in events:
                    if predicate(room_id, event):
                        return room_id, event
            await self.sync()
        raise AssertionError(f"timed out waiting for {what}")

    async def wait_invite(self, what):
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            if self.invites:
                return self.invites.pop()
            await self.sync()
        raise AssertionError(f"timed out waiting for {what}")

    async def settle(self, seconds=2.0):
        end = time.time() + seconds
        while time.time() < end:
            await self.sync()


def body(event):
    return event.get("content", {}).get("body")


async def send(client, room_id, content):
    resp = await client.room_send(room_id, "m.room.message", content)
    assert isinstance(resp, RoomSendResponse), resp
    return resp.event_id


async def join(client, room):
    deadline = time.time() + TIMEOUT
    while True:
        resp = await client.join(room)
        if isinstance(resp, JoinResponse):
            return resp.room_id
        assert time.time() < deadline, f"could not join {room}: {resp}"
        await asyncio.sleep(0.5)


def irc_ms(echo):
    """The server-time of an IRC line, in ms."""
    from datetime import datetime
    return int(datetime.strptime(echo["tags"]["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=__import__("datetime").timezone.utc).timestamp() * 1000)


async def make_static_room(homeserver):
    """Alice makes the room the config maps #static to, and gives the bridge bot full power in it
    (a homeserver may refuse an appservice an alias outside its namespace, as Synapse does)."""
    domain = homeserver.server_name
    homeserver.register_user("alice", "alice-password")
    alice = AsyncClient(homeserver.base_url, f"@alice:{domain}")
    try:
        await alice.login("alice-password")
        resp = await alice.room_create(alias="static", name="static", visibility=RoomVisibility.public,
                                       preset=RoomPreset.public_chat)
        assert isinstance(resp, RoomCreateResponse), resp
        levels = await alice.room_get_state_event(resp.room_id, "m.room.power_levels")
        content = levels.content
        content.setdefault("users", {})[f"@ircbot:{domain}"] = 100
        await alice.room_put_state(resp.room_id, "m.room.power_levels", content)
    finally:
        await alice.close()


async def scenario(homeserver, bridge, ircd, bob):
    domain = homeserver.server_name
    ghost = lambda nick: f"@irc_{NET}_{nick}:{domain}"  # noqa: E731
    alice = AsyncClient(homeserver.base_url, f"@alice:{domain}")
    carol = None
    try:
        await alice.login("alice-password")
        alice_sync = Sync(alice)
        await alice_sync.sync()

        # The static mapping's room (made by Alice before the bridge started) is joined by the bot; Alice's
        # first line there gives her her own IRC connection, which joins the channel and says it.
        portal = await join(alice, f"#static:{domain}")
        await send(alice, portal, {"msgtype": "m.text", "body": "first!"})
        bob.wait(lambda m: m["command"] == "JOIN" and m["nick"] == "alice[m]", "alice[m] to join #static")
        bob.wait(lambda m: m["nick"] == "alice[m]" and m["params"] == ["#static", "first!"], "Alice's first line")

        # IRC -> Matrix, formatted, with IRC's time.
        echo = bob.say("#static", "\x02hello\x02 from irc")
        _, event = await alice_sync.wait_for(lambda r, e: r == portal and body(e) == "hello from irc", "Bob's line")
        assert event["sender"] == ghost("ircbob")
        assert event["content"]["formatted_body"] == "<strong>hello</strong> from irc"
        assert event["origin_server_ts"] == irc_ms(echo)

        # Matrix -> IRC through Alice's own connection, HTML as mIRC codes.
        await send(alice, portal, {"msgtype": "m.text", "body": "hi bob", "format": "org.matrix.custom.html",
                                   "formatted_body": "<b>hi</b> bob"})
        bob.wait(lambda m: m["command"] == "PRIVMSG" and m["nick"] == "alice[m]"
                 and m["params"] == ["#static", "\x02hi\x02 bob"], "Alice's line on IRC")

        # Emotes both ways.
        await send(alice, portal, {"msgtype": "m.emote", "body": "waves"})
        bob.wait(lambda m: m["nick"] == "alice[m]" and m["params"] == ["#static", "\x01ACTION waves\x01"],
                 "Alice's /me")
        bob.send("PRIVMSG #static :\x01ACTION nods\x01")
        _, event = await alice_sync.wait_for(lambda r, e: r == portal and body(e) == "nods", "Bob's /me")
        assert event["content"]["msgtype"] == "m.emote"

        # A long line is split within IRC's 512-byte limit, without breaking UTF-8, and arrives whole.
        long = " ".join(f"wörd{i}" for i in range(150))
        await send(alice, portal, {"msgtype": "m.text", "body": long})
        bob.wait(lambda m: m["nick"] == "alice[m]" and m["params"][-1].endswith("wörd149"), "the long line's end")
        parts = [m for m in bob.privmsgs("#static", "alice[m]") if m["params"][-1].startswith("wörd")]
        assert len(parts) >= 2
        assert all(len(m["raw"].split(" ", 1)[1].encode()) + 2 <= 512 for m in parts)
        assert " ".join(m["params"][-1] for m in parts) == long

        # Too many lines: a link to the whole text instead.
        many = "\n".join(f"line {i}" for i in range(10))
        await send(alice, portal, {"msgtype": "m.text", "body": many})
        linked = bob.wait(lambda m: m["nick"] == "alice[m]" and "10 lines: http" in m["params"][-1], "the link")
        assert "/_matrix/media/v3/download/" in linked["params"][-1]

        # A reply is quoted.
        _, hello = await alice_sync.wait_for(lambda r, e: r == portal and body(e) == "hello from irc", "hello")
        await send(alice, portal, {"msgtype": "m.text", "body": "indeed",
                                   "m.relates_to": {"m.in_reply_to": {"event_id": hello["event_id"]}}})
        bob.wait(lambda m: m["nick"] == "alice[m]" and m["params"][-1] == 'ircbob: "hello from irc" <- indeed',
                 "the quoted reply")

        # A private message from IRC opens a direct chat, and the answer goes back privately.
        bob.say("alice[m]", "psst, alice")
        dm = await alice_sync.wait_invite("the private chat invite")
        await join(alice, dm)
        await alice_sync.wait_for(lambda r, e: r == dm and body(e) == "psst, alice" and e["sender"] == ghost("ircbob"),
                                  "the private message")
        await send(alice, dm, {"msgtype": "m.text", "body": "secret answer"})
        bob.wait(lambda m: m["nick"] == "alice[m]" and m["params"] == ["ircbob", "secret answer"], "the private answer")

        # Another IRC user joins, and Bob (the channel op) kicks them: the ghost is kicked in Matrix.
        carol = IrcClient(ircd.port, "carol")
        carol.send("JOIN #static")
        await alice_sync.wait_for(lambda r, e: r == portal and e["type"] == "m.room.member"
                                  and e.get("state_key") == ghost("carol")
                                  and e["content"].get("membership") == "join", "Carol's ghost to join")
        bob.send("KICK #static carol :behave")
        _, kicked = await alice_sync.wait_for(lambda r, e: r == portal and e["type"] == "m.room.member"
                                              and e.get("state_key") == ghost("carol")
                                              and e["content"].get("membership") == "leave", "Carol's kick")
        assert "behave" in kicked["content"].get("reason", "")

        # A nick change: the old ghost leaves, the new one speaks.
        bob.send("NICK ircrob")
        bob.nick = "ircrob"
        await alice_sync.wait_for(lambda r, e: r == portal and e["type"] == "m.room.member"
                                  and e.get("state_key") == ghost("ircbob")
                                  and e["content"].get("membership") == "leave", "the old nick to leave")
        bob.say("#static", "new nick, same me")
        _, event = await alice_sync.wait_for(lambda r, e: r == portal and body(e) == "new nick, same me", "new nick")
        assert event["sender"] == ghost("ircrob")

        # A channel reached by its alias: the relay bot joins it, and what was said before comes as history.
        early = bob.say("#dynamic", "said before the portal existed")
        dynamic = await join(alice, f"#irc_{NET}_#dynamic:{domain}")
        _, event = await alice_sync.wait_for(lambda r, e: r == dynamic and body(e) == "said before the portal existed",
                                             "the dynamic channel's history")
        assert event["origin_server_ts"] == irc_ms(early) // 1000 * 1000
        bob.say("#dynamic", "live in dynamic")
        await alice_sync.wait_for(lambda r, e: r == dynamic and body(e) == "live in dynamic", "a live line")

        # IRC kicks Alice's own connection: Alice is kicked from the room (made by the bridge, so the bot
        # may kick her); she comes back, and so does her connection.
        bob.wait(lambda m: m["command"] == "JOIN" and m["nick"] == "alice[m]" and m["params"][0] == "#dynamic",
                 "alice[m] to join #dynamic")
        bob.send("KICK #dynamic alice[m] :out")
        deadline = time.time() + TIMEOUT
        while dynamic in (await alice.joined_rooms()).rooms:
            assert time.time() < deadline, "Alice was not kicked from the room"
            await asyncio.sleep(0.2)
        await join(alice, dynamic)
        bob.wait(lambda m: m["command"] == "JOIN" and m["nick"] == "alice[m]" and len(bob.seen(
            lambda j: j["command"] == "JOIN" and j["nick"] == "alice[m]" and j["params"][0] == "#dynamic")) >= 2,
            "alice[m] to rejoin #dynamic")

        # The bridge crashes; IRC users keep talking; every missed line arrives once, in order, with IRC's time.
        bridge.kill()
        missed = [f"missed {i}" for i in range(5)]
        times = []
        for text in missed:
            times.append(irc_ms(bob.say("#static", text)))
            time.sleep(0.3)
        bridge.start()

        def arrived():
            return [(body(e), e["origin_server_ts"]) for e in alice_sync.events.get(portal, [])
                    if e["sender"] == ghost("ircrob") and body(e) in missed]

        deadline = time.time() + TIMEOUT
        while len(arrived()) < len(missed) and time.time() < deadline:
            await alice_sync.sync()
        # Once more, with nothing missed: nothing may come twice.
        await alice_sync.settle(2)
        bridge.kill()
        bridge.start()
        await alice_sync.settle(4)
        # chanhistory keeps whole seconds; the live line had milliseconds.
        assert arrived() == [(t, ms // 1000 * 1000) for t, ms in zip(missed, times)], arrived()
        bodies = [body(e) for e in alice_sync.events[portal] if e["type"] == "m.room.message"]
        for text in ["hello from irc", "nods", "new nick, same me"]:
            assert bodies.count(text) == 1, (text, bodies)
        # Alice's own lines, replayed by IRC after the restart, did not come back as a ghost's.
        assert not [e for e in alice_sync.events[portal] if e["sender"].startswith(f"@irc_{NET}_alice")]

        # Alice still talks to IRC after the restarts.
        await send(alice, portal, {"msgtype": "m.text", "body": "back again"})
        bob.wait(lambda m: m["nick"] == "alice[m]" and m["params"] == ["#static", "back again"], "after restart")
    finally:
        if carol:
            carol.close()
        await alice.close()


def test_irc_bridge_end_to_end():
    with tempfile.TemporaryDirectory(prefix="irc-e2e-") as workdir:
        ircd = InspIRCd(workdir).start()
        homeserver = launcher(workdir)
        bridge = IrcBridge(workdir, homeserver, ircd)
        registration = bridge.generate_registration()
        bob = None
        try:
            # Bob is first in the channel, so he is its op.
            bob = IrcClient(ircd.port, "ircbob")
            bob.send("JOIN #static")
            bob.send("JOIN #dynamic")
            bob.wait(lambda m: m["command"] == "366" and m["params"][1] == "#dynamic", "Bob's joins")
            homeserver.start([registration])
            asyncio.run(make_static_room(homeserver))
            bridge.start()
            asyncio.run(scenario(homeserver, bridge, ircd, bob))
        finally:
            if bob:
                bob.close()
            bridge.stop()
            homeserver.stop()
            ircd.stop()
            keep = os.environ.get("E2E_KEEP_LOGS")
            if keep:
                subprocess.run(["cp", "-r", workdir, keep], check=False)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-x", "-q"]))
