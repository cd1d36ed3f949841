"""End to end: telegram-bridge between fake-bot-api (as Telegram) and a real homeserver (Synapse by default;
E2E_HOMESERVER=causeway for ours, see ../echo-bridge/homeservers.py), with a matrix-nio client.

A Telegram group admin sends /bridge, a Matrix user redeems the code (`bridge CODE`) in their management room
and joins the portal; a Telegram user and the Matrix user talk both ways (text, a reply, an edit, a reaction, a
deletion); the bridge is killed while Telegram users keep talking and every missed message arrives once, in
order, with its Telegram date; a burst of 429s from Telegram loses nothing; Matrix audio, voice, GIF and location
arrive in Telegram as audio, voice, animation and a map; another Matrix user cannot unlink the chat, the one who
linked it can; a bridge admin then links it again by chat id.
"""

import io

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
import yaml
from nio import AsyncClient, RoomCreateResponse, RoomSendResponse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "echo-bridge"))
from homeservers import cargo_binary, free_port, launcher, stop_process  # noqa: E402

TIMEOUT = float(os.environ.get("E2E_TIMEOUT", "120"))
GROUP = -1001234
ANN = {"id": 7, "is_bot": False, "first_name": "Ann", "last_name": "Lee"}
CHAT = {"id": GROUP, "type": "supergroup", "title": "Telegram Group"}


def binary(name):
    override = os.environ.get(f"{name.upper().replace('-', '_')}_BIN")
    if override:
        return override
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "target"))
    path = os.path.join(target, "debug", name)
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "-p", "telegram-bridge", "--bins"], check=True)
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


class FakeTelegram:
    """The fake-bot-api binary and its control routes."""

    def __init__(self, workdir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = open(os.path.join(workdir, "fake-bot-api.log"), "w")
        self.proc = subprocess.Popen([binary("fake-bot-api"), "--listen", f"127.0.0.1:{self.port}"],
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, "fake-bot-api")

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def update(self, update):
        return self.call("POST", "/_fake/updates", update)

    def says(self, text, **extra):
        message = {"chat": CHAT, "from": ANN, "text": text, **extra}
        return self.update({"message": message})

    def sent(self, chat=GROUP):
        return self.call("GET", f"/_fake/sent?chat_id={chat}")

    def wait_sent(self, predicate, what):
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            found = [m for m in self.sent() if predicate(m)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; sent: {self.sent()}")

    def stop(self):
        stop_process(self.proc)


class TelegramBridge:
    def __init__(self, workdir, homeserver, fake):
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
                    "address": f"http://127.0.0.1:{self.port}", "hostname": "127.0.0.1", "port": self.port,
                    "id": "telegram", "bot": {"username": "telegrambot", "displayname": "Telegram bridge"},
                    "database": os.environ.get("E2E_BRIDGE_DATABASE")
                    or f"sqlite:{os.path.join(self.dir, 'telegram.db')}",
                },
                "bridge": {"permissions": {homeserver.server_name: "user",
                                           f"@boss:{homeserver.server_name}": "admin"}},
                "telegram": {"bot_token": "4242:e2e-secret", "api_url": fake.url, "poll_timeout": 1},
            }, f)

    def generate_registration(self):
        subprocess.run([binary("telegram-bridge"), "-c", self.config, "-g", "-r", self.registration], check=True)
        return self.registration

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.dir, f"bridge-{self.starts}.log"), "w")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info,telegram_bridge=debug"))
        self.proc = subprocess.Popen([binary("telegram-bridge"), "-c", self.config, "-r", self.registration],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_port(self.port, self.proc, "telegram-bridge")

    def kill(self):
        """SIGKILL: no graceful shutdown, like a crash."""
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
        self.invites = set()

    async def sync(self):
        resp = await self.client.sync(timeout=500, since=self.since)
        self.since = resp.next_batch
        for room_id, room in resp.rooms.join.items():
            self.events.setdefault(room_id, []).extend(ev.source for ev in room.timeline.events)
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


def body(event):
    return event.get("content", {}).get("body")


async def send(client, room_id, content, event_type="m.room.message"):
    resp = await client.room_send(room_id, event_type, content)
    assert isinstance(resp, RoomSendResponse), resp
    return resp.event_id


async def scenario(homeserver, bridge, fake):
    domain = homeserver.server_name
    bot = f"@telegrambot:{domain}"
    ghost = f"@telegram_7:{domain}"
    homeserver.register_user("alice", "alice-password")
    alice = AsyncClient(homeserver.base_url, f"@alice:{domain}")
    try:
        await alice.login("alice-password")
        sync = Sync(alice)
        await sync.sync()

        # Ann owns the group and asks the bot for a link code.
        fake.update({"chat_member": {"chat": CHAT, "from": ANN, "date": 1,
                                     "old_chat_member": {"status": "member", "user": ANN},
                                     "new_chat_member": {"status": "creator", "user": ANN, "is_anonymous": False}}})
        fake.says("/bridge")
        answer = fake.wait_sent(lambda m: "bridge " in m.get("text", ""), "the link code")
        code = answer["text"].split("send bridge ")[1].split()[0]

        # Alice redeems it in her management room (a DM with the bot); the bot invites her to the portal.
        created = await alice.room_create(invite=[bot], is_direct=True)
        assert isinstance(created, RoomCreateResponse), created
        dm = created.room_id
        await sync.wait_for(lambda r, e: r == dm and e["type"] == "m.room.member" and e.get("state_key") == bot
                            and e["content"].get("membership") == "join", "the bot to join the DM")
        await send(alice, dm, {"msgtype": "m.text", "body": f"bridge {code}"})
        portal = await sync.wait_invite("the portal invite")
        await alice.join(portal)
        fake.wait_sent(lambda m: "now bridged" in m.get("text", ""), "the confirmation in Telegram")

        # Telegram -> Matrix, with the Telegram date.
        date = int(time.time()) - 30
        hello = fake.says("hello from Telegram", date=date)
        _, event = await sync.wait_for(lambda r, e: r == portal and body(e) == "hello from Telegram", "Ann's message")
        assert event["sender"] == ghost
        assert event["origin_server_ts"] == date * 1000

        # Matrix -> Telegram, as a reply to Ann's message.
        await send(alice, portal, {"msgtype": "m.text", "body": "hi Ann", "format": "org.matrix.custom.html",
                                   "formatted_body": "<b>hi</b> Ann",
                                   "m.relates_to": {"m.in_reply_to": {"event_id": event["event_id"]}}})
        relayed = fake.wait_sent(lambda m: m.get("text", "").endswith("hi Ann"), "Alice's message")
        assert relayed["text"] == "alice: hi Ann", relayed
        assert relayed["reply_to_message"]["message_id"] == hello["message_id"]

        # Telegram edit and reaction; Matrix reaction and deletion.
        fake.update({"edited_message": {"message_id": hello["message_id"], "chat": CHAT, "from": ANN, "date": date,
                                        "edit_date": date + 5, "text": "hello, edited"}})
        await sync.wait_for(lambda r, e: r == portal and e["content"].get("m.new_content", {}).get("body")
                            == "hello, edited", "the edit")
        fake.update({"message_reaction": {"chat": CHAT, "message_id": relayed["message_id"], "user": ANN,
                                          "date": date + 6, "old_reaction": [],
                                          "new_reaction": [{"type": "emoji", "emoji": "👍"}]}})
        await sync.wait_for(lambda r, e: r == portal and e["type"] == "m.reaction" and e["sender"] == ghost,
                            "Ann's reaction")
        await send(alice, portal, {"m.relates_to": {"rel_type": "m.annotation", "event_id": event["event_id"],
                                                    "key": "🔥"}}, "m.reaction")
        deadline = time.time() + TIMEOUT
        while not fake.call("GET", f"/_fake/reactions?chat_id={GROUP}") and time.time() < deadline:
            time.sleep(0.1)
        assert fake.call("GET", f"/_fake/reactions?chat_id={GROUP}")[0]["reaction"][0]["emoji"] == "🔥"
        mine = await send(alice, portal, {"msgtype": "m.text", "body": "delete me"})
        fake.wait_sent(lambda m: m.get("text") == "alice: delete me", "the message to delete")
        await alice.room_redact(portal, mine)
        fake.wait_sent(lambda m: m.get("text") == "alice: delete me" and m["deleted"], "the deletion")

        # The bridge crashes; Telegram users keep talking; every missed message arrives once, in order.
        bridge.kill()
        missed = [f"missed {i}" for i in range(5)]
        for i, text in enumerate(missed):
            fake.says(text, date=date + 10 + i)
        bridge.start()

        def arrived():
            return [(body(e), e["origin_server_ts"]) for e in sync.events.get(portal, [])
                    if e["sender"] == ghost and body(e) in missed]

        deadline = time.time() + TIMEOUT
        while len(arrived()) < len(missed) and time.time() < deadline:
            await sync.sync()
        settle = time.time() + 3
        while time.time() < settle:
            await sync.sync()
        assert arrived() == [(text, (date + 10 + i) * 1000) for i, text in enumerate(missed)], arrived()

        # A burst of 429s from Telegram loses nothing and keeps the order.
        fake.call("POST", "/_fake/fail", {"count": 3, "error_code": 429, "retry_after": 1, "method": "sendMessage"})
        burst = [f"burst {i}" for i in range(3)]
        for text in burst:
            await send(alice, portal, {"msgtype": "m.text", "body": text})
        fake.wait_sent(lambda m: m.get("text") == "alice: burst 2", "the last burst message")
        texts = [m["text"] for m in fake.sent() if m.get("text", "").startswith("alice: burst")]
        assert texts == [f"alice: {t}" for t in burst], texts

        await media_and_location(alice, portal, fake)
        await unlinking_and_linking_by_id(homeserver, alice, sync, dm, portal, fake)
    finally:
        await alice.close()


async def upload(client, data, content_type, filename):
    resp, _ = await client.upload(io.BytesIO(data), content_type=content_type, filename=filename,
                                  filesize=len(data))
    assert resp.content_uri.startswith("mxc://"), resp
    return resp.content_uri


async def media_and_location(alice, portal, fake):
    """Matrix audio, voice, GIF and location reach Telegram as the matching Bot API messages."""
    mp3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 64
    ogg = b"OggS" + b"\x00" * 60
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
    await send(alice, portal, {"msgtype": "m.audio", "body": "song.mp3",
                               "url": await upload(alice, mp3, "audio/mpeg", "song.mp3"),
                               "info": {"mimetype": "audio/mpeg", "size": len(mp3)}})
    audio = fake.wait_sent(lambda m: "audio" in m, "the audio")
    assert audio["audio"]["file_name"] == "song.mp3", audio
    assert audio["caption"] == "alice: song.mp3", audio
    await send(alice, portal, {"msgtype": "m.audio", "body": "Voice message",
                               "url": await upload(alice, ogg, "audio/ogg", "voice.ogg"),
                               "info": {"mimetype": "audio/ogg", "size": len(ogg)},
                               "org.matrix.msc1767.audio": {"duration": 1000}, "org.matrix.msc3245.voice": {}})
    voice = fake.wait_sent(lambda m: "voice" in m, "the voice message")
    assert voice["voice"]["file_size"] == len(ogg), voice
    await send(alice, portal, {"msgtype": "m.image", "body": "cat.gif",
                               "url": await upload(alice, gif, "image/gif", "cat.gif"),
                               "info": {"mimetype": "image/gif", "size": len(gif), "w": 1, "h": 1}})
    animation = fake.wait_sent(lambda m: "animation" in m, "the GIF")
    assert animation["animation"]["file_name"] == "cat.gif", animation
    assert "photo" not in animation, animation
    await send(alice, portal, {"msgtype": "m.location", "body": "Eiffel Tower",
                               "geo_uri": "geo:48.85837,2.294481;u=20"})
    where = fake.wait_sent(lambda m: "location" in m, "the location")
    assert where["location"] == {"latitude": 48.85837, "longitude": 2.294481}, where
    assert where["reply_to_message"]["text"] == "alice: 📍 Eiffel Tower", where


async def notice(sync, room, matches, what):
    """The first notice from the bridge bot in `room` whose body `matches`."""
    _, event = await sync.wait_for(lambda r, e: r == room and e["type"] == "m.room.message"
                                   and e["content"].get("msgtype") == "m.notice" and matches(body(e)), what)
    return body(event)


async def unlinking_and_linking_by_id(homeserver, alice, sync, dm, portal, fake):
    """Only the linker (or an admin) unlinks from Matrix; an admin links by chat id without a code."""
    domain = homeserver.server_name
    bot = f"@telegrambot:{domain}"
    homeserver.register_user("bob", "bob-password")
    homeserver.register_user("boss", "boss-password")
    bob = AsyncClient(homeserver.base_url, f"@bob:{domain}")
    boss = AsyncClient(homeserver.base_url, f"@boss:{domain}")
    try:
        for client, password in [(bob, "bob-password"), (boss, "boss-password")]:
            await client.login(password)
        bob_sync, boss_sync = Sync(bob), Sync(boss)
        await bob_sync.sync()
        await boss_sync.sync()
        bob_dm = (await bob.room_create(invite=[bot], is_direct=True)).room_id
        await bob_sync.wait_for(lambda r, e: r == bob_dm and e.get("state_key") == bot
                                and e["content"].get("membership") == "join", "the bot in Bob's DM")
        await send(bob, bob_dm, {"msgtype": "m.text", "body": f"unlink {GROUP}"})
        await notice(bob_sync, bob_dm, lambda b: b == "Only the Matrix user who linked this chat, or a bridge "
                     "admin, can unlink it.", "Bob's refusal")
        await send(bob, bob_dm, {"msgtype": "m.text", "body": "help"})
        help_text = await notice(bob_sync, bob_dm, lambda b: b.startswith("Commands:"), "the help")
        assert "\nTelegram commands:\nbridge CODE:" in help_text, help_text
        assert "unlink: stop bridging this room (admin)" not in help_text, help_text

        await send(alice, portal, {"msgtype": "m.text", "body": "!bridge unlink"})
        await notice(sync, portal, lambda b: b == f"Telegram chat {GROUP} is no longer bridged to {portal}.",
                     "the unlink answer")
        fake.wait_sent(lambda m: m.get("text") == "This chat is no longer bridged to Matrix.", "the unlink in Telegram")

        boss_dm = (await boss.room_create(invite=[bot], is_direct=True)).room_id
        await boss_sync.wait_for(lambda r, e: r == boss_dm and e.get("state_key") == bot
                                 and e["content"].get("membership") == "join", "the bot in the admin's DM")
        await send(boss, boss_dm, {"msgtype": "m.text", "body": f"link {GROUP}"})
        relinked = await boss_sync.wait_invite("the new portal invite")
        await boss.join(relinked)
        assert relinked != portal
        fake.says("after the relink")
        _, event = await boss_sync.wait_for(lambda r, e: r == relinked and body(e) == "after the relink",
                                            "Ann's message in the relinked room")
        assert event["sender"] == f"@telegram_7:{domain}"
    finally:
        await bob.close()
        await boss.close()


def test_telegram_bridge_end_to_end():
    with tempfile.TemporaryDirectory(prefix="telegram-e2e-") as workdir:
        homeserver = launcher(workdir)
        fake = FakeTelegram(workdir)
        bridge = TelegramBridge(workdir, homeserver, fake)
        registration = bridge.generate_registration()
        try:
            homeserver.start([registration])
            bridge.start()
            asyncio.run(scenario(homeserver, bridge, fake))
        finally:
            bridge.stop()
            fake.stop()
            homeserver.stop()
            keep = os.environ.get("E2E_KEEP_LOGS")
            if keep:
                subprocess.run(["cp", "-r", workdir, keep], check=False)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-x", "-q"]))
