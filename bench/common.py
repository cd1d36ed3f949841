"""Helpers shared by the benchmark scripts."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent.parent / "e2e" / "requirements.txt"


def install_synapse(postgres: bool = False) -> None:
    """Installs Synapse from PyPI (the version the end-to-end tests pin), and psycopg2 for PostgreSQL."""
    pinned = [line.strip() for line in REQUIREMENTS.read_text().splitlines() if line.startswith("matrix-synapse")]
    packages = pinned + (["psycopg2-binary"] if postgres else [])
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages], check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB (from /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def wait_for_versions(base: str, process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(base + "/_matrix/client/versions", timeout=1):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("server did not answer in time")
