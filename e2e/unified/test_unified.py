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
import os
import subprocess
import sys
import tempfile
import time

import pytest
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


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-x", "-q"]))
