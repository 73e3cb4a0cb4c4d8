"""The image downloader against a loopback HTTP server this file starts (127.0.0.1, port 0).

Nothing here can reach another machine: the private-address tests either never connect
(the live server, on 127.0.0.1, must see no request) or use an in-process httpx transport, and
every test runs with ``socket.socket.connect`` patched to refuse any address but 127.0.0.1.
"""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pandas as pd
import pytest
from PIL import Image

from amr_pipeline.images import DownloadSettings, download_images, status_counts
from amr_pipeline.images import download as download_module


def _jpeg(colour, size=(64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _png(colour, size=(48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A small valid-looking PNG whose header declares ``width x height`` pixels."""
    data = bytearray(_png((1, 2, 3), (8, 8)))
    ihdr = data[16:29]
    ihdr[0:8] = struct.pack(">II", width, height)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return bytes(data)


PLACEHOLDER = _jpeg((200, 200, 200))


class _Server:
    """A threaded loopback server with the faults below; ``hits`` counts requests per path."""

    def __init__(self, stall_after: int | None = None) -> None:
        self.hits: Counter = Counter()
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        self.stalling = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                with server.lock:
                    server.hits[self.path] += 1
                    count = server.hits[self.path]
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    server.route(self, self.path, count)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def send(handler, code, body=b"", content_type="image/jpeg", headers=(), length=True):
        handler.send_response(code)
        if content_type:
            handler.send_header("Content-Type", content_type)
        for name, value in headers:
            handler.send_header(name, value)
        if length:
            handler.send_header("Content-Length", str(len(body)))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        try:
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route(self, h, path, count):  # noqa: C901 - one branch per fault
        send = self.send
        if path.startswith("/good/"):
            n = int(path.split("/")[-1].split(".")[0])
            send(h, 200, _jpeg((n * 20 % 256, 255 - n * 7 % 256, n * 3 % 256)))
        elif path.startswith("/png/"):
            n = int(path.split("/")[-1].split(".")[0])
            send(h, 200, _png((n * 30 % 256, 10, 200)), "image/png")
        elif path == "/missing.jpg":
            send(h, 404, b"not found", "text/plain")
        elif path == "/flaky.jpg":
            if count <= 2:
                send(h, 500, b"oops", "text/plain")
            else:
                send(h, 200, _jpeg((9, 99, 199)))
        elif path == "/busy.jpg":
            if count == 1:
                send(h, 429, b"slow down", "text/plain", headers=[("Retry-After", "1")])
            else:
                send(h, 200, _jpeg((5, 50, 150)))
        elif path == "/slow.jpg":
            time.sleep(1.0)
            send(h, 200, _jpeg((1, 1, 1)))
        elif path == "/truncated.jpg":
            body = _jpeg((120, 30, 60), (128, 128))
            send(h, 200, body[: len(body) // 2])
        elif path == "/page.jpg":
            send(h, 200, b"<html><body>Pin not found</body></html>", "text/html; charset=utf-8")
        elif path == "/octet.jpg":
            send(h, 200, _jpeg((33, 66, 99)), "application/octet-stream")
        elif path == "/big.jpg":  # no Content-Length: the body is streamed past the limit
            send(h, 200, b"\xff" * 300_000, length=False)
        elif path == "/declared-big.jpg":
            send(h, 200, b"\xff" * 300_000)
        elif path == "/bomb.png":
            send(h, 200, _bomb_png(10_000, 10_000), "image/png")
        elif path == "/huge-bomb.png":
            send(h, 200, _bomb_png(100_000, 100_000), "image/png")
        elif path == "/small.jpg":
            send(h, 200, _jpeg((7, 7, 7), (8, 8)))
        elif path == "/loop.jpg":
            send(h, 302, b"", None, headers=[("Location", "/loop.jpg")])
        elif path == "/hop.jpg":
            send(h, 301, b"", None, headers=[("Location", "/good/99.jpg")])
        elif path.startswith("/placeholder/"):
            send(h, 200, PLACEHOLDER)
        elif path.startswith("/paced/"):
            time.sleep(0.1)
            send(h, 200, _jpeg((int(path.split("/")[-1]), 40, 80)))
        elif path == "/drip.jpg":  # every byte within the read timeout, the whole far too slow
            body = _jpeg((3, 4, 5))
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            try:
                for start in range(0, len(body), 64):
                    h.wfile.write(body[start:start + 64])
                    h.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path.startswith("/maybe/"):  # items 4 and up stall while ``stalling``
            n = int(path.split("/")[-1])
            while n >= 4 and self.stalling:
                time.sleep(0.05)
            send(h, 200, _jpeg((n * 20, 100, 30)))
        elif path.startswith("/stall/"):
            time.sleep(30)
        else:
            send(h, 404, b"", "text/plain")


@pytest.fixture
def server():
    served = _Server()
    yield served
    served.close()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Any connection to an address other than 127.0.0.1 fails before a packet is sent."""
    original = socket.socket.connect
    refused = []

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if host != "127.0.0.1":
            refused.append(host)
            raise OSError(f"test guard: connection to {host} refused")
        return original(sock, address)

    def connect_ex(sock, address):
        connect(sock, address)
        return 0

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield refused
    assert not refused, f"the downloader tried to connect to {refused}"


FAST = dict(connect_timeout=1.0, read_timeout=0.4, total_timeout=3.0, attempts=3, backoff=0.02,
            max_backoff=0.1, max_bytes=100_000, min_side=16, progress=False,
            concurrency=8, per_host=4)


def _items(rows):
    return pd.DataFrame(rows, columns=["item_raw_id", "image", "url"])


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_every_fault_gets_its_status_and_no_bad_file_lands(server, tmp_path):
    b = server.base
    rows = [
        ("g1", "g1.jpg", f"{b}/good/1.jpg"),
        ("g2", "g2.jpg", f"{b}/good/2.jpg"),
        ("p1", "p1.png", f"{b}/png/1.png"),
        ("hop", "hop.jpg", f"{b}/hop.jpg"),
        ("missing", "missing.jpg", f"{b}/missing.jpg"),
        ("flaky", "flaky.jpg", f"{b}/flaky.jpg"),
        ("busy", "busy.jpg", f"{b}/busy.jpg"),
        ("slow", "slow.jpg", f"{b}/slow.jpg"),
        ("truncated", "truncated.jpg", f"{b}/truncated.jpg"),
        ("page", "page.jpg", f"{b}/page.jpg"),
        ("octet", "octet.jpg", f"{b}/octet.jpg"),
        ("big", "big.jpg", f"{b}/big.jpg"),
        ("declared_big", "declared_big.jpg", f"{b}/declared-big.jpg"),
        ("bomb", "bomb.png", f"{b}/bomb.png"),
        ("huge_bomb", "huge_bomb.png", f"{b}/huge-bomb.png"),
        ("small", "small.jpg", f"{b}/small.jpg"),
        ("loop", "loop.jpg", f"{b}/loop.jpg"),
        ("ph1", "ph1.jpg", f"{b}/placeholder/1.jpg"),
        ("ph2", "ph2.jpg", f"{b}/placeholder/2.jpg"),
        ("ph3", "ph3.jpg", f"{b}/placeholder/3.jpg"),
        ("file", "file.jpg", "file:///etc/passwd"),
        ("escape", "../escape.jpg", f"{b}/good/3.jpg"),
        ("nourl", "nourl.jpg", None),
        ("nothing", None, None),
    ]
    folder = tmp_path / "images"
    started = time.monotonic()
    table = download_images(_items(rows), folder,
                            DownloadSettings(**FAST, allow_private_addresses=True))
    elapsed = time.monotonic() - started
    status = dict(zip(table["item_raw_id"], table["status"]))
    assert status == {
        "g1": "ok", "g2": "ok", "p1": "ok", "hop": "ok", "missing": "http_error",
        "flaky": "ok", "busy": "ok", "slow": "timeout", "truncated": "not_an_image",
        "page": "not_an_image", "octet": "not_an_image", "big": "too_large",
        "declared_big": "too_large", "bomb": "too_large", "huge_bomb": "too_large",
        "small": "too_small", "loop": "http_error", "ph1": "placeholder", "ph2": "placeholder",
        "ph3": "placeholder", "file": "refused_url", "escape": "refused_url",
        "nourl": "refused_url", "nothing": "refused_url",
    }
    assert dict(zip(table["item_raw_id"], table["error"]))["nothing"] == "no URL and no image name"
    row = table.set_index("item_raw_id")
    assert list(table.columns) == list(download_module.STATUS_COLUMNS)
    assert row.loc["flaky", "attempts"] == 3 and row.loc["missing", "attempts"] == 1
    assert row.loc["missing", "http_status"] == 404
    assert row.loc["busy", "attempts"] == 2 and row.loc["busy", "seconds"] >= 0.95
    assert row.loc["slow", "attempts"] == 3
    assert "redirect loop" in row.loc["loop", "error"]
    assert "octet-stream" in row.loc["octet", "error"]
    assert (row.loc["g1", "width"], row.loc["g1", "height"]) == (64, 64)
    assert (row.loc["p1", "width"], row.loc["p1", "height"]) == (48, 40)
    assert server.hits["/flaky.jpg"] == 3 and server.hits["/loop.jpg"] == 1
    assert server.hits["/good/3.jpg"] == 0  # the escaping name is refused before any request
    # only complete, valid images under their own names; nothing else (no .part, no stand-in)
    assert _files(folder) == ["busy.jpg", "flaky.jpg", "g1.jpg", "g2.jpg", "hop.jpg", "p1.png"]
    for name in _files(folder):
        with Image.open(folder / name) as image:
            image.load()
    assert (folder / "g1.jpg").read_bytes() == _jpeg((20, 248, 3))
    assert status_counts(table)["placeholder"] == 3
    assert elapsed < 15


def test_octet_stream_is_accepted_only_when_listed(server, tmp_path):
    items = _items([("octet", "octet.jpg", f"{server.base}/octet.jpg")])
    settings = DownloadSettings(**FAST, allow_private_addresses=True,
                                accepted_content_types=["application/octet-stream"])
    table = download_images(items, tmp_path, settings)
    assert table["status"].tolist() == ["ok"]


def test_private_addresses_are_refused_before_any_packet(server, tmp_path):
    rows = [
        ("loopback", "a.jpg", f"{server.base}/good/1.jpg"),   # the live server, on 127.0.0.1
        ("literal", "b.jpg", "http://10.1.2.3/x.jpg"),
        ("named", "c.jpg", "https://intranet.example/x.jpg"),
        ("mapped", "d.jpg", "http://[::ffff:192.168.0.1]/x.jpg"),
        ("link_local", "e.jpg", "http://169.254.169.254/latest/meta-data"),
        ("rebinding", "f.jpg", "http://mixed.example/x.jpg"),
    ]
    resolved = {"intranet.example": ["192.168.1.5"],
                "mixed.example": ["93.184.216.34", "127.0.0.1"]}
    table = download_images(_items(rows), tmp_path / "images",
                            DownloadSettings(**FAST),
                            resolver=lambda host, port: resolved[host])
    assert table["status"].tolist() == ["refused_url"] * len(rows)
    assert all("non-public" in error for error in table["error"])
    assert sum(server.hits.values()) == 0
    assert _files(tmp_path / "images") == []


def test_every_redirect_hop_is_checked_and_the_checked_address_is_used(tmp_path):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers["host"]))
        return httpx.Response(302, headers={"Location": "http://internal.example/secret.jpg"})

    resolved = {"cdn.example": ["93.184.216.34"], "internal.example": ["10.0.0.7"]}
    table = download_images(
        _items([("x", "x.jpg", "http://cdn.example/img/x.jpg?s=1")]), tmp_path,
        DownloadSettings(**FAST), resolver=lambda host, port: resolved[host],
        transport=httpx.MockTransport(handler))
    assert table["status"].tolist() == ["refused_url"]
    assert "10.0.0.7" in table["error"].iloc[0]
    # one request, sent to the resolved address with the original Host header
    assert seen == [("http://93.184.216.34/img/x.jpg?s=1", "cdn.example")]


def test_https_keeps_the_host_name_for_sni_and_certificates(tmp_path):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers["host"],
                     request.extensions.get("sni_hostname")))
        return httpx.Response(200, stream=httpx.ByteStream(_jpeg((1, 2, 3))),
                              headers={"Content-Type": "image/jpeg"})

    table = download_images(
        _items([("x", "x.jpg", "https://cdn.example:8443/x.jpg")]), tmp_path,
        DownloadSettings(**FAST), resolver=lambda host, port: ["2606:2800:220:1::1"],
        transport=httpx.MockTransport(handler))
    assert table["status"].tolist() == ["ok"]
    assert seen == [("https://[2606:2800:220:1::1]:8443/x.jpg", "cdn.example:8443",
                     "cdn.example")]


def test_rerun_merges_the_previous_table_and_retries_failures_only_when_asked(server, tmp_path):
    b = server.base
    items = _items([("g1", "g1.jpg", f"{b}/good/1.jpg"),
                    ("missing", "missing.jpg", f"{b}/missing.jpg")])
    settings = DownloadSettings(**FAST, allow_private_addresses=True)
    first = download_images(items, tmp_path, settings)
    second = download_images(items, tmp_path, settings, previous=first)
    assert second["status"].tolist() == ["exists", "http_error"]
    assert second["sha256"].iloc[0] == first["sha256"].iloc[0]
    assert second["http_status"].iloc[1] == 404
    assert server.hits == Counter({"/good/1.jpg": 1, "/missing.jpg": 1})
    third = download_images(items, tmp_path, DownloadSettings(
        **FAST, allow_private_addresses=True, retry_failed=True), previous=second)
    assert third["status"].tolist() == ["exists", "http_error"]
    assert server.hits == Counter({"/good/1.jpg": 1, "/missing.jpg": 2})


def test_placeholders_found_across_runs(server, tmp_path):
    b = server.base
    settings = DownloadSettings(**FAST, allow_private_addresses=True)
    first = download_images(_items([(f"ph{n}", f"ph{n}.jpg", f"{b}/placeholder/{n}.jpg")
                                    for n in range(3)]), tmp_path, settings)
    assert set(first["status"]) == {"placeholder"}
    more = _items([(f"ph{n}", f"ph{n}.jpg", f"{b}/placeholder/{n}.jpg") for n in range(4)])
    second = download_images(more, tmp_path, settings, previous=first)
    assert set(second["status"]) == {"placeholder"}
    assert _files(tmp_path) == []
    off = download_images(more, tmp_path / "off", DownloadSettings(
        **FAST, allow_private_addresses=True, placeholder_min_items=0))
    assert set(off["status"]) == {"ok"}


def test_interrupted_run_resumes_without_fetching_completed_images_again(
        server, tmp_path, monkeypatch):
    b = server.base
    items = _items([(f"g{n}", f"g{n}.jpg", f"{b}/good/{n}.jpg") for n in range(12)])
    settings = DownloadSettings(**{**FAST, "concurrency": 2, "per_host": 2},
                                allow_private_addresses=True)
    store = download_module._Fetcher._store
    stored = []

    def killing_store(path, body):
        if len(stored) >= 4:  # >=: two workers may both pass a check at 3
            raise KeyboardInterrupt("killed midway")
        store(path, body)
        stored.append(path.name)

    monkeypatch.setattr(download_module._Fetcher, "_store", staticmethod(killing_store))
    with pytest.raises(KeyboardInterrupt):
        download_images(items, tmp_path, settings)
    completed = _files(tmp_path)
    assert 4 <= len(completed) < 12 and set(stored) == set(completed)
    for name in completed:
        with Image.open(tmp_path / name) as image:
            image.load()

    monkeypatch.setattr(download_module._Fetcher, "_store", staticmethod(store))
    table = download_images(items, tmp_path, settings)
    assert set(table["status"]) <= {"ok", "exists"}
    assert (table["status"] == "exists").sum() == len(completed)
    assert len(_files(tmp_path)) == 12
    for name in completed:
        assert server.hits[f"/good/{name[1:-4]}.jpg"] == 1, name


def test_a_stalled_server_is_cut_by_the_timeouts(server, tmp_path):
    items = _items([(f"s{n}", f"s{n}.jpg", f"{server.base}/stall/{n}") for n in range(4)])
    started = time.monotonic()
    table = download_images(items, tmp_path, DownloadSettings(
        **{**FAST, "attempts": 1}, allow_private_addresses=True))
    assert set(table["status"]) == {"timeout"}
    assert time.monotonic() - started < 5
    assert _files(tmp_path) == []


def test_a_trickling_body_is_cut_by_the_total_timeout(server, tmp_path):
    items = _items([("drip", "drip.jpg", f"{server.base}/drip.jpg")])
    started = time.monotonic()
    table = download_images(items, tmp_path, DownloadSettings(
        **{**FAST, "attempts": 1, "total_timeout": 0.5}, allow_private_addresses=True))
    assert table["status"].tolist() == ["timeout"]
    assert "total_timeout" in table["error"].iloc[0]
    assert time.monotonic() - started < 3
    assert _files(tmp_path) == []


def test_requests_to_one_host_stay_under_per_host(server, tmp_path):
    items = _items([(f"i{n}", f"i{n}.jpg", f"{server.base}/paced/{n}") for n in range(10)])
    table = download_images(items, tmp_path, DownloadSettings(
        **{**FAST, "concurrency": 8, "per_host": 2}, allow_private_addresses=True))
    assert set(table["status"]) == {"ok"}
    assert server.most_in_flight == 2


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True), ("127.0.0.1", False), ("::1", False),
    ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False),
    ("224.0.0.1", False), ("240.0.0.1", False), ("fe80::1", False), ("fc00::1", False),
    ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True), ("ff02::1", False),
])
def test_public_addresses(address, public):
    import ipaddress

    assert download_module.is_public_address(ipaddress.ip_address(address)) is public


def test_retry_after_and_timeout_parameters():
    import email.utils

    assert download_module._retry_after("3") == 3.0
    assert download_module._retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < download_module._retry_after(later) <= 31
    settings = DownloadSettings.from_parameters({"download": True, "timeout": 5,
                                                 "accepted_content_types": None})
    assert (settings.connect_timeout, settings.read_timeout) == (5.0, 5.0)
    assert settings.accepted_content_types == ()
    with pytest.raises(Exception, match="concurrency"):
        DownloadSettings(concurrency=0)


def _certificates(folder, name):
    """A test CA and a certificate for ``name`` signed by it (PEM files)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "leaf.pem").write_bytes(
        leaf.public_bytes(pem) + key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    return folder / "ca.pem", folder / "leaf.pem"


def test_https_to_the_checked_address_verifies_the_certificate_of_the_host_name(tmp_path):
    import ssl

    ca, leaf = _certificates(tmp_path, "images.test")
    served = _Server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf)
    served.httpd.socket = context.wrap_socket(served.httpd.socket, server_side=True)
    port = served.httpd.server_address[1]
    try:
        items = _items([("right", "right.jpg", f"https://images.test:{port}/good/1.jpg"),
                        ("wrong", "wrong.jpg", f"https://other.test:{port}/good/2.jpg")])
        table = download_images(items, tmp_path / "images", DownloadSettings(
            **{**FAST, "attempts": 1}, allow_private_addresses=True, ca_bundle=str(ca)),
            resolver=lambda host, port: ["127.0.0.1"])
    finally:
        served.close()
    assert table["status"].tolist() == ["ok", "connection_error"]
    assert "certificate" in table["error"].iloc[1].lower()
    assert served.hits == Counter({"/good/1.jpg": 1})
    assert _files(tmp_path / "images") == ["right.jpg"]


def test_a_killed_process_leaves_only_whole_images_and_the_rerun_fetches_the_rest(
        server, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    folder = tmp_path / "images"
    items = _items([(f"m{n}", f"m{n}.jpg", f"{server.base}/maybe/{n}") for n in range(8)])
    items.to_parquet(tmp_path / "items.parquet")
    script = (
        "import pandas as pd, sys\n"
        "from amr_pipeline.images import DownloadSettings, download_images\n"
        f"download_images(pd.read_parquet({str(tmp_path / 'items.parquet')!r}), "
        f"{str(folder)!r}, DownloadSettings(concurrency=2, per_host=2, read_timeout=60, "
        "total_timeout=60, allow_private_addresses=True, min_side=16, progress=False))\n")
    process = subprocess.Popen([sys.executable, "-c", script],
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        deadline = time.monotonic() + 30
        while len(_files(folder) if folder.exists() else []) < 4:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    completed = _files(folder)
    assert completed == [f"m{n}.jpg" for n in range(4)]
    (folder / ".m5.jpg.deadbeef.part").write_bytes(b"\xff\xd8 half an image")  # a kill mid-write

    server.stalling = False
    table = download_images(items, folder, DownloadSettings(**FAST, allow_private_addresses=True))
    assert table["status"].tolist() == ["exists"] * 4 + ["ok"] * 4
    assert _files(folder) == [f"m{n}.jpg" for n in range(8)]
    assert all(server.hits[f"/maybe/{n}"] == 1 for n in range(4))


def test_odd_urls_and_encoded_bodies_fail_one_item_not_the_run(tmp_path):
    import gzip

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept-encoding"] == "identity"
        if request.url.path == "/gzipped.jpg":
            body = httpx.ByteStream(gzip.compress(_jpeg((1, 2, 3))))
            return httpx.Response(200, stream=body, headers={
                "Content-Type": "image/jpeg", "Content-Encoding": "gzip"})
        return httpx.Response(200, stream=httpx.ByteStream(_jpeg((4, 5, 6))),
                              headers={"Content-Type": "image/jpeg"})

    table = download_images(
        _items([("bracket", "a.jpg", "http://[::1/x.jpg"),
                ("port", "b.jpg", "http://cdn.example:99999/x.jpg"),
                ("gzipped", "c.jpg", "http://cdn.example/gzipped.jpg"),
                ("fine", "d.jpg", "http://cdn.example/fine.jpg")]),
        tmp_path, DownloadSettings(**FAST), resolver=lambda host, port: ["93.184.216.34"],
        transport=httpx.MockTransport(handler))
    assert table["status"].tolist() == ["refused_url", "refused_url", "not_an_image", "ok"]
