"""A small raw-socket IRC client for tests: registers with the IRCv3 caps it asks for, answers PINGs,
and records every line it reads (with its tags) on a background thread."""

import socket
import threading
import time


def parse(raw):
    """(tags, source nick, command, params) of one IRC line."""
    tags = {}
    if raw.startswith("@"):
        head, raw = raw[1:].split(" ", 1)
        for item in head.split(";"):
            key, _, value = item.partition("=")
            tags[key] = value.replace("\\:", ";").replace("\\s", " ").replace("\\\\", "\\")
    nick = None
    if raw.startswith(":"):
        source, raw = raw[1:].split(" ", 1)
        nick = source.split("!")[0]
    trailing = None
    if " :" in raw:
        raw, trailing = raw.split(" :", 1)
    parts = raw.split()
    params = parts[1:] + ([trailing] if trailing is not None else [])
    return {"tags": tags, "nick": nick, "command": parts[0].upper(), "params": params}


class IrcClient:
    def __init__(self, port, nick, caps=("server-time", "message-tags", "echo-message", "batch"), timeout=30):
        self.nick = nick
        self.timeout = timeout
        self.lines = []
        self.lock = threading.RLock()
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.send("CAP LS 302")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick} (test)")
        if caps:
            self.send(f"CAP REQ :{' '.join(caps)}")
        self.send("CAP END")
        self.wait(lambda m: m["command"] == "001", "registration")

    def send(self, line):
        self.sock.sendall((line + "\r\n").encode())

    def _read(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            buf += data
            while b"\r\n" in buf:
                raw, buf = buf.split(b"\r\n", 1)
                line = raw.decode("utf-8", "replace")
                message = parse(line)
                message["raw"] = line
                if message["command"] == "PING":
                    self.send("PONG :" + (message["params"][-1] if message["params"] else ""))
                with self.lock:
                    self.lines.append(message)
        self.closed = True

    def seen(self, predicate):
        with self.lock:
            return [m for m in self.lines if predicate(m)]

    def wait(self, predicate, what, timeout=None):
        deadline = time.time() + (timeout or self.timeout)
        while time.time() < deadline:
            found = self.seen(predicate)
            if found:
                return found[0]
            time.sleep(0.05)
        tail = "\n".join(m["raw"] for m in self.lines[-30:])
        raise AssertionError(f"{self.nick}: timed out waiting for {what}; last lines:\n{tail}")

    def say(self, target, text):
        """PRIVMSG and wait for its echo (echo-message): returns the echo, with the server's time."""
        marker = len(self.lines)
        self.send(f"PRIVMSG {target} :{text}")
        return self.wait(lambda m: m["command"] == "PRIVMSG" and m["nick"] == self.nick
                         and m["params"] == [target, text] and self.lines.index(m) >= marker,
                         f"the echo of {text!r}")

    def privmsgs(self, target, sender=None):
        return [m for m in self.seen(lambda m: m["command"] == "PRIVMSG" and m["params"][0].lower() == target.lower()
                                     and (sender is None or m["nick"] == sender))]

    def close(self):
        try:
            self.send("QUIT :bye")
            self.sock.close()
        except OSError:
            pass
