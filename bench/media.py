#!/usr/bin/env python3
"""Media benchmark: upload and download throughput, thumbnail rate, and resident memory during a
100 MB upload, for Causeway and for Synapse (installed from PyPI) on this machine, in one run.

    python3 bench/media.py [--size-mb 100] [--rounds 3] [--images 40] [--concurrency 4]
                           [--only causeway|synapse]

Both servers run on SQLite with a 200 MB upload limit. Uploads are streamed from the client in
1 MiB chunks (never built in memory on the client side either); each round uploads different random
bytes, so neither server can skip work through deduplication. Memory is the server's resident set
(VmRSS) sampled every 5 ms during the upload, against its resident set just before. Thumbnails:
`--images` distinct 1600x1200 JPEGs, each thumbnailed once at 320x240 scale (no cache hits), with
`--concurrency` clients. Synapse makes its thumbnails when an image is uploaded and Causeway on
first request, so "image upload + first thumbnail" is the comparable figure. Prints a Markdown table for BENCHMARKS.md.

Self-contained on purpose (it starts both servers the way bench/accounts.py does), so it runs
from any checkout.
"""

import argparse
import concurrent.futures
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from common import free_port, install_synapse, rss_mb, wait_for_versions  # noqa: E402

SECRET = "bench-secret"
CHUNK = 1024 * 1024


def causeway(workdir: Path, port: int):
    binary = Path(os.environ.get("CAUSEWAY_HOMESERVER_BIN", ROOT / "target" / "release" / "homeserver"))
    if not binary.exists():
        subprocess.run(["cargo", "build", "--release", "-p", "homeserver"], cwd=ROOT, check=True)
    config = workdir / "homeserver.yaml"
    config.write_text(
        f"""server_name: localhost
listeners: [{{port: {port}, bind_addresses: ['127.0.0.1'], type: http, resources: [{{names: [client]}}]}}]
database: {{name: sqlite3, args: {{database: "{workdir}/hs.db"}}}}
media_store_path: "{workdir}/media"
max_upload_size: 200M
enable_registration: true
registration_shared_secret: {SECRET}
rc_registration: {{per_second: 100000, burst_count: 100000}}
rc_login: {{per_second: 100000, burst_count: 100000}}
"""
    )
    env = dict(os.environ, RUST_LOG="warn")
    return subprocess.Popen([str(binary), "-c", str(config)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


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
max_upload_size: 200M
rc_registration: {{per_second: 100000, burst_count: 100000}}
rc_login: {{address: {{per_second: 100000, burst_count: 100000}}, account: {{per_second: 100000, burst_count: 100000}}, failed_attempts: {{per_second: 100000, burst_count: 100000}}}}
rc_media_create: {{per_second: 100000, burst_count: 100000}}
"""
    config.write_text(text)
    log_config = next(workdir.glob("*.log.config"))
    log_config.write_text(log_config.read_text().replace("level: INFO", "level: WARNING"))
    return subprocess.Popen([sys.executable, "-m", "synapse.app.homeserver", "-c", str(config)], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def register(base: str) -> str:
    body = json.dumps({"username": "bench", "password": "pw-bench", "auth": {"type": "m.login.dummy"}}).encode()
    request = urllib.request.Request(base + "/_matrix/client/v3/register", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["access_token"]


def random_chunks(size: int):
    """`size` random bytes in 1 MiB chunks, made as they are sent."""
    block = os.urandom(CHUNK)
    sent = 0
    counter = 0
    while sent < size:
        counter += 1
        # Cheap per-chunk variation: the whole upload is unique, no two chunks are equal.
        piece = counter.to_bytes(8, "little") + block[8:]
        piece = piece[: size - sent]
        sent += len(piece)
        yield piece


def upload_stream(port: int, token: str, size: int, content_type: str = "application/octet-stream") -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.putrequest("POST", "/_matrix/media/v3/upload?filename=big.bin")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Content-Type", content_type)
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    for piece in random_chunks(size):
        conn.send(piece)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"upload failed: {response.status} {body[:200]!r}")
    return json.loads(body)["content_uri"]


def upload_bytes(port: int, token: str, data: bytes, content_type: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/_matrix/media/v3/upload", body=data,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"upload failed: {response.status} {body[:200]!r}")
    return json.loads(body)["content_uri"]


def fetch(port: int, token: str, path: str) -> int:
    """GETs `path`, reading the body in chunks; returns its length."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    total = 0
    while True:
        piece = response.read(CHUNK)
        if not piece:
            break
        total += len(piece)
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path} failed: {response.status}")
    return total


class RssSampler:
    """Samples a process's resident set in the background; `peak` is the highest seen."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = rss_mb(pid)
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.005)

    def stop(self) -> float:
        self.running = False
        self.thread.join()
        return self.peak


def jpeg(i: int) -> bytes:
    from PIL import Image, ImageDraw  # Synapse depends on Pillow, so it is here with it

    image = Image.new("RGB", (1600, 1200), (i * 7 % 256, 80, 160))
    draw = ImageDraw.Draw(image)
    for k in range(0, 1600, 40):
        draw.line([(k, 0), (1600 - k, 1200)], fill=((k + i) % 256, 200, 30), width=3)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def measure(name: str, launcher, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-media-{name}-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = launcher(workdir, port)
    size = args.size_mb * 1024 * 1024
    try:
        wait_for_versions(base, process, timeout=120)
        token = register(base)
        # Warm up: one small upload and download so lazy start-up costs are not measured.
        mxc = upload_bytes(port, token, b"warm-up", "text/plain")
        fetch(port, token, "/_matrix/client/v1/media/download/" + mxc[len("mxc://"):])
        time.sleep(2)

        before = rss_mb(process.pid)
        sampler = RssSampler(process.pid)
        t0 = time.monotonic()
        mxcs = [upload_stream(port, token, size) for _ in range(args.rounds)]
        upload_s = time.monotonic() - t0
        peak = sampler.stop()

        t0 = time.monotonic()
        for mxc in mxcs:
            got = fetch(port, token, "/_matrix/client/v1/media/download/" + mxc[len("mxc://"):])
            assert got == size, (got, size)
        download_s = time.monotonic() - t0

        images = [jpeg(i) for i in range(args.images)]
        t0 = time.monotonic()
        image_mxcs = [upload_bytes(port, token, data, "image/jpeg") for data in images]
        image_upload_s = time.monotonic() - t0
        thumb_peak_sampler = RssSampler(process.pid)
        t0 = time.monotonic()

        def thumbnail(mxc: str) -> int:
            return fetch(port, token, "/_matrix/client/v1/media/thumbnail/" + mxc[len("mxc://"):]
                         + "?width=320&height=240&method=scale")

        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(thumbnail, image_mxcs))
        thumb_s = time.monotonic() - t0
        thumb_peak = thumb_peak_sampler.stop()
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(thumbnail, image_mxcs))
        cached_s = time.monotonic() - t0
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    total_mb = size * args.rounds / (1024 * 1024)
    return {
        "server": name,
        "upload_mb_s": total_mb / upload_s,
        "download_mb_s": total_mb / download_s,
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "thumbs_per_s": args.images / thumb_s,
        "pipeline_per_s": args.images / (image_upload_s + thumb_s),
        "cached_thumbs_per_s": args.images / cached_s,
        "thumb_peak_mb": thumb_peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--only", choices=["causeway", "synapse"])
    args = parser.parse_args()
    if args.only != "causeway":
        install_synapse()
    servers = {"causeway": causeway, "synapse": synapse}
    results = [measure(n, f, args) for n, f in servers.items() if args.only in (None, n)]
    print(f"\n{args.rounds} uploads and downloads of {args.size_mb} MB each (random bytes, streamed), "
          f"{args.images} distinct 1600x1200 JPEGs thumbnailed to 320x240 by {args.concurrency} clients, SQLite\n")
    print("| server | upload | download | RSS before upload | peak RSS during uploads | first thumbnail/s "
          "| image upload + first thumbnail/s | thumbnails/s (cached) | peak RSS thumbnailing |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['server']} | {r['upload_mb_s']:.0f} MB/s | {r['download_mb_s']:.0f} MB/s | "
              f"{r['rss_before_mb']:.1f} MB | {r['rss_peak_mb']:.1f} MB | {r['thumbs_per_s']:.1f} | "
              f"{r['pipeline_per_s']:.1f} | "
              f"{r['cached_thumbs_per_s']:.1f} | {r['thumb_peak_mb']:.1f} MB |")


if __name__ == "__main__":
    main()
