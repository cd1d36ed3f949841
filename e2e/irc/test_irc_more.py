"""End to end, more of irc-bridge between a real InspIRCd and a real homeserver (see test_irc_bridge.py
for the set-up and the helpers):

- a channel's topic and its users' op/voice mirrored as the room's topic and power levels;
- the IRC server stopped while a Matrix user keeps talking (her messages accepted, the room told once),
  then started again on the same port: her lines arrive on IRC, in order;
- the puppet connection limit: a second Matrix user goes through the relay bot;
- the idle timeout: an idle Matrix user's connection quits, and the freed place goes to the next one;
- a channel with a key (`channel_keys` in the config) reached by its alias.
"""

import asyncio
import os
import subprocess
import tempfile
import time

from nio import AsyncClient
from test_irc_bridge import NET, IrcBridge, Sync, body, join, launcher, make_static_room, send

from inspircd import InspIRCd
from ircclient import IrcClient

TIMEOUT = float(os.environ.get("E2E_TIMEOUT", "60"))


def member_event(room, user, membership):
    return lambda r, e: (r == room and e["type"] == "m.room.member" and e.get("state_key") == user
                         and e["content"].get("membership") == membership)


async def wait_state(client, room, event_type, predicate, what):
    """Polls a state event until `predicate(content)` holds."""
    deadline = time.time() + TIMEOUT
    content = None
    while time.time() < deadline:
        resp = await client.room_get_state_event(room, event_type)
        content = getattr(resp, "content", None)
        if content is not None and predicate(content):
            return content
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last {event_type}: {content}")


def run_with(network, scenario, users=("alice",)):
    """InspIRCd, a homeserver, Bob (the channel's op) on IRC, then the bridge with `network` config
    overrides; runs `scenario(homeserver, bridge, ircd, bob)`."""
    with tempfile.TemporaryDirectory(prefix="irc-e2e-") as workdir:
        ircd = InspIRCd(workdir).start()
        homeserver = launcher(workdir)
        bridge = IrcBridge(workdir, homeserver, ircd, **network)
        registration = bridge.generate_registration()
        bob = None
        try:
            bob = IrcClient(ircd.port, "ircbob")
            bob.send("JOIN #static")
            bob.wait(lambda m: m["command"] == "366" and m["params"][1] == "#static", "Bob's join")
            homeserver.start([registration])
            asyncio.run(make_static_room(homeserver))
            for user in users[1:]:
                homeserver.register_user(user, f"{user}-password")
            bridge.start()
            holder = {"bob": bob}
            asyncio.run(scenario(homeserver, bridge, ircd, holder))
            bob = holder["bob"]
        finally:
            if bob:
                bob.close()
            bridge.stop()
            homeserver.stop()
            ircd.stop()
            keep = os.environ.get("E2E_KEEP_LOGS")
            if keep:
                subprocess.run(["cp", "-r", workdir, keep], check=False)


async def topic_ops_and_outage(homeserver, bridge, ircd, holder):
    bob = holder["bob"]
    domain = homeserver.server_name
    ghost = lambda nick: f"@irc_{NET}_{nick}:{domain}"  # noqa: E731
    alice = AsyncClient(homeserver.base_url, f"@alice:{domain}")
    carol = None
    try:
        await alice.login("alice-password")
        alice_sync = Sync(alice)
        await alice_sync.sync()
        portal = await join(alice, f"#static:{domain}")
        await send(alice, portal, {"msgtype": "m.text", "body": "first!"})
        bob.wait(lambda m: m["nick"] == "alice[m]" and m["params"] == ["#static", "first!"], "Alice's first line")

        # The topic set on IRC is the room's topic.
        bob.send("TOPIC #static :All about bridges")
        await wait_state(alice, portal, "m.room.topic", lambda c: c.get("topic") == "All about bridges",
                         "the IRC topic in the room")

        # Ops and voice are power levels; the highest mode left decides.
        carol = IrcClient(ircd.port, "carol")
        carol.send("JOIN #static")
        await alice_sync.wait_for(member_event(portal, ghost("carol"), "join"), "Carol's ghost to join")
        users = lambda c: c.get("users", {})  # noqa: E731
        bob.send("MODE #static +o carol")
        await wait_state(alice, portal, "m.room.power_levels", lambda c: users(c).get(ghost("carol")) == 50, "op")
        bob.send("MODE #static +v carol")
        bob.send("MODE #static -o carol")
        await wait_state(alice, portal, "m.room.power_levels", lambda c: users(c).get(ghost("carol")) == 10,
                         "voice left after the op was taken")
        bob.send("MODE #static -v carol")
        await wait_state(alice, portal, "m.room.power_levels", lambda c: ghost("carol") not in users(c),
                         "no level left")
        # Bob was the channel's first user, so its op: seen in NAMES when the bridge joined.
        await wait_state(alice, portal, "m.room.power_levels", lambda c: users(c).get(ghost("ircbob")) == 50,
                         "Bob as op")

        # The IRC server goes away; Alice keeps talking; her messages are accepted.
        carol.close()
        carol = None
        bob.close()
        ircd.stop()
        time.sleep(1.5)
        during = [f"during the outage {i}" for i in range(5)]
        for text in during:
            await send(alice, portal, {"msgtype": "m.text", "body": text})
        # Told once, however many messages wait.
        await alice_sync.wait_for(lambda r, e: r == portal and "unreachable" in (body(e) or ""), "the outage notice")
        await alice_sync.settle(2)
        told = [e for e in alice_sync.events[portal] if "unreachable" in (body(e) or "")]
        assert len(told) == 1, told
        assert told[0]["sender"] == f"@ircbot:{domain}"

        # Back on the same port: Bob returns first; Alice's connection comes back and says it all, in order.
        ircd.start()
        bob = IrcClient(ircd.port, "ircbob")
        holder["bob"] = bob
        bob.send("JOIN #static")
        bob.wait(lambda m: m["nick"] == "alice[m]" and m["params"] == ["#static", during[-1]],
                 "the last message from the outage", timeout=TIMEOUT)
        # Live, or replayed by chanhistory if Alice's connection was back before Bob's join.
        got = [m["params"][1] for m in bob.privmsgs("#static", "alice[m]") if m["params"][1] in during]
        assert got == during, got

        # And the room hears IRC again.
        bob.say("#static", "welcome back")
        await alice_sync.wait_for(lambda r, e: r == portal and body(e) == "welcome back"
                                  and e["sender"] == ghost("ircbob"), "IRC after the outage")
        await alice_sync.settle(1)
        told = [e for e in alice_sync.events[portal] if "unreachable" in (body(e) or "")]
        assert len(told) == 1, told
    finally:
        if carol:
            carol.close()
        await alice.close()


async def puppet_limit_and_idle(homeserver, bridge, ircd, holder):
    bob = holder["bob"]
    domain = homeserver.server_name
    alice = AsyncClient(homeserver.base_url, f"@alice:{domain}")
    dave = AsyncClient(homeserver.base_url, f"@dave:{domain}")
    try:
        await alice.login("alice-password")
        await dave.login("dave-password")
        portal = await join(alice, f"#static:{domain}")
        await send(alice, portal, {"msgtype": "m.text", "body": "alice has the one connection"})
        bob.wait(lambda m: m["nick"] == "alice[m]" and m["params"] == ["#static", "alice has the one connection"],
                 "Alice's line through her own connection")

        # The limit (max_puppets: 1) is reached: Dave speaks through the relay bot.
        await join(dave, portal)
        await send(dave, portal, {"msgtype": "m.text", "body": "dave is relayed"})
        relayed = bob.wait(lambda m: m["command"] == "PRIVMSG" and m["params"][-1] == "<dave> dave is relayed",
                           "Dave's line through the relay bot")
        assert relayed["nick"] == "relaybot"
        assert not bob.seen(lambda m: m["command"] == "JOIN" and (m["nick"] or "").startswith("dave"))

        # Alice says nothing more: her connection quits after the idle timeout (3 s).
        quit_ = bob.wait(lambda m: m["command"] == "QUIT" and m["nick"] == "alice[m]", "Alice's idle quit",
                         timeout=20)
        assert "Idle" in quit_["params"][-1]

        # The freed place goes to Dave.
        await send(dave, portal, {"msgtype": "m.text", "body": "dave on his own"})
        bob.wait(lambda m: m["nick"] == "dave[m]" and m["params"] == ["#static", "dave on his own"],
                 "Dave's line through his own connection")

        # A channel with a key (+k): the bridge joins it with the key from its config.
        bob.send("JOIN #locked")
        bob.send("MODE #locked +k sesame")
        bob.wait(lambda m: m["command"] == "MODE" and m["params"][:2] == ["#locked", "+k"], "the key set")
        locked = await join(alice, f"#irc_{NET}_#locked:{domain}")
        bob.wait(lambda m: m["command"] == "JOIN" and m["nick"] == "relaybot" and m["params"][0] == "#locked",
                 "the relay bot's join with the key")
        bob.say("#locked", "behind a key")
        alice_sync = Sync(alice)
        await alice_sync.wait_for(lambda r, e: r == locked and body(e) == "behind a key", "the keyed channel's line")
    finally:
        await alice.close()
        await dave.close()


def test_topic_ops_and_an_irc_outage():
    run_with({"max_reconnect_delay": 2}, topic_ops_and_outage)


def test_puppet_limit_and_idle_timeout():
    run_with({"max_puppets": 1, "puppet_idle_timeout": 3, "channel_keys": {"#locked": "sesame"}},
             puppet_limit_and_idle, users=("alice", "dave"))
