"""Download item images from their URLs into an image folder, with a status table.

:func:`download_images` takes rows ``(item_raw_id, image, url)`` (``image``: the file name
relative to the folder) and returns one status row per item (columns ``STATUS_COLUMNS``), in
the spirit of img2dataset's per-sample status table. ``status`` is one of

``ok`` (fetched now), ``exists`` (the file was already there), ``http_error`` (a status other
than 200, a redirect loop or too many redirects), ``timeout``, ``connection_error`` (DNS,
refused, reset, a body cut short), ``not_an_image`` (content type not accepted, or Pillow cannot
decode the body completely), ``too_large`` (over ``max_bytes``, or a header declaring more than
``max_image_pixels`` pixels), ``too_small`` (shorter side under ``min_side``), ``placeholder``
(the same bytes as at least ``placeholder_min_items`` items: the site's "no image" picture) and
``refused_url`` (not http/https, no URL, credentials in the URL, a host resolving to a
loopback/private/link-local/reserved/multicast address, or an image name leaving the folder).

Design
------
* **Threads, not asyncio.** A synchronous :class:`httpx.Client` shared by a thread pool of
  ``concurrency`` workers: validating an image (Pillow decoding) is CPU work in C that releases
  the GIL, retries use tenacity's plain ``Retrying``, and the code stays callable from a Kedro
  node (or a Ray task) without an event loop. At the sizes this project needs (thousands to a
  few hundred thousand images, bounded by the remote host's rate, not by local threads) a
  pool of tens of threads costs nothing measurable; ``per_host`` semaphores keep any one host
  under its own limit, whatever ``concurrency`` is.
* **Retries** (tenacity): 429, 5xx, timeouts and connection errors are retried with full-jitter
  exponential backoff (``backoff`` * 2^n, at most ``max_backoff``), or after ``Retry-After``
  seconds (or HTTP date) when the server sends it (at most ``max_retry_after``), up to
  ``attempts`` attempts in all; ``attempts`` in the table counts them. Other 4xx are final.
* **Address checks, no DNS rebinding.** Only http/https. The host is resolved once per hop;
  if any address is not public the URL is ``refused_url`` (unless
  ``allow_private_addresses``), and the request then goes to the first checked address: the URL
  is rewritten to that IP, the ``Host`` header keeps the original name, and for https the
  original name is sent as SNI and checked against the certificate (httpcore's ``sni_hostname``
  request extension), so TLS verification is unchanged (certifi's CAs, or ``ca_bundle``).
  Redirects are never followed by httpx: each ``Location`` (at most ``max_redirects`` hops, a
  URL seen twice is a loop) goes through the same checks. Environment proxies are ignored
  (``trust_env=False``): a proxy would connect to whatever it resolves. Caveat: pooled https
  connections are keyed by IP, so a second host name on the same IP may reuse a connection
  whose certificate was checked for the first.
* **Memory.** A body is held in memory until validated: at most ``concurrency`` x
  ``max_bytes`` (16 x 10 MiB by default).
* **Content.** The ``Content-Type`` must be ``image/*`` (not SVG) or one of
  ``accepted_content_types``; the body is asked for and read without content coding
  (``Accept-Encoding: identity``, raw bytes: a gzip-encoded body is not an image).
  ``application/octet-stream`` is *refused* by default
  (``not_an_image``): the sites this project reads (Pinterest's and Amazon's CDNs) label their
  images properly, so an unlabelled body more often is an error page or an archive; add it to
  ``accepted_content_types`` to accept it (the body is still decoded, so nothing but an image
  is ever kept). The body is streamed and dropped past ``max_bytes`` (also when
  ``Content-Length`` already says so); each attempt has a ``total_timeout`` besides the connect
  and read timeouts, so a trickling server cannot hold a worker. Pillow must open the header,
  the declared pixel count must be at most ``max_image_pixels`` (default
  ``PIL.Image.MAX_IMAGE_PIXELS``) before anything is decoded, then ``load()`` must decode it
  completely. The bytes are stored as received (never re-encoded).
* **Files.** A body is written to ``.<name>.<random>.part`` next to its final name and renamed
  (``os.replace``) only once complete and valid, so a killed run never leaves a partial image
  under a real name (left-over ``.part`` files are removed at the next start; no fsync, so a
  power cut is not covered). Nothing is ever substituted for a failed image.
* **Placeholders.** Equal sha256 on at least ``placeholder_min_items`` items (0: off), counting
  this run's and the previous table's rows, marks them all ``placeholder`` and deletes their
  files.
* **Resume.** An item whose file exists is ``exists`` (hashed unless the previous table already
  has its size and hash); a previous failure is kept as it was unless ``retry_failed``; every
  other item is fetched. Pass the previous table as ``previous``: it is merged, not lost.
"""

from __future__ import annotations

import email.utils
import hashlib
import io
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import pandas as pd
from PIL import Image, ImageFile
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential
from tqdm.auto import tqdm

from amr_pipeline.errors import ConfigurationError

logger = logging.getLogger(__name__)

STATUSES = ("ok", "exists", "http_error", "timeout", "connection_error", "not_an_image",
            "too_large", "too_small", "placeholder", "refused_url")
GOOD_STATUSES = ("ok", "exists")
FAILED_STATUSES = tuple(s for s in STATUSES if s not in GOOD_STATUSES)
STATUS_COLUMNS = ("item_raw_id", "image", "url", "status", "http_status", "error", "bytes",
                  "sha256", "width", "height", "attempts", "seconds")
REDIRECT_CODES = (301, 302, 303, 307, 308)
PART_SUFFIX = ".part"
CHUNK = 64 * 1024

Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class DownloadSettings:
    """Everything :func:`download_images` can be told (``images`` parameters, see
    ``conf/base/parameters_images.yml``)."""

    concurrency: int = 16
    per_host: int = 8
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 120.0
    attempts: int = 4
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_retry_after: float = 60.0
    max_redirects: int = 5
    max_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int | None = None
    min_side: int = 32
    user_agent: str = "amr-pipeline image fetcher (research reproduction of AMR)"
    allow_private_addresses: bool = False
    retry_failed: bool = False
    placeholder_min_items: int = 3
    accepted_content_types: tuple[str, ...] = field(default_factory=tuple)
    ca_bundle: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        positive = ("concurrency", "per_host", "attempts", "max_bytes")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigurationError(f"images.{name} must be at least 1, got "
                                         f"{getattr(self, name)!r}.")
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if not float(getattr(self, name)) > 0:
                raise ConfigurationError(f"images.{name} must be positive seconds.")
        if self.max_redirects < 0 or self.min_side < 0 or self.placeholder_min_items < 0:
            raise ConfigurationError("images.max_redirects, min_side and placeholder_min_items "
                                     "must not be negative.")
        object.__setattr__(self, "accepted_content_types",
                           tuple(str(t).lower().strip() for t in self.accepted_content_types))

    @classmethod
    def from_parameters(cls, parameters: Mapping) -> DownloadSettings:
        """Settings from the ``images`` parameters; ``timeout`` is seconds (connect and read)
        or ``{connect, read, total}``; keys that are not settings (``download``) are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in parameters.items() if k in known}
        timeout = parameters.get("timeout")
        if isinstance(timeout, Mapping):
            for key in ("connect", "read", "total"):
                if key in timeout:
                    values[f"{key}_timeout"] = float(timeout[key])
        elif timeout is not None:
            values["connect_timeout"] = values["read_timeout"] = float(timeout)
        if "accepted_content_types" in values:
            values["accepted_content_types"] = tuple(values["accepted_content_types"] or ())
        return cls(**values)

    @property
    def pixel_limit(self) -> int | None:
        return Image.MAX_IMAGE_PIXELS if self.max_image_pixels is None else self.max_image_pixels


class _Failure(Exception):
    """A final or retryable failure of one attempt, with the status it maps to."""

    def __init__(self, status: str, error: str, http_status: int | None = None,
                 retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.http_status = status, error, http_status
        self.retryable, self.retry_after = retryable, retry_after


class _Stopped(Exception):
    """The run is being interrupted: give up this item without a status."""


@dataclass(frozen=True)
class _Target:
    request_url: str
    host_header: str
    sni_hostname: str | None
    host: str


def default_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for loopback, private, link-local, reserved, multicast, unspecified, shared and
    other non-global addresses (an IPv4-mapped IPv6 address is judged by its IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (address.is_private or address.is_loopback or address.is_link_local
                or address.is_reserved or address.is_multicast or address.is_unspecified
                or not address.is_global)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _image_path(folder: Path, name) -> Path | None:
    """``folder / name`` when ``name`` is a plain relative path inside the folder."""
    if not isinstance(name, str) or not name.strip() or "\\" in name or "\x00" in name:
        return None
    relative = PurePosixPath(name)
    if relative.is_absolute() or any(part in ("..", "") for part in relative.parts):
        return None
    return folder.joinpath(*relative.parts)


class _Fetcher:
    """Fetches one item (all attempts) with a shared client; thread-safe."""

    def __init__(self, client: httpx.Client, settings: DownloadSettings, resolver: Resolver,
                 stop: threading.Event) -> None:
        self.client, self.settings, self.resolver, self.stop = client, settings, resolver, stop
        self._host_slots: dict[str, threading.Semaphore] = {}
        self._lock = threading.Lock()
        self._accepted = set(settings.accepted_content_types)

    # -- one item -------------------------------------------------------------------------
    def fetch(self, row: dict, path: Path) -> dict:
        started = time.perf_counter()
        attempts = 0

        def attempt() -> bytes:
            nonlocal attempts
            if self.stop.is_set():
                raise _Stopped()
            attempts += 1
            return self._attempt(row["url"])

        retrying = Retrying(
            stop=stop_after_attempt(self.settings.attempts),
            retry=retry_if_exception(lambda e: isinstance(e, _Failure) and e.retryable),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        result = dict(row, http_status=None, error=None, bytes=None, sha256=None, width=None,
                      height=None)
        try:
            body = retrying(attempt)
            width, height = self._validate(body)
            self._store(path, body)
            result.update(status="ok", http_status=200, bytes=len(body),
                          sha256=hashlib.sha256(body).hexdigest(), width=width, height=height)
        except _Failure as failure:
            result.update(status=failure.status, http_status=failure.http_status,
                          error=failure.error)
        result.update(attempts=attempts, seconds=time.perf_counter() - started)
        return result

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception()
        if isinstance(failure, _Failure) and failure.retry_after is not None:
            return min(failure.retry_after, self.settings.max_retry_after)
        return wait_random_exponential(multiplier=self.settings.backoff,
                                       max=self.settings.max_backoff)(state)

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise _Stopped()

    # -- one attempt: every redirect hop ----------------------------------------------------
    def _attempt(self, url: str) -> bytes:
        seen: set[str] = set()
        current = url
        for _ in range(self.settings.max_redirects + 1):
            if current in seen:
                raise _Failure("http_error", f"redirect loop at {current}")
            seen.add(current)
            try:
                target = self._target(current)
            except ValueError as error:  # urlsplit: e.g. an unclosed IPv6 bracket
                raise _Failure("refused_url", f"invalid URL: {error}") from None
            with self._slot(target.host):
                location = self._request(target)
            if isinstance(location, bytes):
                return location
            current = urljoin(current, location)
        raise _Failure("http_error", f"more than {self.settings.max_redirects} redirects")

    def _slot(self, host: str) -> threading.Semaphore:
        with self._lock:
            slot = self._host_slots.get(host)
            if slot is None:
                slot = self._host_slots[host] = threading.Semaphore(self.settings.per_host)
            return slot

    def _target(self, url: str) -> _Target:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise _Failure("refused_url", f"scheme {scheme or '(none)'!r} is not http or https")
        if parts.username is not None or parts.password is not None:
            raise _Failure("refused_url", "credentials in the URL")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise _Failure("refused_url", "no host in the URL")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise _Failure("refused_url", "invalid port") from None
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = [ipaddress.ip_address(a.split("%")[0])
                             for a in self.resolver(host, port)]
            except (OSError, UnicodeError) as error:
                raise _Failure("connection_error", f"cannot resolve {host}: {error}",
                               retryable=True) from None
            if not addresses:
                raise _Failure("connection_error", f"{host} resolves to no address",
                               retryable=True)
        blocked = [str(a) for a in addresses if not is_public_address(a)]
        if blocked and not self.settings.allow_private_addresses:
            raise _Failure("refused_url", f"{host} resolves to non-public address "
                           f"{blocked[0]} (allow_private_addresses is off)")
        address = addresses[0]
        literal = f"[{address}]" if address.version == 6 else str(address)
        request_url = urlunsplit((scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
        return _Target(request_url, parts.netloc.rpartition("@")[2],
                       host if scheme == "https" else None, host.lower())

    def _request(self, target: _Target) -> bytes | str:
        """The body of a 200 response, or the ``Location`` of a redirect."""
        settings = self.settings
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
        try:
            request = self.client.build_request(
                "GET", target.request_url, extensions=extensions,
                # identity: images are compressed already, and the body is read raw, so a
                # compressed body can never expand past max_bytes in memory
                headers={"Host": target.host_header, "Accept": "image/*, */*;q=0.1",
                         "Accept-Encoding": "identity"})
        except (httpx.InvalidURL, ValueError) as error:
            raise _Failure("refused_url", f"invalid URL: {error}") from None
        started = time.monotonic()
        try:
            response = self.client.send(request, stream=True)
        except httpx.TimeoutException as error:
            raise _Failure("timeout", f"{type(error).__name__}: {error}",
                           retryable=True) from None
        except httpx.RequestError as error:  # transport and protocol errors
            raise _Failure("connection_error", f"{type(error).__name__}: {error}",
                           retryable=True) from None
        try:
            code = response.status_code
            if code in REDIRECT_CODES:
                location = response.headers.get("location")
                if not location:
                    raise _Failure("http_error", "redirect without Location", code)
                return location
            if code == 429 or code >= 500:
                raise _Failure("http_error", f"HTTP {code}", code, retryable=True,
                               retry_after=_retry_after(response.headers.get("retry-after")))
            if code != 200:
                raise _Failure("http_error", f"HTTP {code}", code)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if not self._accepts(content_type):
                raise _Failure("not_an_image", f"content type {content_type or '(none)'!r} not "
                               "accepted (see images.accepted_content_types)", code)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > settings.max_bytes:
                raise _Failure("too_large", f"Content-Length {declared} > max_bytes "
                               f"{settings.max_bytes}", code)
            body = bytearray()
            for chunk in response.iter_raw(CHUNK):
                body += chunk
                if len(body) > settings.max_bytes:
                    raise _Failure("too_large", f"body over max_bytes {settings.max_bytes}",
                                   code)
                if time.monotonic() - started > settings.total_timeout:
                    raise _Failure("timeout", f"body not complete within total_timeout "
                                   f"{settings.total_timeout:g}s", code, retryable=True)
                if self.stop.is_set():
                    raise _Stopped()
            return bytes(body)
        except httpx.TimeoutException as error:
            raise _Failure("timeout", f"{type(error).__name__}: {error}", response.status_code,
                           retryable=True) from None
        except httpx.RequestError as error:
            raise _Failure("connection_error", f"{type(error).__name__}: {error}",
                           response.status_code, retryable=True) from None
        finally:
            response.close()

    def _accepts(self, content_type: str) -> bool:
        if content_type in self._accepted:
            return True
        return content_type.startswith("image/") and content_type != "image/svg+xml"

    # -- validation and storage -------------------------------------------------------------
    def _validate(self, body: bytes) -> tuple[int, int]:
        limit = self.settings.pixel_limit
        try:
            image = Image.open(io.BytesIO(body))
        except Image.DecompressionBombError as error:
            raise _Failure("too_large", f"decompression bomb: {error}", 200) from None
        except Exception as error:  # noqa: BLE001 - any decoder error means "not an image"
            raise _Failure("not_an_image", f"not an image Pillow reads: {error}", 200) from None
        with image:
            width, height = image.size
            if limit is not None and width * height > limit:
                raise _Failure("too_large", f"{width}x{height} pixels is over max_image_pixels "
                               f"{limit}", 200)
            try:
                image.load()
            except Exception as error:  # noqa: BLE001
                raise _Failure("not_an_image", f"cannot decode the image completely "
                               f"(truncated or corrupt): {error}", 200) from None
        if min(width, height) < self.settings.min_side:
            raise _Failure("too_small", f"{width}x{height}: shorter side under min_side "
                           f"{self.settings.min_side}", 200)
        return width, height

    @staticmethod
    def _store(path: Path, body: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}{PART_SUFFIX}")
        try:
            with open(temporary, "wb") as stream:
                stream.write(body)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


def _existing(path: Path, row: dict, previous: dict | None) -> dict:
    """The status row of an image already in the folder."""
    size = path.stat().st_size
    result = dict(row, status="exists", http_status=None, error=None, bytes=size, sha256=None,
                  width=None, height=None, attempts=0, seconds=0.0)
    if previous is not None and previous.get("status") in GOOD_STATUSES \
            and _number(previous.get("bytes")) == size and isinstance(previous.get("sha256"), str):
        result.update(sha256=previous["sha256"], width=_number(previous.get("width")),
                      height=_number(previous.get("height")))
        return result
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    result["sha256"] = digest.hexdigest()
    try:
        with Image.open(path) as image:
            result["width"], result["height"] = image.size
    except Exception:  # noqa: BLE001 - the size is informative only
        pass
    return result


def _number(value):
    return None if value is None or pd.isna(value) else int(value)


def _remove_stale_parts(folder: Path) -> None:
    for part in folder.rglob(f".*{PART_SUFFIX}"):
        part.unlink(missing_ok=True)


def status_counts(table: pd.DataFrame) -> dict[str, int]:
    """``{status: count}`` over every status (zeros included)."""
    counts = Counter(table["status"]) if len(table) else Counter()
    return {status: int(counts.get(status, 0)) for status in STATUSES}


def failures(counts: dict[str, int]) -> tuple[int, str]:
    """How many items of :func:`status_counts` ``counts`` have no image, and which statuses
    (``"not_found 2, too_large 1"``)."""
    failed = {status: count for status, count in counts.items()
              if count and status not in ("ok", "exists")}
    return sum(failed.values()), ", ".join(f"{status} {count}" for status, count in failed.items())


def _table(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(STATUS_COLUMNS))
    for column in ("item_raw_id", "image", "url", "status", "error", "sha256"):
        frame[column] = frame[column].astype("str")
    for column in ("http_status", "bytes", "width", "height"):
        frame[column] = pd.array(
            [None if v is None or pd.isna(v) else int(v) for v in frame[column]], dtype="Int64")
    frame["attempts"] = frame["attempts"].fillna(0).astype("int64")
    frame["seconds"] = frame["seconds"].fillna(0.0).astype("float64")
    return frame


def download_images(
    items: pd.DataFrame,
    folder: str | os.PathLike,
    settings: DownloadSettings | None = None,
    previous: pd.DataFrame | None = None,
    resolver: Resolver | None = None,
    transport: httpx.BaseTransport | None = None,
    executor=None,
    partition_size: int = 256,
) -> pd.DataFrame:
    """Fetch every image of ``items`` (``item_raw_id``, ``image``, ``url``) missing from
    ``folder``; return the status table (``STATUS_COLUMNS``, one row per item, in order).

    ``previous``: the status table of an earlier run (merged: failures are kept unless
    ``settings.retry_failed``). ``resolver(host, port) -> [address]`` replaces DNS (tests);
    ``transport`` replaces httpx's network transport (tests, benchmarks).

    ``executor`` (:mod:`amr_pipeline.distributed`; default: this process) fetches the items in
    partitions of ``partition_size``, each partition one task with its own client and thread
    pool, writing into ``folder`` (which every worker must see: one machine, or shared
    storage); the status rows come back in item order and placeholders are marked here, over
    all partitions. ``concurrency`` and ``per_host`` hold per task, so one host sees up to
    ``per_host`` x the tasks in flight (``RayExecutor.in_flight``): lower ``per_host`` or the
    tasks in flight for a cluster.
    """
    settings = settings or DownloadSettings()
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ConfigurationError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process, so truncated images "
            "would pass as valid; unset it before downloading images.")
    missing = {"item_raw_id", "image", "url"} - set(items.columns)
    if missing:
        raise ConfigurationError(f"items need columns item_raw_id, image and url; missing "
                                 f"{sorted(missing)}.")
    duplicated = items["image"].dropna()
    duplicated = duplicated[duplicated.duplicated()]
    if len(duplicated):
        raise ConfigurationError(f"{len(duplicated)} image names are given to several items "
                                 f"(first: {duplicated.iloc[0]!r}); each item needs its own file.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(folder)
    before: dict[str, dict] = {}
    if previous is not None and len(previous):
        before = {str(r["item_raw_id"]): r for r in previous.to_dict("records")}

    results: list[dict | None] = []
    to_fetch: list[tuple[int, dict, Path]] = []
    for row in items[["item_raw_id", "image", "url"]].to_dict("records"):
        row = {key: (None if value is None or pd.isna(value) else str(value))
               for key, value in row.items()}
        earlier = before.get(row["item_raw_id"])
        path = _image_path(folder, row["image"])
        if path is None:
            results.append(_failed(row, "refused_url", "no URL and no image name"
                                   if not row["url"] and not row["image"] else
                                   f"image name {row['image']!r} is not a relative path "
                                   "inside the image folder"))
        elif path.is_file():
            results.append(_existing(path, row, earlier))
        elif not row["url"]:
            results.append(_failed(row, "refused_url", "no URL"))
        elif (earlier is not None and earlier.get("status") in FAILED_STATUSES
              and not settings.retry_failed and earlier.get("url") == row["url"]):
            results.append({**{c: earlier.get(c) for c in STATUS_COLUMNS}, **row})
        else:
            to_fetch.append((len(results), row, path))
            results.append(None)

    if to_fetch and (executor is None or executor.name == "local"):
        _fetch_all(to_fetch, results, settings, resolver or default_resolver, transport)
    elif to_fetch:
        if int(partition_size) < 1:
            raise ConfigurationError(f"images.partition_size must be at least 1, got "
                                     f"{partition_size!r}.")
        blocks = [to_fetch[start:start + int(partition_size)]
                  for start in range(0, len(to_fetch), int(partition_size))]
        fetched = executor.map(fetch_partition, [[(row, path) for _, row, path in block]
                                                 for block in blocks],
                               settings, resolver, transport)
        for block, rows in zip(blocks, fetched):
            for (index, _, _), row in zip(block, rows):
                results[index] = row
    table = _table(_mark_placeholders(results, folder, settings.placeholder_min_items,
                                      before.values()))
    counts = status_counts(table)
    logger.info("Image downloads into %s: %d items, %d fetched now; %s.", folder, len(table),
                len(to_fetch), ", ".join(f"{s} {n}" for s, n in counts.items() if n))
    return table


def fetch_partition(block: list[tuple[dict, Path]], settings: DownloadSettings,
                    resolver: Resolver | None = None, transport=None) -> list[dict]:
    """Fetch one partition's ``(row, path)`` pairs (a Ray task, or this process) and return
    their status rows in order: the same fetch as a local run, with its own client."""
    results: list[dict | None] = [None] * len(block)
    _fetch_all([(index, row, path) for index, (row, path) in enumerate(block)], results,
               settings, resolver or default_resolver, transport)
    return results


def _failed(row: dict, status: str, error: str) -> dict:
    return dict(row, status=status, http_status=None, error=error, bytes=None, sha256=None,
                width=None, height=None, attempts=0, seconds=0.0)


def _fetch_all(to_fetch, results, settings: DownloadSettings, resolver: Resolver,
               transport) -> None:
    stop = threading.Event()
    verify = (ssl.create_default_context(cafile=settings.ca_bundle) if settings.ca_bundle
              else True)
    client = httpx.Client(
        verify=verify,
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout,
                              pool=None),
        limits=httpx.Limits(max_connections=settings.concurrency,
                            max_keepalive_connections=settings.concurrency),
        follow_redirects=False, trust_env=False, transport=transport,
        headers={"User-Agent": settings.user_agent},
    )
    fetcher = _Fetcher(client, settings, resolver, stop)
    executor = ThreadPoolExecutor(max_workers=settings.concurrency,
                                  thread_name_prefix="image-download")
    progress = tqdm(total=len(to_fetch), unit="img", desc="images",
                    disable=not settings.progress)
    try:
        futures = {executor.submit(fetcher.fetch, row, path): index
                   for index, row, path in to_fetch}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            for future in done:
                results[futures[future]] = future.result()  # re-raises a worker's exception
                progress.update(1)
    except BaseException:
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)
        progress.close()
        client.close()


def _mark_placeholders(results: list[dict], folder: Path, min_items: int,
                       previous_rows) -> list[dict]:
    if not min_items:
        return results
    counts = Counter(r["sha256"] for r in results
                     if r["status"] in GOOD_STATUSES and isinstance(r["sha256"], str))
    current = {r["item_raw_id"] for r in results}
    for earlier in previous_rows:
        if earlier.get("status") == "placeholder" and isinstance(earlier.get("sha256"), str) \
                and str(earlier["item_raw_id"]) not in current:
            counts[earlier["sha256"]] += 1
    for row in results:
        if row["status"] == "placeholder" and isinstance(row["sha256"], str):
            counts[row["sha256"]] += 1
    for row in results:
        if row["status"] in GOOD_STATUSES and counts.get(row["sha256"], 0) >= min_items:
            path = _image_path(folder, row["image"])
            if path is not None:
                path.unlink(missing_ok=True)
            row.update(status="placeholder",
                       error=f"the same bytes (sha256) as {counts[row['sha256']]} items: a "
                       "placeholder, removed")
    return results
