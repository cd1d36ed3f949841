#!/usr/bin/env python3
"""Foundation benchmark: start-up to first answer, idle resident memory, and register+login
throughput, for Causeway and for Synapse (installed from PyPI) on this machine, in one run.

    python3 bench/accounts.py [--users 1000] [--concurrency 8] [--only causeway|synapse]

Both servers run on SQLite with rate limits lifted. Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from common import free_port, install_synapse, rss_mb, wait_for_versions  # noqa: E402

SECRET = "bench-secret"


def causeway(workdir: Path, port: int):
    binary = ROOT / "target" / "release" / "homeserver"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--release", "-p", "homeserver"], cwd=ROOT, check=True)
    config = workdir / "homeserver.yaml"
    config.write_text(
        f"""server_name: localhost
listeners: [{{port: {port}, bind_addresses: ['127.0.0.1'], type: http, resources: [{{names: [client]}}]}}]
database: {{name: sqlite3, args: {{database: "{workdir}/hs.db"}}}}
enable_registration: true
registration_shared_secret: {SECRET}
rc_registration: {{per_second: 100000, burst_count: 100000}}
rc_login: {{per_second: 100000, burst_count: 100000}}
rc_message: {{per_second: 100000, burst_count: 100000}}
"""
    )
    env = dict(os.environ, RUST_LOG="warn")
    return subprocess.Popen([str(binary), "-c", str(config)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def synapse(workdir: Path, port: int):
    config = workdir / "homeserver.yaml"
    subprocess.run(
        [sys.executable, "-m", "synapse.app.homeserver", "--server-name", "localhost", "--config-path", str(config),
         "--generate-config", "--report-stats=no"],
        cwd=workdir, check=True, capture_output=True,
    )
    text = config.read_text().replace("port: 8008", f"port: {port}").replace("- ::1\n", "")
    text += f"""
enable_registration: true
enable_registration_without_verification: true
registration_shared_secret: {SECRET}
rc_registration: {{per_second: 100000, burst_count: 100000}}
rc_login: {{address: {{per_second: 100000, burst_count: 100000}}, account: {{per_second: 100000, burst_count: 100000}}, failed_attempts: {{per_second: 100000, burst_count: 100000}}}}
rc_message: {{per_second: 100000, burst_count: 100000}}
"""
    config.write_text(text)
    log_config = next(workdir.glob("*.log.config"))
    log_config.write_text(log_config.read_text().replace("level: INFO", "level: WARNING"))
    return subprocess.Popen([sys.executable, "-m", "synapse.app.homeserver", "-c", str(config)], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def register_and_login(base: str, i: int) -> None:
    name = f"bench{i}"
    post(base + "/_matrix/client/v3/register",
         {"username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}})
    post(base + "/_matrix/client/v3/login", {"type": "m.login.password", "user": name, "password": "pw-" + name})


def measure(name: str, launcher, users: int, concurrency: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    process = launcher(workdir, port)
    try:
        wait_for_versions(base, process, timeout=120)
        startup = time.monotonic() - started
        time.sleep(5)
        idle = rss_mb(process.pid)
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda i: register_and_login(base, i), range(users)))
        elapsed = time.monotonic() - t0
        peak = rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    return {"server": name, "startup_s": startup, "idle_rss_mb": idle, "pairs_per_s": users / elapsed,
            "elapsed_s": elapsed, "rss_after_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", choices=["causeway", "synapse"])
    args = parser.parse_args()
    if args.only != "causeway":
        install_synapse()
    servers = {"causeway": causeway, "synapse": synapse}
    results = [measure(n, f, args.users, args.concurrency) for n, f in servers.items() if args.only in (None, n)]
    print(f"\n{args.users} users, register + login each, {args.concurrency} concurrent clients, SQLite\n")
    print("| server | start-up to first answer | idle RSS | register+login pairs/s | total | RSS after |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['server']} | {r['startup_s']:.2f} s | {r['idle_rss_mb']:.1f} MB | {r['pairs_per_s']:.1f} | "
              f"{r['elapsed_s']:.1f} s | {r['rss_after_mb']:.1f} MB |")


if __name__ == "__main__":
    main()
