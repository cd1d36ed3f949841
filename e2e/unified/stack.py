"""The unified stack for tests and benchmarks: our homeserver, telegram-bridge (against fake-bot-api) and
irc-bridge (against a real InspIRCd), each a separate process, configured from `examples/unified/`.

The example configs are used as they are, with only what a test must change: ports (free ones, also in the
IRC bridge's media link URL), the data directory (a temporary one), the homeserver's shared secret and rate limit, and the IRC channel mapping
once the Telegram portal exists. `Stack.start()` generates both registrations with the bridges' own `-g`
and starts everything in the order `examples/unified/run.sh` does.
"""

import os
import re
import secrets
import signal
import subprocess
import sys
import time

import yaml
from nio import RoomCreateResponse, RoomInviteResponse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
EXAMPLE = os.path.join(REPO, "examples", "unified")
sys.path.insert(0, os.path.join(HERE, "..", "echo-bridge"))
sys.path.insert(0, os.path.join(HERE, "..", "irc"))
sys.path.insert(0, os.path.join(HERE, "..", "telegram"))
from homeservers import Homeserver, free_port, stop_process, wait_for_versions  # noqa: E402
from inspircd import InspIRCd  # noqa: E402
from test_irc_bridge import join, send, wait_port  # noqa: E402
from test_telegram_bridge import FakeTelegram  # noqa: E402


def binary(name):
    override = os.environ.get(f"{name.upper().replace('-', '_')}_BIN")
    if override:
        return override
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    path = os.path.join(target, os.environ.get("E2E_PROFILE", "debug"), name)
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is missing: cargo build -p homeserver -p telegram-bridge -p irc-bridge")
    return path


def wait(predicate, what, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def link_telegram(stack, alice, sync, chat, owner):
    """/bridge in the group by its owner, `bridge CODE` by Alice to the Telegram bot (in her management
    room, made the first time): the bot makes the portal room and invites her. Returns the room id."""
    stack.fake.update({"chat_member": {"chat": chat, "from": owner, "date": int(time.time()),
                                       "old_chat_member": {"status": "member", "user": owner},
                                       "new_chat_member": {"status": "creator", "user": owner,
                                                           "is_anonymous": False}}})
    stack.fake.update({"message": {"chat": chat, "from": owner, "text": "/bridge"}})
    # The bot's answer names the command to send: `bridge CODE`.
    answer = wait(lambda: [m for m in stack.fake.sent(chat["id"]) if re.search(r"bridge [A-Z0-9]{6,}",
                                                                               m.get("text", ""))], "the code")[0]
    command, code = re.search(r"(bridge) ([A-Z0-9]{6,})", answer["text"]).groups()
    bot = f"@telegrambot:{stack.server_name}"
    if not getattr(sync, "telegram_dm", None):
        created = await alice.room_create(invite=[bot], is_direct=True)
        assert isinstance(created, RoomCreateResponse), created
        await sync.wait_for(lambda r, e: r == created.room_id and e.get("state_key") == bot
                            and e["content"].get("membership") == "join", "the Telegram bot in Alice's DM")
        sync.telegram_dm = created.room_id
    sync.invites.clear()
    await send(alice, sync.telegram_dm, {"msgtype": "m.text", "body": f"{command} {code}"})
    portal = await sync.wait_invite("the portal invite")
    await join(alice, portal)
    wait(lambda: [m for m in stack.fake.sent(chat["id"]) if "now bridged" in m.get("text", "")],
         "the link confirmation in Telegram")
    return portal


async def link_irc(stack, alice, mapping):
    """The README's IRC step: map each channel to its room in irc.yaml, restart irc-bridge, invite the IRC
    bot to the rooms (it accepts an invite to a room a mapping names, and its relay bot joins the channel)."""
    stack.irc.stop()
    stack.map_channels(mapping)
    stack.irc.start()
    for room in mapping.values():
        invited = await alice.room_invite(room, f"@ircbot:{stack.server_name}")
        assert isinstance(invited, RoomInviteResponse), invited


def load_example(name):
    with open(os.path.join(EXAMPLE, name)) as f:
        return yaml.safe_load(f)


class Process:
    """One process of the stack, run from the stack's directory (as the example configs expect)."""

    def __init__(self, stack, name, args, port, env=None):
        self.stack, self.name, self.args, self.port, self.env = stack, name, args, port, env or {}
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.stack.dir, "logs", f"{self.name}-{self.starts}.log"), "w")
        self.proc = subprocess.Popen(self.args, cwd=self.stack.dir, stdout=log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **self.env))
        self.wait_up()

    def wait_up(self):
        wait_port(self.port, self.proc, self.name)

    def kill(self):
        """SIGKILL, like a crash or the OOM killer: no clean shutdown."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        stop_process(self.proc)

    def pid(self):
        return self.proc.pid


class HomeserverProcess(Process, Homeserver):
    def __init__(self, stack, port):
        Process.__init__(self, stack, "homeserver", [binary("homeserver"), "-c", "homeserver.yaml"], port)
        self.base_url = f"http://127.0.0.1:{port}"

    def wait_up(self):
        wait_for_versions(self.base_url, self.proc, os.path.join(self.stack.dir, "logs"))


class Stack:
    def __init__(self, workdir, irc_network="local", rust_log=None, irc_rate=None):
        self.dir = os.path.join(workdir, "stack")
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.ircd = InspIRCd(workdir)
        self.net = irc_network
        self.hs_port, self.tg_port, self.irc_port = free_port(), free_port(), free_port()
        self.rust_log = rust_log or os.environ.get("RUST_LOG", "info")
        self.irc_rate = irc_rate
        self.fake = None
        self.homeserver = self.telegram = self.irc = None

    # --- configs: the examples, templated for ports and paths --------------------------------------

    def write_configs(self):
        hs = load_example("homeserver.yaml")
        hs["listeners"][0]["port"] = self.hs_port
        hs["registration_shared_secret"] = secrets.token_hex(24)
        # Test clients log in and send faster than people; the bridges' users are exempt anyway.
        hs["rc_message"] = {"per_second": 100, "burst_count": 200}
        hs["rc_login"] = hs["rc_registration"] = {"per_second": 100, "burst_count": 100}
        self.shared_secret = hs["registration_shared_secret"]
        self.server_name = hs["server_name"]
        self.dump("homeserver.yaml", hs)
        # The signing key, made as run.sh makes it.
        subprocess.run([binary("homeserver"), "generate-config", "--server-name", self.server_name,
                        "--config-path", os.path.join(self.dir, "data", "generated.yaml"),
                        "--data-dir", os.path.join(self.dir, "data")], check=True, stdout=subprocess.DEVNULL)
        os.rename(os.path.join(self.dir, "data", f"{self.server_name}.signing.key"),
                  os.path.join(self.dir, "data", "signing.key"))

        tg = load_example("telegram.yaml")
        tg["homeserver"]["address"] = f"http://127.0.0.1:{self.hs_port}"
        tg["appservice"]["address"] = f"http://127.0.0.1:{self.tg_port}"
        tg["appservice"]["port"] = self.tg_port
        tg["telegram"]["api_url"] = self.fake.url
        self.dump("telegram.yaml", tg)

        irc = load_example("irc.yaml")
        irc["homeserver"]["address"] = f"http://127.0.0.1:{self.hs_port}"
        irc["appservice"]["address"] = f"http://127.0.0.1:{self.irc_port}"
        irc["appservice"]["port"] = self.irc_port
        # IRC users reach the bridge's signed media links on its appservice port, as in run.sh.
        irc["irc"]["media_proxy"]["public_url"] = f"http://127.0.0.1:{self.irc_port}"
        net = irc["irc"]["networks"]["local"]
        net["port"] = self.ircd.port
        if self.irc_rate:
            net["messages_per_second"], net["burst"] = self.irc_rate
        if self.net != "local":
            irc["irc"]["networks"] = {self.net: net}
        self.irc_nick = net["nick"]
        self.dump("irc.yaml", irc)

    def dump(self, name, config):
        with open(os.path.join(self.dir, name), "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)

    def map_channels(self, mapping):
        """Sets irc.yaml's static mappings, channel -> room (the README's step; takes a restart)."""
        with open(os.path.join(self.dir, "irc.yaml")) as f:
            irc = yaml.safe_load(f)
        irc["irc"]["networks"][self.net]["channels"] = dict(mapping)
        self.dump("irc.yaml", irc)

    # --- processes ----------------------------------------------------------------------------------

    def start(self):
        self.ircd.start()
        self.fake = FakeTelegram(self.dir)
        self.write_configs()
        env = {"RUST_LOG": self.rust_log}
        for bridge, config, registration in [("telegram-bridge", "telegram.yaml", "telegram-registration.yaml"),
                                             ("irc-bridge", "irc.yaml", "irc-registration.yaml")]:
            subprocess.run([binary(bridge), "-c", config, "-g", "-r", registration], cwd=self.dir, check=True)
        self.homeserver = HomeserverProcess(self, self.hs_port)
        self.homeserver.shared_secret = self.shared_secret
        self.homeserver.server_name = self.server_name
        self.telegram = Process(self, "telegram-bridge", [binary("telegram-bridge"), "-c", "telegram.yaml",
                                                          "-r", "telegram-registration.yaml"], self.tg_port, env)
        self.irc = Process(self, "irc-bridge", [binary("irc-bridge"), "-c", "irc.yaml", "-r", "irc-registration.yaml"],
                           self.irc_port, env)
        self.homeserver.start()
        self.telegram.start()
        self.irc.start()
        return self

    def processes(self):
        return [p for p in (self.homeserver, self.telegram, self.irc) if p]

    def stop(self):
        for process in reversed(self.processes()):
            process.stop()
        if self.fake:
            self.fake.stop()
        self.ircd.stop()

