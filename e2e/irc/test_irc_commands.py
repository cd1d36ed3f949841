"""End to end, irc-bridge's own commands and deleted messages, between a real InspIRCd and a real homeserver
(see test_irc_bridge.py for the set-up and the helpers):

- `nick`: Alice changes her IRC nick (IRC sees the NICK); a nick someone has, and a bad nick, are refused
  with a clear answer and change nothing; the chosen nick is hers again after a bridge restart;
- `whois`, `join` (the channel's room is made and Alice invited), `irc` (her connection);
- a Matrix redaction where the server does not offer `draft/message-redaction` (Debian's InspIRCd 3):
  no REDACT is sent (the server would answer "Unknown command"), the room is told once that IRC keeps it.
- Matrix users joining a portal get their connections at once, not one after the other.
"""

import asyncio
import time

from nio import AsyncClient
from test_irc_bridge import NET, body, join, send, Sync
from test_irc_more import run_with


def notice_from_bot(domain, room, text):
    return lambda r, e: (r == room and e["sender"] == f"@ircbot:{domain}" and e["content"].get("msgtype") == "m.notice"
                         and text in (body(e) or ""))


async def command(alice, sync, domain, room, line, expect):
    """Sends `!bridge <line>` in the portal; returns the bot's answer containing `expect`."""
    await send(alice, room, {"msgtype": "m.text", "body": f"!bridge {line}"})
    _, event = await sync.wait_for(notice_from_bot(domain, room, expect), f"the answer to {line!r}")
    return body(event)


async def commands_and_redactions(homeserver, bridge, ircd, holder):
    bob = holder["bob"]
    domain = homeserver.server_name
    alice = AsyncClient(homeserver.base_url, f"@alice:{domain}")
    others = []
    try:
        await alice.login("alice-password")
        sync = Sync(alice)
        await sync.sync()
        portal = await join(alice, f"#static:{domain}")
        await send(alice, portal, {"msgtype": "m.text", "body": "hello as alice[m]"})
        bob.wait(lambda m: m["nick"] == "alice[m]" and m["params"] == ["#static", "hello as alice[m]"],
                 "Alice's first line")

        # nick: changed on IRC at once.
        answer = await command(alice, sync, domain, portal, "nick alicia", "You are alicia")
        assert "alicia" in answer
        bob.wait(lambda m: m["command"] == "NICK" and m["nick"] == "alice[m]" and m["params"] == ["alicia"],
                 "Alice's NICK on IRC")
        await send(alice, portal, {"msgtype": "m.text", "body": "now as alicia"})
        bob.wait(lambda m: m["nick"] == "alicia" and m["params"] == ["#static", "now as alicia"], "her line as alicia")

        # A taken nick and a bad one: refused, nothing changes.
        await command(alice, sync, domain, portal, "nick ircbob", "ircbob is taken")
        await command(alice, sync, domain, portal, "nick 1bad", "not a valid IRC nick")
        await command(alice, sync, domain, portal, "nick relaybot", "the bridge's own nick")
        await command(alice, sync, domain, portal, "nick", "Usage: nick")
        assert not bob.seen(lambda m: m["command"] == "NICK" and m["nick"] == "alicia"), "no further NICK"

        # whois and irc.
        answer = await command(alice, sync, domain, portal, "whois ircbob", "ircbob is ircbob@")
        assert "#static" in answer, answer
        await command(alice, sync, domain, portal, "whois nobody_here", "not on IRC now")
        answer = await command(alice, sync, domain, portal, "irc", f"{NET}: connected as alicia")
        assert "#static" in answer, answer

        # join: the channel's room is made, Alice invited; what is said there arrives.
        bob.send("JOIN #fresh")
        answer = await command(alice, sync, domain, portal, "join #fresh", "you are invited")
        invited = await sync.wait_invite("the invite to #fresh's room")
        assert invited in answer, (invited, answer)
        bob.wait(lambda m: m["command"] == "JOIN" and m["nick"] == "relaybot" and m["params"][0] == "#fresh",
                 "the relay bot in #fresh")
        fresh = await join(alice, invited)
        bob.say("#fresh", "fresh words")
        await sync.wait_for(lambda r, e: r == fresh and body(e) == "fresh words", "a line from #fresh")
        await command(alice, sync, domain, portal, "join nochannel", "is not an IRC channel")

        # A redaction where the server does not offer draft/message-redaction: nothing goes to IRC, the
        # room is told, once.
        doomed = await send(alice, portal, {"msgtype": "m.text", "body": "regrettable words"})
        bob.wait(lambda m: m["nick"] == "alicia" and m["params"] == ["#static", "regrettable words"], "the line")
        await alice.room_redact(portal, doomed, reason="oops")
        await sync.wait_for(notice_from_bot(domain, portal, "cannot delete messages"), "the no-redaction notice")
        doomed2 = await send(alice, portal, {"msgtype": "m.text", "body": "more regrets"})
        bob.wait(lambda m: m["nick"] == "alicia" and m["params"] == ["#static", "more regrets"], "the second line")
        await alice.room_redact(portal, doomed2)
        await send(alice, portal, {"msgtype": "m.text", "body": "after the redactions"})
        bob.wait(lambda m: m["nick"] == "alicia" and m["params"] == ["#static", "after the redactions"], "next line")
        await sync.settle(1.5)
        told = [e for e in sync.events[portal] if "cannot delete messages" in (body(e) or "")]
        assert len(told) == 1, told
        refused = [e for e in sync.events[portal] if "refused" in (body(e) or "")]
        assert not refused, refused
        assert not bob.seen(lambda m: m["command"] == "REDACT")

        # The chosen nick outlives a restart.
        bridge.stop()
        bridge.start()
        await send(alice, portal, {"msgtype": "m.text", "body": "back as alicia"})
        bob.wait(lambda m: m["nick"] == "alicia" and m["params"] == ["#static", "back as alicia"],
                 "her line as alicia after a restart")

        # Six more Matrix users join at once: their connections come up together, not one by one
        # (InspIRCd takes about a second to register each, so one by one takes 6 s or more).
        names = [f"user{i}" for i in range(6)]
        for name in names:
            client = AsyncClient(homeserver.base_url, f"@{name}:{domain}")
            await client.login(f"{name}-password")
            others.append(client)
        start = time.monotonic()
        await asyncio.gather(*(join(client, portal) for client in others))
        joined = set()
        deadline = time.monotonic() + 30
        while len(joined) < len(names):
            assert time.monotonic() < deadline, f"only {joined} joined #static"
            for m in bob.seen(lambda m: m["command"] == "JOIN" and m["params"][0] == "#static"):
                if (m["nick"] or "").startswith("user"):
                    joined.add(m["nick"])
            await asyncio.sleep(0.05)
        took = time.monotonic() - start
        print(f"{len(names)} Matrix users joined; their connections were in #static {took:.2f} s later")
        assert took < 5, f"{len(names)} connections took {took:.1f} s"
    finally:
        for client in others:
            await client.close()
        await alice.close()


def test_commands_and_redactions():
    run_with({}, commands_and_redactions, users=("alice",) + tuple(f"user{i}" for i in range(6)))
