#!/usr/bin/env python3
"""Messaging load benchmark: the same scenario against Causeway and Synapse (from PyPI), each on
SQLite and PostgreSQL, in one run. Users send concurrently into shared rooms while every user
long-polls /sync (the Rust load generator in bench/loadgen does the client side).

    python3 bench/load.py [--users 20] [--rooms 5] [--messages 2000] [--only causeway|synapse]

Reports sends/s, send latency p50/p99, send-to-sync delivery latency p50/p99, deliveries that
waited for the 30 s long-poll timeout, the server's peak resident memory during the run, and the
server process's CPU time per message while sending and delivering (PostgreSQL's own processes
not included), and the load generator's own CPU time over its whole run (registration included),
and when the slowest 1% of deliveries were sent (start-up, or one stall). CAUSEWAY_BIN runs another homeserver build (to compare two commits back to back).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from common import free_port, install_synapse, rss_mb, wait_for_versions  # noqa: E402

LIMITS = "{per_second: 100000, burst_count: 100000}"


def pg_database(collate_c: bool) -> str:
    name = "bench_" + uuid.uuid4().hex[:10]
    extra = " ENCODING 'UTF8' LC_COLLATE='C' LC_CTYPE='C' TEMPLATE template0" if collate_c else ""
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}{extra}"], check=True)
    return name


def causeway(workdir: Path, port: int, backend: str):
    binary = os.environ.get("CAUSEWAY_BIN", ROOT / "target" / "release" / "homeserver")
    if backend == "postgres":
        db = f"{{name: psycopg2, args: {{user: postgres, host: 127.0.0.1, port: 5432, database: {pg_database(False)}, cp_max: 20}}}}"
    else:
        db = f'{{name: sqlite3, args: {{database: "{workdir}/hs.db"}}}}'
    config = workdir / "homeserver.yaml"
    config.write_text(
        f"""server_name: localhost
listeners: [{{port: {port}, bind_addresses: ['127.0.0.1'], type: http, resources: [{{names: [client]}}]}}]
database: {db}
media_store_path: "{workdir}/media"
enable_registration: true
rc_registration: {LIMITS}
rc_login: {LIMITS}
rc_message: {LIMITS}
"""
    )
    env = dict(os.environ, RUST_LOG="warn")
    return subprocess.Popen([str(binary), "-c", str(config)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def synapse(workdir: Path, port: int, backend: str):
    config = workdir / "homeserver.yaml"
    subprocess.run(
        [sys.executable, "-m", "synapse.app.homeserver", "--server-name", "localhost", "--config-path", str(config),
         "--generate-config", "--report-stats=no"],
        cwd=workdir, check=True, capture_output=True,
    )
    text = config.read_text().replace("port: 8008", f"port: {port}").replace("- ::1\n", "")
    if backend == "postgres":
        start = text.index("database:")
        end = text.index("log_config")
        text = text[:start] + (
            f"database:\n  name: psycopg2\n  args:\n    user: postgres\n    host: 127.0.0.1\n    port: 5432\n"
            f"    database: {pg_database(True)}\n    cp_min: 5\n    cp_max: 10\n"
        ) + text[end:]
    text += f"""
enable_registration: true
enable_registration_without_verification: true
rc_registration: {LIMITS}
rc_login: {{address: {LIMITS}, account: {LIMITS}, failed_attempts: {LIMITS}}}
rc_message: {LIMITS}
rc_joins: {{local: {LIMITS}, remote: {LIMITS}}}
"""
    config.write_text(text)
    log_config = next(workdir.glob("*.log.config"))
    log_config.write_text(log_config.read_text().replace("level: INFO", "level: WARNING"))
    return subprocess.Popen([sys.executable, "-m", "synapse.app.homeserver", "-c", str(config)], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(name: str, launcher, backend: str, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"load-{name}-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = launcher(workdir, port, backend)
    peak = [0.0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], rss_mb(process.pid))
            except (OSError, RuntimeError):
                pass
            time.sleep(0.1)

    try:
        wait_for_versions(base, process, timeout=120)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [str(ROOT / "target" / "release" / "loadgen"), "--url", base, "--users", str(args.users),
             "--rooms", str(args.rooms), "--messages", str(args.messages), "--server-pid", str(process.pid),
             "--tail-timing"],
            capture_output=True, text=True, timeout=900,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        stop.set()
        loadgen_cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed against {name}/{backend}: {out.stderr[-2000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["loadgen_cpu_s"] = loadgen_cpu_s
    finally:
        stop.set()
        process.terminate()
        process.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)
    result.update(server=name, backend=backend, peak_rss_mb=peak[0])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rooms", type=int, default=5)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--only", choices=["causeway", "synapse"])
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "-p", "homeserver", "-p", "loadgen"], cwd=ROOT, check=True)
    if args.only != "causeway":
        install_synapse(postgres="postgres" in args.backends)
    servers = {"causeway": causeway, "synapse": synapse}
    results = []
    for backend in args.backends.split(","):
        for name, launcher in servers.items():
            if args.only in (None, name):
                results.append(run(name, launcher, backend, args))
    print(f"\n{args.users} users in {args.rooms} rooms sending {args.messages} messages while all long-poll /sync\n")
    print("| server | database | sends/s | send p50 | send p99 | delivery p50 | delivery p99 | waited for timeout | peak RSS | server CPU per message | load generator CPU |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        cpu = r.get("server_cpu_ms_per_message")
        print(f"| {r['server']} | {r['backend']} | {r['sends_per_s']:.0f} | {r['send_p50_ms']:.1f} ms | {r['send_p99_ms']:.1f} ms | "
              f"{r['delivery_p50_ms']:.1f} ms | {r['delivery_p99_ms']:.1f} ms | "
              f"{r['deliveries_that_waited_for_the_long_poll_timeout']} | {r['peak_rss_mb']:.1f} MB | "
              f"{'-' if cpu is None else f'{cpu:.2f} ms'} | {r['loadgen_cpu_s']:.1f} s |")
    print("\nWhen the slowest 1% of deliveries were sent (start-up shows as the first tenth):\n")
    for r in results:
        t = r.get("slowest_1pct")
        if t:
            print(f"- {r['server']} / {r['backend']}: {t['share_sent_in_first_tenth']:.0%} in the first tenth of the "
                  f"sending time; {t['share_in_busiest_20ms_window']:.0%} in one 20 ms window "
                  f"(from {t['busiest_20ms_window_from_ms']} ms)")


if __name__ == "__main__":
    main()
