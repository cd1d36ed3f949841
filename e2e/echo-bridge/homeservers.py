"""Homeservers the echo-bridge end-to-end test can run against.

Pick one with E2E_HOMESERVER=synapse (default) or E2E_HOMESERVER=causeway. Each launcher starts
a fresh server on a free loopback port with SQLite in a temporary directory, loads the given
appservice registration files, can register users over the shared-secret admin API, and is
killed by stop().
"""

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"{}")


def wait_for_versions(base_url, proc, log_path, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"homeserver exited with {proc.returncode}; see {log_path}")
        try:
            http_json("GET", f"{base_url}/_matrix/client/versions", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.3)
    raise RuntimeError(f"homeserver did not answer /versions in {timeout}s; see {log_path}")


def stop_process(proc, grace=10):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Homeserver:
    """What the test needs from a homeserver under test."""

    server_name = "localhost"
    base_url = None
    shared_secret = None

    def register_user(self, username, password, admin=False):
        """Shared-secret registration (`/_synapse/admin/v1/register`), which both servers speak."""
        url = f"{self.base_url}/_synapse/admin/v1/register"
        nonce = http_json("GET", url)["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), username.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        http_json("POST", url, {"nonce": nonce, "username": username, "password": password,
                                "admin": admin, "mac": mac.hexdigest()})


class Synapse(Homeserver):
    """Synapse from PyPI (`matrix-synapse`), run as `python3 -m synapse.app.homeserver`."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "synapse")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, registrations):
        config_path = os.path.join(self.dir, "homeserver.yaml")
        subprocess.run(
            [sys.executable, "-m", "synapse.app.homeserver", "--server-name", self.server_name,
             "--config-path", config_path, "--data-directory", self.dir,
             "--generate-config", "--report-stats=no"],
            check=True, cwd=self.dir, stdout=subprocess.DEVNULL,
        )
        with open(config_path) as f:
            config = yaml.safe_load(f)
        fast = {"per_second": 1000, "burst_count": 1000}
        config.update({
            "listeners": [{"port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http",
                           "tls": False, "x_forwarded": False,
                           "resources": [{"names": ["client"], "compress": False}]}],
            "database": {"name": "sqlite3", "args": {"database": os.path.join(self.dir, "homeserver.db")}},
            "app_service_config_files": list(registrations),
            "enable_registration": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "rc_message": fast,
            "rc_registration": fast,
            "rc_login": {"address": fast, "account": fast, "failed_attempts": fast},
            "rc_joins": {"local": fast, "remote": fast},
            "rc_invites": {"per_room": fast, "per_user": fast, "per_issuer": fast},
        })
        self.shared_secret = config["registration_shared_secret"]
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        self.log_path = os.path.join(self.dir, "stdout.log")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", config_path],
            cwd=self.dir, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
        )
        wait_for_versions(self.base_url, self.proc, self.log_path)

    def stop(self):
        stop_process(self.proc)


class Causeway(Homeserver):
    """Our homeserver (`homeserver` binary; CAUSEWAY_HOMESERVER_BIN overrides the path). It
    speaks Synapse's config keys, so the same registration wiring applies."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "causeway")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.binary = os.environ.get("CAUSEWAY_HOMESERVER_BIN") or os.path.join(
            os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "debug", "homeserver")

    def start(self, registrations):
        if not os.path.exists(self.binary):
            subprocess.run(["cargo", "build", "-p", "homeserver"], check=True, cwd=REPO)
        config_path = os.path.join(self.dir, "homeserver.yaml")
        subprocess.run([self.binary, "generate-config", "--server-name", self.server_name,
                        "--config-path", config_path, "--data-dir", self.dir], check=True)
        with open(config_path) as f:
            config = yaml.safe_load(f)
        config["listeners"] = [{"port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http",
                                "tls": False, "resources": [{"names": ["client"]}]}]
        config["app_service_config_files"] = list(registrations)
        config["rc_message"] = {"per_second": 1000, "burst_count": 1000}
        self.shared_secret = config["registration_shared_secret"]
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        self.log_path = os.path.join(self.dir, "stdout.log")
        self.proc = subprocess.Popen([self.binary, "-c", config_path], cwd=self.dir,
                                     stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        wait_for_versions(self.base_url, self.proc, self.log_path)

    def stop(self):
        stop_process(self.proc)


LAUNCHERS = {"synapse": Synapse, "causeway": Causeway}


def launcher(workdir):
    name = os.environ.get("E2E_HOMESERVER", "synapse")
    if name not in LAUNCHERS:
        raise SystemExit(f"E2E_HOMESERVER must be one of {sorted(LAUNCHERS)}, not {name!r}")
    return LAUNCHERS[name](workdir)


def cargo_binary(name):
    """Path of a workspace binary, building it if absent."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    path = os.path.join(target, "debug", name)
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "-p", name], check=True, cwd=REPO)
    return path


__all__ = ["launcher", "cargo_binary", "free_port", "stop_process", "http_json", "shutil"]
