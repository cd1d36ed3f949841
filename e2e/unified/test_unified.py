"""End to end: the unified chat. One Matrix room on our homeserver is the portal of a Telegram group (through
telegram-bridge and fake-bot-api) and of an IRC channel (through irc-bridge and a real InspIRCd), every
process separate and configured from `examples/unified/` (see stack.py).

The room is linked as the README's "Bridge Telegram and IRC" says: a Telegram admin sends /bridge, Alice
redeems the code (the Telegram bot makes the room), then the IRC channel is mapped to that room in irc.yaml,
Alice invites the IRC bot and irc-bridge is restarted. Then Telegram, IRC and Matrix users talk, with replies
and edits; every message must appear exactly once on each other side and never come back to its own side.
Last, each process is SIGKILLed and started again in turn while the others keep talking: nothing lost,
nothing doubled.
"""

import asyncio
import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib

import pytest
import yaml
from nio import AsyncClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import Stack, link_irc, link_telegram, wait  # noqa: E402
from ircclient import IrcClient  # noqa: E402  (e2e/irc, on the path through stack.py)
from test_irc_bridge import Sync as IrcTestSync, body, join, send  # noqa: E402

TIMEOUT = float(os.environ.get("E2E_TIMEOUT", "90"))
CHAT = {"id": -100777, "type": "supergroup", "title": "Community"}
ANN = {"id": 7, "is_bot": False, "first_name": "Ann", "last_name": "Lee"}
CHANNEL = "#community"


class Sides:
    """What each side has seen, for exact counts."""

    def __init__(self, stack, alice_sync, portal, bob):
        self.stack, self.sync, self.portal, self.bob = stack, alice_sync, portal, bob
        self.tg_names = {}  # Matrix-side sender -> how the Telegram bot names them

    def fake(self):
        return self.stack.fake

    # Telegram: what the bot posted in the group (the only way anything from Matrix or IRC gets there).
    def telegram(self):
        return [m for m in self.fake().sent(CHAT["id"]) if "text" in m]

    def telegram_texts(self):
        return [m["text"] for m in self.telegram()]

    # IRC: what the relay bot said in the channel, as Bob (an IRC user) saw it.
    def irc_relayed(self):
        return [m["params"][-1] for m in self.bob.privmsgs(CHANNEL, self.stack.irc_nick)]

    # Matrix: the portal's messages as Alice's /sync saw them, each event once.
    def matrix(self):
        return [e for e in self.sync.events.get(self.portal, []) if e["type"] == "m.room.message"]

    def matrix_bodies(self, sender=None):
        return [body(e) for e in self.matrix() if sender is None or e["sender"] == sender]

    async def matrix_wait(self, predicate, what):
        _, event = await self.sync.wait_for(lambda r, e: r == self.portal and predicate(e), what)
        return event


class Sync(IrcTestSync):
    """e2e/irc's /sync follower, with a timeline limit above anything the test says between two syncs,
    so that no timeline comes back `limited` (with a gap) and every event is counted."""

    async def sync(self):
        first = self.since is None
        resp = await self.client.sync(timeout=300, since=self.since,
                                      sync_filter={"room": {"timeline": {"limit": 400}}})
        self.since = resp.next_batch
        for rooms in (resp.rooms.join, resp.rooms.leave):
            for room_id, room in rooms.items():
                assert first or not room.timeline.limited, f"{room_id}: a gap in /sync"
                for event in room.timeline.events:
                    if event.event_id not in self.seen:
                        self.seen.add(event.event_id)
                        self.events.setdefault(room_id, []).append(event.source)
        self.invites.update(resp.rooms.invite.keys())


def ann_says(stack, text, **extra):
    return stack.fake.update({"message": {"chat": CHAT, "from": ANN, "text": text, **extra}})["message_id"]


async def link_irc_channel(stack, alice, portal, bob):
    await link_irc(stack, alice, {CHANNEL: portal})
    bob.wait(lambda m: m["command"] == "JOIN" and m["nick"] == stack.irc_nick
             and m["params"][0].lower() == CHANNEL, "the relay bot to join the channel")


async def scenario(stack, bob):
    domain = stack.server_name
    tg_ghost = f"@telegram_{ANN['id']}:{domain}"
    irc_ghost = f"@irc_{stack.net}_bob:{domain}"
    stack.homeserver.register_user("alice", "alice-password")
    alice = AsyncClient(stack.homeserver.base_url, f"@alice:{domain}")
    try:
        await alice.login("alice-password")
        sync = Sync(alice)
        await sync.sync()
        portal = await link_telegram(stack, alice, sync, CHAT, ANN)
        await link_irc_channel(stack, alice, portal, bob)
        sides = Sides(stack, sync, portal, bob)
        await power_in_the_telegram_portal(stack, alice, portal, bob)

        # Telegram -> Matrix -> IRC: the relay bot says it with the Telegram user's displayname.
        hello_tg = ann_says(stack, "hello from telegram")
        await sides.matrix_wait(lambda e: body(e) == "hello from telegram" and e["sender"] == tg_ghost, "Ann in Matrix")
        wait(lambda: "<Ann Lee> hello from telegram" in sides.irc_relayed(), "Ann on IRC")

        # IRC -> Matrix -> Telegram: the bot posts it with the IRC nick.
        bob.say(CHANNEL, "hello from irc")
        hello_irc = await sides.matrix_wait(lambda e: body(e) == "hello from irc" and e["sender"] == irc_ghost,
                                            "Bob in Matrix")
        relayed_bob = wait(lambda: [m for m in sides.telegram() if m["text"].endswith(": hello from irc")],
                           "Bob in Telegram")[0]
        bob_name = relayed_bob["text"].split(": ")[0]
        assert "bob" in bob_name, relayed_bob

        # A Matrix user reaches both.
        await send(alice, portal, {"msgtype": "m.text", "body": "hello from matrix"})
        wait(lambda: "alice: hello from matrix" in sides.telegram_texts(), "Alice in Telegram")
        wait(lambda: "<alice> hello from matrix" in sides.irc_relayed(), "Alice on IRC")

        # Replies. In Telegram, Ann answers the bot's copy of Bob's line: a Matrix reply to Bob's event, quoted on IRC.
        ann_says(stack, "answer to bob", reply_to_message=relayed_bob)
        reply = await sides.matrix_wait(lambda e: body(e) == "answer to bob", "Ann's reply in Matrix")
        assert reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == hello_irc["event_id"], reply
        wait(lambda: [t for t in sides.irc_relayed() if t.startswith("<Ann Lee> ")
                      and '"hello from irc"' in t and t.endswith("answer to bob")], "Ann's reply on IRC, quoted")
        # In Matrix, Alice answers Ann: a Telegram reply to Ann's message, quoted on IRC.
        _, hello_tg_event = await sync.wait_for(lambda r, e: r == portal and body(e) == "hello from telegram", "Ann")
        await send(alice, portal, {"msgtype": "m.text", "body": "answer to ann",
                                   "m.relates_to": {"m.in_reply_to": {"event_id": hello_tg_event["event_id"]}}})
        answered = wait(lambda: [m for m in sides.telegram() if m["text"] == "alice: answer to ann"], "in Telegram")[0]
        assert answered["reply_to_message"]["message_id"] == hello_tg, answered
        wait(lambda: [t for t in sides.irc_relayed() if t.startswith("<alice> ")
                      and '"hello from telegram"' in t and t.endswith("answer to ann")], "Alice's reply on IRC")

        # Edits. Alice's edit is an edit in Telegram and a correction on IRC.
        typo = await send(alice, portal, {"msgtype": "m.text", "body": "helo all"})
        sent_typo = wait(lambda: [m for m in sides.telegram() if m["text"] == "alice: helo all"], "the typo")[0]
        wait(lambda: "<alice> helo all" in sides.irc_relayed(), "the typo on IRC")
        await send(alice, portal, {"msgtype": "m.text", "body": "* hello all",
                                   "m.new_content": {"msgtype": "m.text", "body": "hello all"},
                                   "m.relates_to": {"rel_type": "m.replace", "event_id": typo}})
        wait(lambda: [m for m in sides.telegram() if m["message_id"] == sent_typo["message_id"]
                      and m["text"] == "alice: hello all"], "the edit in Telegram")
        wait(lambda: [t for t in sides.irc_relayed() if t.startswith("<alice> ") and t.endswith("hello all")
                      and "helo" not in t], "the correction on IRC")
        # Ann's edit in Telegram is an edit in Matrix and a correction on IRC.
        ann_typo = ann_says(stack, "gud morning")
        wait(lambda: "<Ann Lee> gud morning" in sides.irc_relayed(), "Ann's typo on IRC")
        stack.fake.update({"edited_message": {"message_id": ann_typo, "chat": CHAT, "from": ANN,
                                              "date": int(time.time()), "edit_date": int(time.time()),
                                              "text": "good morning"}})
        await sides.matrix_wait(lambda e: e["content"].get("m.new_content", {}).get("body") == "good morning",
                                "Ann's edit in Matrix")
        wait(lambda: [t for t in sides.irc_relayed() if t.startswith("<Ann Lee> ") and t.endswith("good morning")
                      and "gud" not in t], "Ann's correction on IRC")

        await media_on_every_side(stack, alice, sides, bob_name)

        # Restart each process in turn (SIGKILL) while the others keep talking.
        expected = {"tg": ["hello from telegram", "answer to bob", "gud morning"],
                    "irc": ["hello from irc"],
                    "matrix": ["hello from matrix", "answer to ann"]}
        n = 0
        for process in [stack.homeserver, stack.telegram, stack.irc]:
            process.kill()
            for phase in ("down", "back"):
                for _ in range(2):
                    n += 1
                    tg, irc, mx = (f"{side} {n:02d} while {process.name} {phase}" for side in ("tg", "irc", "mx"))
                    ann_says(stack, tg)
                    expected["tg"].append(tg)
                    bob.say(CHANNEL, irc)
                    expected["irc"].append(irc)
                    if process is not stack.homeserver or phase == "back":
                        await send(alice, portal, {"msgtype": "m.text", "body": mx})
                        expected["matrix"].append(mx)
                    time.sleep(0.3)
                if phase == "down":
                    process.start()
            # Everything said so far arrives on every other side before the next process goes down.
            await everything_arrived(sides, expected, bob_name, f"after the {process.name} restart")

        # Once more with nothing going on: nothing may come twice (a late redelivery, a replay).
        await sync.settle(5)
        check_exactly_once(sides, expected, bob_name, tg_ghost, irc_ghost, alice.user_id)
        print(f"exactly once on each side: {len(expected['tg'])} from Telegram, {len(expected['irc'])} from IRC, "
              f"{len(expected['matrix'])} from Matrix; Telegram saw {len(sides.telegram())} bot posts, IRC "
              f"{len(sides.irc_relayed())} relay lines, Matrix {len(sides.matrix())} messages")
    finally:
        await alice.close()


async def wait_state(client, room, event_type, predicate, what):
    """Polls a state event until `predicate(content)` holds; returns the content."""
    deadline = time.time() + TIMEOUT
    content = None
    while time.time() < deadline:
        resp = await client.room_get_state_event(room, event_type)
        content = getattr(resp, "content", None)
        if content is not None and predicate(content):
            return content
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last {event_type}: {content}")


async def power_in_the_telegram_portal(stack, alice, portal, bob):
    """The portal was made by the Telegram bot, whose config (examples/unified/telegram.yaml,
    bridge.portal_power_levels) gives the IRC bot power in its portals: so IRC ops and voice are
    mirrored there. Bob was first in the channel, so its op (seen in NAMES when the relay bot
    joined); he voices Carol, then takes it back."""
    domain = stack.server_name
    users = lambda c: c.get("users", {})  # noqa: E731
    ircbot, telegrambot = f"@ircbot:{domain}", f"@telegrambot:{domain}"
    bob_ghost, carol_ghost = f"@irc_{stack.net}_bob:{domain}", f"@irc_{stack.net}_carol:{domain}"
    levels = await wait_state(alice, portal, "m.room.power_levels", lambda c: users(c).get(ircbot) == 100,
                              "the IRC bot's power in the Telegram portal")
    assert users(levels).get(telegrambot) == 100, levels
    await wait_state(alice, portal, "m.room.power_levels", lambda c: users(c).get(bob_ghost) == 50,
                     "Bob's op as power level 50")
    carol = IrcClient(stack.ircd.port, "carol")
    try:
        carol.send(f"JOIN {CHANNEL}")
        carol.wait(lambda m: m["command"] == "366", "Carol's join")
        bob.send(f"MODE {CHANNEL} +v carol")
        await wait_state(alice, portal, "m.room.power_levels", lambda c: users(c).get(carol_ghost) == 10,
                         "Carol's voice as power level 10")
        bob.send(f"MODE {CHANNEL} -v carol")
        await wait_state(alice, portal, "m.room.power_levels", lambda c: carol_ghost not in users(c),
                         "Carol's voice taken back")
    finally:
        carol.close()
    # The IRC bridge was refused nothing in the portal (before this fix: 403 on every op/voice change).
    refused = [line for name in os.listdir(os.path.join(stack.dir, "logs")) if name.startswith("irc-bridge")
               for line in open(os.path.join(stack.dir, "logs", name)) if "IRC event not bridged" in line]
    assert not refused, refused


def png(width, height, seed):
    """A small valid PNG (RGB noise, so a few KiB), different for each seed."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    noise = random.Random(seed)
    rows = b"".join(b"\x00" + noise.randbytes(width * 3) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def kib(data):
    """A size as the IRC bridge writes it (between 1 KiB and 1 MiB)."""
    assert 1024 <= len(data) < 1 << 20, len(data)
    return f"{len(data) / 1024:.1f} KiB"


def download(url):
    """What an IRC user gets from a link the relay bot posted: no Matrix account, no token."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read()
    except urllib.error.HTTPError as e:
        raise AssertionError(f"GET {url}: {e.code} {e.read()!r}") from e


def telegram_file(stack, data, kind, file_name, mime):
    """A file in fake-bot-api's store, as a Telegram client would have uploaded it."""
    req = urllib.request.Request(f"{stack.fake.url}/_fake/files?kind={kind}&file_name={file_name}"
                                 f"&mime_type={mime}", data=data, method="POST", headers={"Content-Type": mime})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


async def media_on_every_side(stack, alice, sides, bob_name):
    """Media, degraded for each side: Telegram photos and files are Matrix media and, on IRC, a line with
    the name, size and a link anyone can download (the IRC bridge's signed link: the homeserver requires
    authenticated media); Matrix media are Telegram photos/documents and the same
    IRC line; IRC has only text, so a link from IRC is a link in Telegram and Matrix. Nothing comes back
    to the side it came from."""
    domain = stack.server_name
    tg_ghost = f"@telegram_{ANN['id']}:{domain}"
    link = lambda text: text.rsplit(" ", 1)[-1]  # noqa: E731

    # Telegram photo with a caption -> Matrix m.image (the bytes copied) -> IRC: caption, name, size, link.
    photo_bytes = png(40, 30, 3)
    photo = telegram_file(stack, photo_bytes, "photos", "photo.jpg", "image/jpeg")
    size = {"file_id": photo["file_id"], "file_unique_id": photo["file_unique_id"], "width": 40, "height": 30,
            "file_size": len(photo_bytes)}
    photo_id = stack.fake.update({"message": {"chat": CHAT, "from": ANN, "photo": [size], "caption": "our cat"}})[
        "message_id"]
    image = await sides.matrix_wait(lambda e: e["content"].get("msgtype") == "m.image" and e["sender"] == tg_ghost,
                                    "Ann's photo in Matrix")
    assert image["content"]["body"] == "our cat", image
    assert image["content"]["info"]["w"] == 40 and image["content"]["info"]["h"] == 30, image
    on_irc = wait(lambda: [t for t in sides.irc_relayed() if t.startswith("<Ann Lee> our cat — photo.jpg (")],
                  "Ann's photo on IRC")
    assert len(on_irc) == 1, on_irc
    assert f"photo.jpg ({kib(photo_bytes)}) http" in on_irc[0], on_irc
    assert download(link(on_irc[0])) == photo_bytes, "the IRC link serves the photo Ann sent"

    # Telegram document -> Matrix m.file -> IRC link.
    pdf = b"%PDF-1.4\n" + os.urandom(3000) + b"\n%%EOF\n"
    document = telegram_file(stack, pdf, "documents", "minutes.pdf", "application/pdf")
    stack.fake.update({"message": {"chat": CHAT, "from": ANN, "document": {
        "file_id": document["file_id"], "file_unique_id": document["file_unique_id"], "file_name": "minutes.pdf",
        "mime_type": "application/pdf", "file_size": len(pdf)}}})
    file_event = await sides.matrix_wait(lambda e: e["content"].get("msgtype") == "m.file"
                                         and e["sender"] == tg_ghost, "Ann's file in Matrix")
    assert file_event["content"]["body"] == "minutes.pdf", file_event
    assert file_event["content"]["info"]["mimetype"] == "application/pdf", file_event
    on_irc = wait(lambda: [t for t in sides.irc_relayed() if t.startswith(f"<Ann Lee> minutes.pdf ({kib(pdf)}) ")],
                  "Ann's file on IRC")
    assert download(link(on_irc[0])) == pdf

    # Matrix image and file -> a Telegram photo and document captioned with the sender; IRC links.
    cat = png(64, 48, 7)
    resp, _ = await alice.upload(io.BytesIO(cat), content_type="image/png", filename="cat.png", filesize=len(cat))
    await send(alice, sides.portal, {"msgtype": "m.image", "body": "cat.png", "url": resp.content_uri,
                                     "info": {"mimetype": "image/png", "size": len(cat), "w": 64, "h": 48}})
    sent_photo = wait(lambda: [m for m in sides.fake().sent(CHAT["id"]) if "photo" in m], "Alice's image in Telegram")
    assert len(sent_photo) == 1 and sent_photo[0]["caption"] == "alice: cat.png", sent_photo
    on_irc = wait(lambda: [t for t in sides.irc_relayed() if t.startswith("<alice> cat.png (")], "Alice's image on IRC")
    assert download(link(on_irc[0])) == cat
    notes = b"line one\nline two\n"
    resp, _ = await alice.upload(io.BytesIO(notes), content_type="text/plain", filename="notes.txt",
                                 filesize=len(notes))
    await send(alice, sides.portal, {"msgtype": "m.file", "body": "the notes", "filename": "notes.txt",
                                     "url": resp.content_uri, "info": {"mimetype": "text/plain", "size": len(notes)}})
    sent_doc = wait(lambda: [m for m in sides.fake().sent(CHAT["id"]) if "document" in m], "Alice's file in Telegram")
    assert len(sent_doc) == 1, sent_doc
    assert sent_doc[0]["document"]["file_name"] == "notes.txt" and sent_doc[0]["caption"] == "alice: the notes"
    on_irc = wait(lambda: [t for t in sides.irc_relayed() if t.startswith("<alice> the notes — notes.txt (")],
                  "Alice's file on IRC")
    assert download(link(on_irc[0])) == notes
    # The homeserver requires authenticated media: the links are the IRC bridge's, signed; changed, refused.
    assert link(on_irc[0]).startswith(f"http://127.0.0.1:{stack.irc_port}/_irc/media/"), on_irc
    assert link(on_irc[0]).endswith("/notes.txt"), on_irc
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(link(on_irc[0]).replace("/notes.txt", "/notes.html"), timeout=10)
    assert refused.value.code == 403, refused.value

    # IRC has no media: a link is text, and stays a link.
    url = "https://example.org/pictures/sunset.jpg"
    sides.bob.say(CHANNEL, f"look: {url}")
    await sides.matrix_wait(lambda e: body(e) == f"look: {url}", "Bob's link in Matrix")
    wait(lambda: f"{bob_name}: look: {url}" in sides.telegram_texts(), "Bob's link in Telegram")

    # Nothing went back where it came from: the bot posted no photo or file of Ann's, the relay bot no line
    # of Bob's, and each side got each medium once.
    await sides.sync.settle(2)
    posted = sides.fake().sent(CHAT["id"])
    assert len([m for m in posted if "photo" in m]) == 1 and len([m for m in posted if "document" in m]) == 1, posted
    assert not [m for m in posted if m.get("reply_to_message", {}).get("message_id") == photo_id], posted
    assert not [t for t in sides.irc_relayed() if url in t], "Bob's link came back to IRC"
    images = [e for e in sides.matrix() if e["content"].get("msgtype") in ("m.image", "m.file")]
    assert len(images) == 4, [(e["sender"], body(e)) for e in images]
    relayed = [t for t in sides.irc_relayed() if "/_irc/media/" in t]
    assert len(relayed) == 4, relayed
    print("media on IRC:", *relayed, "media in Telegram:", *[{k: m[k] for k in ("caption", "photo", "document")
                                                               if k in m} for m in posted if "caption" in m], sep="\n  ")


def missing(sides, expected, bob_name, matrix_bodies):
    tg_texts, irc_texts = sides.telegram_texts(), sides.irc_relayed()
    gaps = []
    for text in expected["tg"]:
        if text not in matrix_bodies:
            gaps.append(("telegram->matrix", text))
        if not any(t.startswith("<Ann Lee> ") and t.endswith(text) for t in irc_texts):
            gaps.append(("telegram->irc", text))
    for text in expected["irc"]:
        if text not in matrix_bodies:
            gaps.append(("irc->matrix", text))
        if f"{bob_name}: {text}" not in tg_texts:
            gaps.append(("irc->telegram", text))
    for text in expected["matrix"]:
        if f"alice: {text}" not in tg_texts:
            gaps.append(("matrix->telegram", text))
        if not any(t.startswith("<alice> ") and t.endswith(text) for t in irc_texts):
            gaps.append(("matrix->irc", text))
    return gaps


async def everything_arrived(sides, expected, bob_name, when):
    deadline = time.time() + TIMEOUT
    while True:
        gaps = missing(sides, expected, bob_name, sides.matrix_bodies())
        if not gaps:
            return
        if time.time() > deadline:
            raise AssertionError(f"{when}: not arrived: {gaps}")
        await sides.sync.sync()


def check_exactly_once(sides, expected, bob_name, tg_ghost, irc_ghost, alice_id):
    tg_texts, irc_texts = sides.telegram_texts(), sides.irc_relayed()
    from_tg, from_irc, from_mx = (sides.matrix_bodies(s) for s in (tg_ghost, irc_ghost, alice_id))
    problems = []

    def once(where, seen, wanted):
        count = seen.count(wanted) if isinstance(wanted, str) else len([t for t in seen if wanted(t)])
        if count != 1:
            problems.append((where, wanted if isinstance(wanted, str) else wanted.__doc__, count))

    for text in expected["tg"]:
        once("matrix", from_tg, text)
        irc_line = lambda t, text=text: t.startswith("<Ann Lee> ") and t.endswith(text)  # noqa: E731
        irc_line.__doc__ = text
        once("irc", irc_texts, irc_line)
        # Never echoed back to Telegram.
        if [t for t in tg_texts if t.endswith(text)]:
            problems.append(("echoed to telegram", text))
    for text in expected["irc"]:
        once("matrix", from_irc, text)
        once("telegram", tg_texts, f"{bob_name}: {text}")
        if [t for t in irc_texts if t.endswith(text)]:
            problems.append(("echoed to irc", text))
    for text in expected["matrix"]:
        once("matrix", from_mx, text)
        once("telegram", tg_texts, f"alice: {text}")
        irc_line = lambda t, text=text: t.startswith("<alice> ") and t.endswith(text)  # noqa: E731
        irc_line.__doc__ = text
        once("irc", irc_texts, irc_line)
    # No ghost of one bridge is relayed back as a ghost of the other (a loop would make one).
    strangers = [e["sender"] for e in sides.matrix() if e["sender"] not in (tg_ghost, irc_ghost, alice_id)
                 and not e["sender"].startswith(("@telegrambot:", "@ircbot:"))]
    if strangers:
        problems.append(("unexpected senders in the room", sorted(set(strangers))))
    assert not problems, problems


def test_unified_chat():
    with tempfile.TemporaryDirectory(prefix="unified-e2e-") as workdir:
        stack = Stack(workdir)
        bob = None
        try:
            stack.start()
            # Bob is in the channel first, so he is its op.
            bob = IrcClient(stack.ircd.port, "bob")
            bob.send(f"JOIN {CHANNEL}")
            bob.wait(lambda m: m["command"] == "366" and m["params"][1].lower() == CHANNEL, "Bob's join")
            asyncio.run(scenario(stack, bob))
        finally:
            if bob:
                bob.close()
            stack.stop()
            keep = os.environ.get("E2E_KEEP_LOGS")
            if keep:
                subprocess.run(["cp", "-r", workdir, keep], check=False)


def test_power_is_given_when_the_irc_bot_is_invited_into_an_older_portal():
    """A portal the Telegram bot made before `bridge.portal_power_levels` named the IRC bot: the IRC bot
    has no power there until it is invited, when the Telegram bridge gives it its level; from then on
    IRC voice is mirrored."""
    with tempfile.TemporaryDirectory(prefix="unified-e2e-") as workdir:
        stack = Stack(workdir)
        bob = carol = None
        try:
            stack.start()
            bob = IrcClient(stack.ircd.port, "bob")
            bob.send(f"JOIN {CHANNEL}")
            bob.wait(lambda m: m["command"] == "366" and m["params"][1].lower() == CHANNEL, "Bob's join")
            carol = IrcClient(stack.ircd.port, "carol")
            carol.send(f"JOIN {CHANNEL}")
            carol.wait(lambda m: m["command"] == "366", "Carol's join")
            asyncio.run(older_portal(stack, bob))
        finally:
            for client in (bob, carol):
                if client:
                    client.close()
            stack.stop()


def set_telegram_power_levels(stack, levels):
    """Restarts telegram-bridge with `bridge.portal_power_levels` set to `levels` (None: removed)."""
    path = os.path.join(stack.dir, "telegram.yaml")
    with open(path) as f:
        config = yaml.safe_load(f)
    if levels is None:
        config["bridge"].pop("portal_power_levels", None)
    else:
        config["bridge"]["portal_power_levels"] = levels
    stack.telegram.stop()
    stack.dump("telegram.yaml", config)
    stack.telegram.start()


async def older_portal(stack, bob):
    domain = stack.server_name
    ircbot, carol_ghost = f"@ircbot:{domain}", f"@irc_{stack.net}_carol:{domain}"
    users = lambda c: c.get("users", {})  # noqa: E731
    stack.homeserver.register_user("alice", "alice-password")
    alice = AsyncClient(stack.homeserver.base_url, f"@alice:{domain}")
    try:
        await alice.login("alice-password")
        sync = Sync(alice)
        await sync.sync()
        set_telegram_power_levels(stack, None)
        portal = await link_telegram(stack, alice, sync, CHAT, ANN)
        levels = await wait_state(alice, portal, "m.room.power_levels", lambda c: True, "the power levels")
        assert ircbot not in users(levels), levels
        set_telegram_power_levels(stack, {ircbot: 100})
        await link_irc_channel(stack, alice, portal, bob)
        await wait_state(alice, portal, "m.room.power_levels", lambda c: users(c).get(ircbot) == 100,
                         "the IRC bot's power, given on its invite")
        bob.send(f"MODE {CHANNEL} +v carol")
        await wait_state(alice, portal, "m.room.power_levels", lambda c: users(c).get(carol_ghost) == 10,
                         "Carol's voice as power level 10")
    finally:
        await alice.close()


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-x", "-q"]))
