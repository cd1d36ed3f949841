#!/usr/bin/env python3
"""IRC bridge benchmark: delivery latency both ways, sustained messages/s, and the bridge's memory with
200 ghosts and 50 puppeted Matrix users, between a real InspIRCd (e2e/irc/inspircd.py) and our homeserver.

    python3 bench/irc.py            # builds homeserver and irc-bridge in release first

What runs (all on loopback):
- InspIRCd from Debian with the e2e config (fakelag off, a command rate no client reaches).
- Causeway's homeserver (release, SQLite) and irc-bridge (release, SQLite), the bridge with
  `messages_per_second`/`burst` as given by --rate/--burst (flood control per IRC connection).
- 50 Matrix users join the portal `#irc_bench_#bench:localhost`; each gets its own IRC connection.
- 200 raw IRC clients join #bench afterwards, so the bridge makes 200 ghosts and joins them.
- Latency, IRC -> Matrix: an IRC client says a line, one at a time; the time until a Matrix client
  long-polling /sync sees it. Matrix -> IRC: a Matrix user (rotating over the 50) sends, one at a time;
  the time until an IRC client reads the line. Both include the homeserver.
- Throughput: --burst-messages lines said by 20 IRC clients as fast as they go (first send to last
  arrival in Matrix), then as many sent by the 50 Matrix users from 10 threads (first send to last
  arrival on IRC).
- RSS of the bridge (VmRSS) after setup, after the latency runs and its peak during the throughput runs.

Run it with `python3 -u` (or not: every line is flushed). It says what it does as it goes, and each
result as soon as it has it; every wait is bounded (`--wait`, default 300 s per step) and says every
10 s what it waits for and how far it got, and a dead bridge, InspIRCd or helper thread stops the run
at once with what was being waited for. On a failure the partial results and the kept work directory
(logs) are printed; `--keep` keeps it after a good run too.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "e2e", "irc"))
sys.path.insert(0, os.path.join(REPO, "e2e", "echo-bridge"))
from homeservers import Causeway, free_port, http_json, stop_process  # noqa: E402
from inspircd import InspIRCd  # noqa: E402

NET = "bench"
CHANNEL = "#bench"
SERVER = "localhost"


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:  # the bridge is gone; the waits say so
        pass
    return 0.0


T0 = time.monotonic()


def say(*parts):
    """Progress, flushed at once (the run is long; a cut-off run still shows where it was)."""
    print(f"[{time.monotonic() - T0:7.1f}s]", *parts, flush=True)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# --- Matrix ---------------------------------------------------------------------------------------

class Matrix:
    """A Matrix user over one keep-alive HTTP connection."""

    def __init__(self, base_url, token=None):
        u = urllib.parse.urlparse(base_url)
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.txn = 0

    def request(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt == 2:
                    raise
        answer = json.loads(payload or b"{}")
        if resp.status >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status} {answer}")
        return answer

    def join(self, room):
        return self.request("POST", f"/_matrix/client/v3/join/{urllib.parse.quote(room)}", {})["room_id"]

    def send(self, room_id, text):
        self.txn += 1
        path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/send/m.room.message/b{self.txn}"
        return self.request("PUT", path, {"msgtype": "m.text", "body": text})


class Watcher(threading.Thread):
    """Long-polls /sync and records when each message body was first seen (monotonic time)."""

    FILTER = json.dumps({"room": {"timeline": {"limit": 1000}, "state": {"lazy_load_members": True}},
                         "presence": {"not_types": ["*"]}, "account_data": {"not_types": ["*"]}})

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.arrived = {}
        self.lock = threading.Lock()
        self.stopped = False
        self.since = None
        self.error = None

    def sync_once(self, timeout_ms):
        q = {"timeout": str(timeout_ms), "filter": self.FILTER}
        if self.since:
            q["since"] = self.since
        answer = self.client.request("GET", "/_matrix/client/v3/sync?" + urllib.parse.urlencode(q))
        now = time.monotonic()
        self.since = answer["next_batch"]
        with self.lock:
            for room in answer.get("rooms", {}).get("join", {}).values():
                for event in room.get("timeline", {}).get("events", []):
                    body = event.get("content", {}).get("body")
                    if event.get("type") == "m.room.message" and body and body not in self.arrived:
                        self.arrived[body] = now

    def run(self):
        while not self.stopped:
            try:
                self.sync_once(30000)
            except Exception as e:  # noqa: BLE001 - told to the waits, which stop the run
                if not self.stopped:
                    self.error = f"the /sync watcher failed: {e!r}"
                return

    def count(self, prefix):
        with self.lock:
            return sum(1 for body in self.arrived if body.startswith(prefix))

    def seen(self, body):
        with self.lock:
            return self.arrived.get(body)


# --- IRC ------------------------------------------------------------------------------------------

class IrcCrowd(threading.Thread):
    """Many raw IRC connections on one selector thread; reads everything, answers PINGs, and for
    the sockets marked as observers records when each PRIVMSG text was first read."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.sel = selectors.DefaultSelector()
        self.bufs = {}
        self.registered = set()
        self.joined = set()
        self.observers = set()
        self.arrived = {}
        self.lock = threading.Lock()
        self.socks = {}
        self.error = None
        self.closed = []
        self.notices = []

    def connect(self, nick):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
        s.setblocking(False)
        self.socks[nick] = s
        self.bufs[s] = b""
        self.sel.register(s, selectors.EVENT_READ, nick)
        return s

    def send(self, nick, line):
        s = self.socks[nick]
        data = (line + "\r\n").encode()
        while data:
            try:
                n = s.send(data)
                data = data[n:]
            except BlockingIOError:
                time.sleep(0.001)

    def run(self):
        try:
            self.loop()
        except Exception as e:  # noqa: BLE001 - told to the waits, which stop the run
            self.error = f"the IRC clients' reader failed: {e!r}"

    def loop(self):
        while True:
            for key, _ in self.sel.select(timeout=1):
                s, nick = key.fileobj, key.data
                try:
                    data = s.recv(262144)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(s)
                    with self.lock:
                        self.closed.append(nick)
                    continue
                now = time.monotonic()
                buf = self.bufs[s] + data
                *lines, self.bufs[s] = buf.split(b"\r\n")
                for raw in lines:
                    if raw.startswith(b"PING"):
                        try:
                            self.send(nick, "PONG" + raw[4:].decode(errors="replace"))
                        except OSError:
                            pass
                    elif b" 001 " in raw[:64]:
                        with self.lock:
                            self.registered.add(nick)
                    elif raw.startswith(b"ERROR") or b" 381 " in raw[:64] or b" 491 " in raw[:64]:
                        # ERROR (we are being disconnected), RPL_YOUREOPER, ERR_NOOPERHOST
                        with self.lock:
                            self.notices.append((nick, raw.decode(errors="replace")))
                    elif nick in self.observers and b" PRIVMSG " in raw:
                        text = raw.split(b" :", 1)[-1].decode(errors="replace") if b" :" in raw else ""
                        with self.lock:
                            self.arrived.setdefault(text, now)
                    elif b" 366 " in raw:
                        with self.lock:
                            self.joined.add(nick)

    def seen(self, text):
        with self.lock:
            return self.arrived.get(text)

    def count(self, prefix):
        with self.lock:
            return sum(1 for text in self.arrived if text.startswith(prefix))


class Failed(RuntimeError):
    pass


# Checked by every wait: a dead helper thread or bridge means nothing more will arrive.
HEALTH = []


def wait_until(predicate, what, timeout=120, step=0.01, progress=None):
    """Waits for `predicate` to be true, at most `timeout` s; says every 10 s what it waits for
    (and `progress()`), and stops at once if a helper thread or the bridge died."""
    start = time.monotonic()
    deadline = start + timeout
    next_note = start + 10
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        for check in HEALTH:
            problem = check()
            if problem:
                raise Failed(f"{problem} (while waiting for {what})")
        if now >= deadline:
            extra = f"; {progress()}" if progress else ""
            raise Failed(f"timed out after {timeout} s waiting for {what}{extra}")
        if now >= next_note:
            extra = f": {progress()}" if progress else ""
            say(f"  still waiting for {what} ({now - start:.0f} s){extra}")
            next_note = now + 10
        time.sleep(step)


# --- the run --------------------------------------------------------------------------------------

def build():
    subprocess.run(["cargo", "build", "--release", "-p", "homeserver", "-p", "irc-bridge"], check=True, cwd=REPO)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ghosts", type=int, default=200)
    ap.add_argument("--puppets", type=int, default=50)
    ap.add_argument("--latency-messages", type=int, default=200)
    ap.add_argument("--burst-messages", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=100.0, help="bridge messages_per_second per IRC connection")
    ap.add_argument("--burst", type=int, default=100, help="bridge burst per IRC connection")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs) and print its path")
    ap.add_argument("--wait", type=float, default=300, help="longest wait for any one step, in seconds")
    args = ap.parse_args()
    if not args.no_build:
        build()
    os.environ.setdefault("CAUSEWAY_HOMESERVER_BIN", os.path.join(target_dir(), "release", "homeserver"))
    bridge_bin = os.environ.get("IRC_BRIDGE_BIN") or os.path.join(target_dir(), "release", "irc-bridge")
    say(f"bridge {bridge_bin}; load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
        f"{os.getloadavg()[2]:.2f}")

    work = tempfile.mkdtemp(prefix="irc-bench-")
    results = {}
    try:
        ircd = InspIRCd(work).start()
        hs = Causeway(work)
        bridge_dir = os.path.join(work, "bridge")
        os.makedirs(bridge_dir)
        as_port = free_port()
        config = os.path.join(bridge_dir, "config.yaml")
        registration = os.path.join(bridge_dir, "registration.yaml")
        with open(config, "w") as f:
            yaml.safe_dump({
                "homeserver": {"address": hs.base_url, "domain": SERVER},
                "appservice": {"address": f"http://127.0.0.1:{as_port}", "hostname": "127.0.0.1", "port": as_port,
                               "id": "irc", "bot": {"username": "ircbot", "displayname": "IRC bridge"},
                               "database": f"sqlite:{os.path.join(bridge_dir, 'irc.db')}"},
                "bridge": {"permissions": {SERVER: "user"}},
                "metrics": {"enabled": True},
                "irc": {"networks": {NET: {
                    "host": "127.0.0.1", "port": ircd.port, "tls": False, "nick": "relaybot",
                    "messages_per_second": args.rate, "burst": args.burst, "max_puppets": args.puppets + 10,
                }}},
            }, f)
        subprocess.run([bridge_bin, "-c", config, "-g", "-r", registration], check=True, stdout=subprocess.DEVNULL)
        hs.start([registration])
        bridge_log_path = os.path.join(bridge_dir, "bridge.log")
        bridge_log = open(bridge_log_path, "w")
        bridge = subprocess.Popen([bridge_bin, "-c", config, "-r", registration], stdout=bridge_log,
                                  stderr=subprocess.STDOUT,
                                  env=dict(os.environ, RUST_LOG="warn,irc_bridge::timing=debug", NO_COLOR="1"))
        # The observer reads on its own thread, so its times are not those of a thread busy
        # with 200 other sockets; the GIL is handed over more often than every 5 ms.
        sys.setswitchinterval(0.0005)
        crowd = IrcCrowd(ircd.port)
        crowd.start()
        eyes = IrcCrowd(ircd.port)
        eyes.start()
        HEALTH.append(lambda: bridge.poll() is not None and f"the bridge exited with {bridge.returncode}")
        HEALTH.append(lambda: ircd.proc.poll() is not None and f"InspIRCd exited with {ircd.proc.returncode}")
        HEALTH.append(lambda: crowd.error)
        HEALTH.append(lambda: eyes.error)
        try:
            wait_until(lambda: socket_open(as_port), "the bridge to listen", 30)
            run(args, hs, bridge, crowd, eyes, results, as_port, bridge_log_path)
        finally:
            stop_process(bridge)
            hs.stop()
            ircd.stop()
    except Exception as e:
        say(f"FAILED: {e}")
        say("partial results:", json.dumps(results))
        say(f"logs kept in {work}")
        raise
    if args.keep:
        say(f"logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2), flush=True)
    print_table(args, results)


def socket_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def bridge_metrics(as_port):
    """The bridge's latency histogram (`bridge_event_latency_seconds`): bucket counts, count, sum."""
    raw = urllib.request.urlopen(f"http://127.0.0.1:{as_port}/metrics", timeout=10).read().decode()
    hist = {"buckets": {}}
    for line in raw.splitlines():
        if line.startswith("bridge_event_latency_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            hist["buckets"][bound] = int(float(line.split()[-1]))
        elif line.startswith("bridge_event_latency_seconds_count"):
            hist["count"] = int(float(line.split()[-1]))
        elif line.startswith("bridge_event_latency_seconds_sum"):
            hist["sum"] = float(line.split()[-1])
    return hist


def metrics_delta(before, after):
    """What the bridge measured between two scrapes: how many, the mean, and the share within each bound."""
    n = after["count"] - before["count"]
    if n <= 0:
        return {"n": 0}
    within = {f"<={float(b) * 1000:g}ms": round((after["buckets"][b] - before["buckets"].get(b, 0)) / n, 3)
              for b in after["buckets"] if float(b) <= 0.1}
    return {"n": n, "mean_ms": round((after["sum"] - before["sum"]) / n * 1000, 2), **within}


LOG_MARK = [0]


def mark_log(path):
    """Timing lines after this point are the next phase's."""
    LOG_MARK[0] = os.path.getsize(path)


def bridged_ms(path, what):
    """The bridge's own times (ms) since the mark, from its `irc_bridge::timing` lines `what`."""
    values = []
    with open(path, errors="replace") as f:
        f.seek(LOG_MARK[0])
        for line in f:
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)
            if what in line and " ms=" in line:
                values.append(float(line.split(" ms=")[1].split()[0]))
    return values or [0.0]


def note(results, key, value):
    results[key] = value
    say(f"{key}: {json.dumps(value)}")


def run(args, hs, bridge, crowd, eyes, results, as_port, bridge_log_path):
    note(results, "rss_start_mb", round(rss_mb(bridge.pid), 1))
    t0 = time.monotonic()
    # Matrix users (shared-secret registration gives the token).
    users = []
    for i in range(args.puppets):
        users.append(Matrix(hs.base_url, register(hs, f"m{i:02d}", "pw-bench")))
    say(f"{len(users)} Matrix users registered")
    alias = f"#irc_{NET}_{CHANNEL}:{SERVER}"
    room = users[0].join(alias)
    watcher = Watcher(Matrix(hs.base_url, users[0].token))
    watcher.sync_once(0)
    watcher.start()
    HEALTH.append(lambda: watcher.error)
    # The observer on IRC, then every Matrix user's connection.
    eyes.observers.add("observer")
    eyes.connect("observer")
    wait_until(lambda: "observer" in eyes.registered, "the observer to register")
    eyes.send("observer", f"JOIN {CHANNEL}")
    for user in users[1:]:
        user.join(room)
    say(f"{len(users)} Matrix users joined {room}")
    # Each user says hello: puppets connect on join or on their first line.
    for i, user in enumerate(users):
        user.send(room, f"hello from m{i:02d}")
    wait_until(lambda: all(eyes.seen(f"hello from m{i:02d}") for i in range(args.puppets)),
               "every Matrix user's first line on IRC", args.wait, 0.1,
               lambda: f"{eyes.count('hello from ')} of {args.puppets} seen")
    note(results, "puppets_ready_s", round(time.monotonic() - t0, 1))
    # 200 IRC users join after the portal exists: 200 ghosts join the room.
    t1 = time.monotonic()
    ghosts = [f"g{i:03d}" for i in range(args.ghosts)]
    for nick in ghosts:
        crowd.connect(nick)
    wait_until(lambda: len(crowd.registered) >= args.ghosts, "the IRC users to register", args.wait, 0.1,
               lambda: f"{len(crowd.registered)} of {args.ghosts} registered")
    for nick in ghosts:
        crowd.send(nick, f"JOIN {CHANNEL}")
    members_path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/joined_members"
    counted = [0]

    def ghost_count():
        joined = users[0].request("GET", members_path)["joined"]
        counted[0] = sum(1 for u in joined if u.startswith(f"@irc_{NET}_g"))
        return counted[0]

    wait_until(lambda: ghost_count() >= args.ghosts, f"{args.ghosts} ghosts in the room", args.wait, 0.5,
               lambda: f"{counted[0]} joined")
    note(results, "ghosts_ready_s", round(time.monotonic() - t1, 1))
    time.sleep(2)
    note(results, "rss_ready_mb", round(rss_mb(bridge.pid), 1))

    # Latency, IRC -> Matrix, one at a time. Also when the observer (an IRC client in the
    # channel) got the line: the IRC server's share.
    lat, starts = [], {}
    mark_log(bridge_log_path)
    for i in range(args.latency_messages):
        text = f"irc-lat {i}"
        nick = ghosts[i % len(ghosts)]
        start = time.monotonic()
        starts[text] = start
        crowd.send(nick, f"PRIVMSG {CHANNEL} :{text}")
        arrived = wait_until(lambda: watcher.seen(text), f"{text!r} in Matrix", 30, 0.0005)
        lat.append((arrived - start) * 1000)
    wait_until(lambda: all(eyes.seen(t) for t in starts), "the observer to have every latency line", 30, 0.01)
    ircd_share = [(eyes.seen(t) - start) * 1000 for t, start in starts.items()]
    note(results, "irc_to_matrix_ms", summary(lat))
    note(results, "irc_to_matrix_observer_on_irc_ms", summary(ircd_share))
    # Inside the bridge: from reading the IRC line to the homeserver's answer to the send (its
    # debug log `irc_bridge::timing`; the SDK's histogram also counts the ghosts' events coming
    # back from the homeserver here).
    note(results, "irc_to_matrix_bridge_ms", summary(bridged_ms(bridge_log_path, "IRC line bridged")))
    # Latency, Matrix -> IRC, one at a time; also when the homeserver answered the send.
    lat, accepted = [], []
    before = bridge_metrics(as_port)
    mark_log(bridge_log_path)
    for i in range(args.latency_messages):
        text = f"mx-lat {i}"
        start = time.monotonic()
        users[i % len(users)].send(room, text)
        accepted.append((time.monotonic() - start) * 1000)
        arrived = wait_until(lambda: eyes.seen(text), f"{text!r} on IRC", 30, 0.0005)
        lat.append((arrived - start) * 1000)
    note(results, "matrix_to_irc_ms", summary(lat))
    note(results, "matrix_to_irc_send_answered_ms", summary(accepted))
    # Inside the bridge: from the homeserver's transaction to the event handled (IRC line
    # queued, then the message and the event id stored).
    note(results, "matrix_to_irc_bridge_histogram", metrics_delta(before, bridge_metrics(as_port)))
    # From the event's origin_server_ts (the homeserver made it) to its lines queued for IRC.
    note(results, "matrix_to_irc_event_to_irc_queue_ms",
         summary(bridged_ms(bridge_log_path, "Matrix message queued for IRC")))
    note(results, "rss_after_latency_mb", round(rss_mb(bridge.pid), 1))

    peak = [0.0]
    sampling = [True]

    def sample():
        while sampling[0]:
            peak[0] = max(peak[0], rss_mb(bridge.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # Throughput, IRC -> Matrix: 20 IRC users say N lines as fast as they can.
    n = args.burst_messages
    speakers = ghosts[:20]
    # InspIRCd throttles each client's commands (about one a second once its penalty is used up,
    # even with fakelag off): opers with every privilege are exempt, so the speakers oper up and the
    # burst measures the bridge, not the IRC server's flood protection.
    for nick in speakers:
        crowd.send(nick, "OPER admin admin")
    wait_until(lambda: sum(1 for nick, raw in list(crowd.notices) if nick in speakers and " 381 " in raw)
               >= len(speakers), "the speakers to be opers", 30, 0.05,
               lambda: f"answers: {[raw for _, raw in crowd.notices][-3:]}")
    say(f"IRC -> Matrix burst: {n} lines from {len(speakers)} IRC users")
    start = time.monotonic()
    for i in range(n):
        crowd.send(speakers[i % len(speakers)], f"PRIVMSG {CHANNEL} :irc-burst {i}")
    sent = time.monotonic()
    # When the homeserver has the last line (the bridge keeps IRC's order per channel), apart from
    # when /sync shows it to a client.
    poller = Matrix(hs.base_url, users[1].token)
    newest = (f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/messages?dir=b&limit=20&filter="
              + urllib.parse.quote(json.dumps({"types": ["m.room.message"]})))

    def stored():
        chunk = poller.request("GET", newest).get("chunk", [])
        last = f"irc-burst {n - 1}"
        return any(e.get("content", {}).get("body") == last for e in chunk) and time.monotonic()

    def burst_progress():
        return (f"{eyes.count('irc-burst ')} of {n} on IRC, {watcher.count('irc-burst ')} in Matrix; "
                f"IRC clients closed: {(crowd.closed + eyes.closed)[:5]}")

    on_irc = wait_until(lambda: eyes.seen(f"irc-burst {n - 1}"), "the last IRC burst line on IRC",
                        args.wait, 0.02, burst_progress)
    say(f"  the last line was on IRC after {on_irc - start:.2f} s")
    in_homeserver = wait_until(stored, "the last IRC burst line in the homeserver", args.wait, 0.02,
                               burst_progress)
    wait_until(lambda: watcher.count("irc-burst ") >= n, "every IRC burst line in Matrix", args.wait, 0.05,
               burst_progress)
    last = max(watcher.seen(f"irc-burst {i}") for i in range(n))
    note(results, "irc_to_matrix_burst", {
        "messages": n, "send_s": round(sent - start, 2), "relayed_by_ircd_s": round(on_irc - start, 2),
        "in_homeserver_s": round(in_homeserver - start, 2),
        "bridged_per_s": round(n / (in_homeserver - start), 1),
        "total_s": round(last - start, 2), "per_s": round(n / (last - start), 1)})
    # Throughput, Matrix -> IRC: the 50 users send N messages from 10 threads.
    threads_n = min(10, len(users))
    say(f"Matrix -> IRC burst: {n} messages from {len(users)} Matrix users, {threads_n} threads")
    start = time.monotonic()
    failures = []

    def sender(k):
        clients = users[k::threads_n]
        try:
            for i in range(k, n, threads_n):
                clients[(i // threads_n) % len(clients)].send(room, f"mx-burst {i}")
        except Exception as e:  # noqa: BLE001
            failures.append(repr(e))

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = time.monotonic()
    if failures:
        raise Failed(f"Matrix sends failed: {failures[:3]}")
    say(f"  sent in {sent - start:.2f} s")
    wait_until(lambda: eyes.count("mx-burst ") >= n, "every Matrix burst message on IRC", args.wait, 0.05,
               lambda: f"{eyes.count('mx-burst ')} of {n} on IRC")
    last = max(eyes.seen(f"mx-burst {i}") for i in range(n))
    note(results, "matrix_to_irc_burst", {"messages": n, "send_s": round(sent - start, 2),
                                          "total_s": round(last - start, 2), "per_s": round(n / (last - start), 1)})
    sampling[0] = False
    sampler.join()
    note(results, "rss_peak_during_bursts_mb", round(peak[0], 1))
    note(results, "rss_end_mb", round(rss_mb(bridge.pid), 1))
    watcher.stopped = True
    return results


def register(hs, username, password):
    """Shared-secret registration; its answer has the access token (logins are rate-limited)."""
    url = f"{hs.base_url}/_synapse/admin/v1/register"
    nonce = http_json("GET", url)["nonce"]
    mac = hmac.new(hs.shared_secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), username.encode(), password.encode(), b"notadmin"]))
    answer = http_json("POST", url, {"nonce": nonce, "username": username, "password": password,
                                     "admin": False, "mac": mac.hexdigest()})
    return answer["access_token"]


def summary(values):
    return {"n": len(values), "p50": round(statistics.median(values), 1), "p99": round(pct(values, 99), 1),
            "max": round(max(values), 1)}


def print_table(args, r):
    print()
    print(f"| ghosts | puppets | IRC->Matrix p50 / p99 | Matrix->IRC p50 / p99 | IRC->Matrix msg/s | "
          f"Matrix->IRC msg/s | RSS ready | RSS peak |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    a, b = r["irc_to_matrix_ms"], r["matrix_to_irc_ms"]
    print(f"| {args.ghosts} | {args.puppets} | {a['p50']} / {a['p99']} ms | {b['p50']} / {b['p99']} ms | "
          f"{r['irc_to_matrix_burst']['per_s']} | {r['matrix_to_irc_burst']['per_s']} | "
          f"{r['rss_ready_mb']} MB | {r['rss_peak_during_bursts_mb']} MB |")


if __name__ == "__main__":
    main()
