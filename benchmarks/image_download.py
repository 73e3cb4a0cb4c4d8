"""Image download throughput against a loopback server, at several concurrency levels, and
what validating an image costs, side by side in one run.

A threaded ``http.server`` on 127.0.0.1 (keep-alive, HTTP/1.1) serves distinct ~20 KB JPEGs
(noise, 256 x 192). Each concurrency level downloads ``--images`` of them into a fresh
temporary folder through :func:`amr_pipeline.images.download_images` (every check on:
address check, content type, streamed byte limit, full Pillow decode, sha256, atomic rename).
The validation cost is measured apart: Pillow open + header check + full decode, and sha256,
per image, on the same bodies, in this process.

Loopback has no network latency, so these figures are the pipeline's own ceiling (and the
Python test server's); real downloads are bound by latency x per-host limit (see the README).

    python benchmarks/image_download.py
    python benchmarks/image_download.py --concurrency 1 8 64 --images 400
"""

from __future__ import annotations

import argparse
import hashlib
import io
import platform
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from scale import machine_line

from amr_pipeline.images import DownloadSettings, download_images
from amr_pipeline.images.download import _Fetcher


def make_bodies(count: int, seed: int = 0) -> list[bytes]:
    """``count`` distinct JPEGs of about 20 KB."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (192, 256, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(base).resize((32, 24)).resize((256, 192),
                                                                        Image.BILINEAR))
    bodies = []
    for index in range(count):
        noise = rng.integers(-56, 57, smooth.shape)
        pixels = np.clip(smooth.astype(int) + noise + index % 7, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=77)
        bodies.append(buffer.getvalue())
    return bodies


def serve(bodies: list[bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (40 ms)

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            body = bodies[int(self.path.rsplit("/", 1)[-1].split(".")[0]) % len(bodies)]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--images", type=int, default=400)
    args = parser.parse_args()
    print(machine_line())

    bodies = make_bodies(args.images)
    server = serve(bodies)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    items = pd.DataFrame({"item_raw_id": [f"i{n}" for n in range(args.images)],
                          "image": [f"{n}.jpg" for n in range(args.images)],
                          "url": [f"{base}/img/{n}.jpg" for n in range(args.images)]})
    print(f"Python {platform.python_version()}; {args.images} images of "
          f"{np.mean([len(b) for b in bodies]) / 1024:.1f} KB mean")

    # validation cost, in this process, on the same bodies
    fetcher = _Fetcher(None, DownloadSettings(min_side=16), None, threading.Event())
    started = time.perf_counter()
    for body in bodies:
        fetcher._validate(body)
    decode_ms = (time.perf_counter() - started) / len(bodies) * 1000
    started = time.perf_counter()
    for body in bodies:
        hashlib.sha256(body).hexdigest()
    hash_ms = (time.perf_counter() - started) / len(bodies) * 1000

    rows = []
    for concurrency in args.concurrency:
        settings = DownloadSettings(concurrency=concurrency, per_host=concurrency,
                                    allow_private_addresses=True, placeholder_min_items=0,
                                    min_side=16, progress=False)
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            table = download_images(items, Path(folder), settings)
            seconds = time.perf_counter() - started
        ok = int((table["status"] == "ok").sum())
        rows.append((concurrency, ok, seconds, ok / seconds,
                     table["seconds"].median() * 1000))
    server.shutdown()

    print(f"\nvalidation per image: Pillow open + header check + full decode {decode_ms:.2f} ms, "
          f"sha256 {hash_ms:.3f} ms (one thread)\n")
    print(f"{'concurrency':>11} {'ok':>5} {'seconds':>8} {'images/s':>9} "
          f"{'median ms/img':>14} {'validation share':>17}")
    for concurrency, ok, seconds, rate, median in rows:
        share = (decode_ms + hash_ms) / (1000 / rate) if rate else float("nan")
        print(f"{concurrency:>11} {ok:>5} {seconds:>8.2f} {rate:>9.1f} {median:>14.1f} "
              f"{share:>16.0%}")
    print("\nvalidation share: single-thread validation time per image over wall time per "
          "image (above 100%: validation overlaps across threads).")


if __name__ == "__main__":
    main()
