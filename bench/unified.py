"""Resource budget of the unified stack: homeserver + telegram-bridge + irc-bridge, each a separate
process configured from examples/unified/ (the same launcher as e2e/unified/), with a 50-user community in
20 rooms, every room the portal of a Telegram group (fake-bot-api) and an IRC channel (a real InspIRCd).

    python3 bench/unified.py                 # release binaries (builds them); --profile debug to use those

Community: 20 Matrix users, 15 Telegram users and 15 IRC users (raw IRC connections), all in all 20 rooms.
Traffic: `--rounds` rounds; in each, in every room, 2 Telegram users, 2 IRC users and 2 Matrix users each
send a message (6 x 20 = 120 messages a round, each bridged to the two other sides), then every Matrix user
syncs. Reported: each process's peak RSS (the kernel's VmHWM, high-water mark of the resident set over the
process's life) and its RSS at the end, and the total. fake-bot-api and InspIRCd stand in for Telegram and
the IRC network and are not counted.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "e2e", "unified"))


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for {pid}")


class Matrix:
    """A Matrix user over plain HTTP (many of them; nio would be heavier than the servers measured)."""

    def __init__(self, base, user, password):
        self.base = base
        self.token = self.call("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password})["access_token"]
        self.txn = 0

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"{}")

    def room(self, room_id):
        return urllib.parse.quote(room_id)

    def send(self, room_id, text):
        self.txn += 1
        self.call("PUT", f"/_matrix/client/v3/rooms/{self.room(room_id)}/send/m.room.message/b{self.txn}",
                  {"msgtype": "m.text", "body": text})

    def invite(self, room_id, user_id):
        self.call("POST", f"/_matrix/client/v3/rooms/{self.room(room_id)}/invite", {"user_id": user_id})

    def join(self, room_id):
        self.call("POST", f"/_matrix/client/v3/join/{self.room(room_id)}", {})

    def sync(self):
        flt = urllib.parse.quote(json.dumps({"room": {"timeline": {"limit": 50}}}))
        return self.call("GET", f"/_matrix/client/v3/sync?timeout=0&filter={flt}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--matrix-users", type=int, default=20)
    parser.add_argument("--telegram-users", type=int, default=15)
    parser.add_argument("--irc-users", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=["release", "debug"], default="release")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--keep", help="copy the stack's directory (configs, logs) here")
    args = parser.parse_args()

    os.environ["E2E_PROFILE"] = args.profile
    if not args.no_build:
        cargo = ["cargo", "build", "-p", "homeserver", "-p", "telegram-bridge", "-p", "irc-bridge"]
        subprocess.run(cargo + (["--release"] if args.profile == "release" else []), cwd=REPO, check=True)

    from nio import AsyncClient
    from stack import Stack, link_irc, link_telegram, wait  # puts e2e/irc and e2e/telegram on the path
    from ircclient import IrcClient
    from test_irc_bridge import Sync

    with tempfile.TemporaryDirectory(prefix="unified-bench-") as workdir:
        # The local InspIRCd takes more than the example's 2 lines/s (right for a public network).
        stack = Stack(workdir, rust_log="warn", irc_rate=(50, 50))
        irc_users = []
        peaks = {}
        stop_sampling = threading.Event()

        def sample():
            # VmHWM is per process life; a sampled VmRSS maximum is kept as a cross-check.
            while not stop_sampling.is_set():
                for p in stack.processes():
                    try:
                        peaks[p.name] = max(peaks.get(p.name, 0), status_kb(p.pid(), "VmRSS"))
                    except (OSError, RuntimeError):
                        pass
                time.sleep(0.1)

        try:
            t0 = time.time()
            stack.start()
            threading.Thread(target=sample, daemon=True).start()
            domain = stack.server_name
            chats = [{"id": -1000000 - i, "type": "supergroup", "title": f"Community {i}"} for i in range(args.rooms)]
            tg_users = [{"id": 100 + i, "is_bot": False, "first_name": f"Tg{i}"} for i in range(args.telegram_users)]
            channels = [f"#room{i}" for i in range(args.rooms)]

            # IRC users are in every channel before the bridge maps them.
            for i in range(args.irc_users):
                client = IrcClient(stack.ircd.port, f"irc{i}")
                client.send(f"JOIN {','.join(channels)}")
                irc_users.append(client)
            for client in irc_users:
                client.wait(lambda m: m["command"] == "366" and m["params"][1] == channels[-1], "joins")

            # Matrix users; user0 links every room (README steps), then invites the others.
            names = [f"user{i}" for i in range(args.matrix_users)]
            for name in names:
                stack.homeserver.register_user(name, f"{name}-password")

            async def link_all():
                alice = AsyncClient(stack.homeserver.base_url, f"@{names[0]}:{domain}")
                try:
                    await alice.login(f"{names[0]}-password")
                    sync = Sync(alice)
                    await sync.sync()
                    rooms = []
                    for chat in chats:
                        rooms.append(await link_telegram(stack, alice, sync, chat, tg_users[0]))
                    await link_irc(stack, alice, dict(zip(channels, rooms)))
                    return rooms
                finally:
                    await alice.close()

            rooms = asyncio.run(link_all())
            for client in irc_users[:1]:
                for channel in channels:
                    client.wait(lambda m, c=channel: m["command"] == "JOIN" and m["nick"] == stack.irc_nick
                                and m["params"][0] == c, f"the relay bot in {channel}")
            users = [Matrix(stack.homeserver.base_url, name, f"{name}-password") for name in names]
            for room in rooms:
                for i, user in enumerate(users[1:], 1):
                    users[0].invite(room, f"@{names[i]}:{domain}")
                    user.join(room)
            setup = time.time() - t0
            print(f"set up in {setup:.0f} s: {len(rooms)} rooms linked to Telegram groups and IRC channels, "
                  f"{len(users)} Matrix users in each", flush=True)

            sent = {"telegram": 0, "irc": 0, "matrix": 0}
            t1 = time.time()
            for rnd in range(args.rounds):
                for r, (chat, channel, room) in enumerate(zip(chats, channels, rooms)):
                    for k in range(2):
                        tg = tg_users[(rnd * 2 + k + r) % len(tg_users)]
                        stack.fake.update({"message": {"chat": chat, "from": tg, "text": f"tg r{rnd} {k}"}})
                        sent["telegram"] += 1
                        irc_users[(rnd * 2 + k + r) % len(irc_users)].send(f"PRIVMSG {channel} :irc r{rnd} {k}")
                        sent["irc"] += 1
                        users[(rnd * 2 + k + r) % len(users)].send(room, f"mx r{rnd} {k}")
                        sent["matrix"] += 1
                for user in users:
                    user.sync()

            # Wait for the last round to be through on every side of the last room.
            last = args.rounds - 1
            wait(lambda: len([m for m in stack.fake.sent(chats[-1]["id"]) if m.get("text", "").endswith(
                f"r{last} 1")]) >= 2, "the last messages in Telegram", timeout=300)
            wait(lambda: len([m for m in irc_users[0].privmsgs(channels[-1], stack.irc_nick)
                              if m["params"][-1].endswith(f"r{last} 1")]) >= 2, "the last lines on IRC", timeout=300)
            traffic = time.time() - t1
            for user in users:
                user.sync()
            to_telegram = sum(len([m for m in stack.fake.sent(c["id"]) if ": irc r" in m.get("text", "")
                                   or ": mx r" in m.get("text", "")]) for c in chats)
            to_irc = sum(len([m for m in irc_users[0].privmsgs(c, stack.irc_nick)]) for c in channels)

            stop_sampling.set()
            rows = []
            for p in stack.processes():
                rows.append((p.name, status_kb(p.pid(), "VmHWM") / 1024, peaks.get(p.name, 0) / 1024,
                             status_kb(p.pid(), "VmRSS") / 1024))
            print(f"traffic: {sum(sent.values())} messages sent ({sent}) in {traffic:.0f} s; "
                  f"bot posts in Telegram {to_telegram}, relay lines on IRC {to_irc}")
            print("| process | peak RSS (VmHWM) | sampled peak RSS | RSS at the end |")
            print("| --- | --- | --- | --- |")
            for name, hwm, sampled, end in rows:
                print(f"| {name} | {hwm:.1f} MB | {sampled:.1f} MB | {end:.1f} MB |")
            total = sum(r[1] for r in rows)
            print(f"| total | {total:.1f} MB | {sum(r[2] for r in rows):.1f} MB | {sum(r[3] for r in rows):.1f} MB |")
            print(f"goal: under 100 MB in total: {'met' if total < 100 else 'NOT met'} ({args.profile} build)")
        finally:
            stop_sampling.set()
            for client in irc_users:
                client.close()
            stack.stop()
            if args.keep:
                subprocess.run(["cp", "-r", workdir, args.keep], check=False)


if __name__ == "__main__":
    main()
