"""Shared fixtures: start our homeserver binary on a free loopback port with a fresh config."""

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_SECRET = "e2e-shared-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def homeserver_binary() -> str:
    """CAUSEWAY_HOMESERVER_BIN, else the debug build under CARGO_TARGET_DIR (default target/), as the
    bridges' tests find their binaries."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")))
    path = os.environ.get("CAUSEWAY_HOMESERVER_BIN", str(target / "debug" / "homeserver"))
    if not Path(path).exists():
        subprocess.run(["cargo", "build", "-p", "homeserver"], cwd=ROOT, check=True)
    return path


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"homeserver exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/_matrix/client/versions", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("homeserver did not answer in time")


class Homeserver:
    def __init__(self, workdir: Path, extra_config: str = ""):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.config_path = workdir / "homeserver.yaml"
        self.config_path.write_text(
            f"""server_name: localhost
listeners:
  - port: {self.port}
    bind_addresses: ['127.0.0.1']
    type: http
    resources: [{{names: [client]}}]
database:
  name: sqlite3
  args: {{database: "{workdir}/homeserver.db"}}
media_store_path: "{workdir}/media"
enable_registration: true
enable_registration_without_verification: true
registration_shared_secret: "{SHARED_SECRET}"
rc_message: {{per_second: 1000, burst_count: 1000}}
rc_login: {{per_second: 100, burst_count: 100}}
rc_registration: {{per_second: 100, burst_count: 100}}
{extra_config}
"""
        )
        self.log = open(workdir / "homeserver.log", "wb")
        self.process = subprocess.Popen(
            [homeserver_binary(), "-c", str(self.config_path)], stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_until_up(self.url, self.process)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture
def homeserver(tmp_path):
    hs = Homeserver(tmp_path)
    yield hs
    hs.stop()
