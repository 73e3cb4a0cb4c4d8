"""Reader of the Amazon product data: 2014 (McAuley et al.) and 2018 (Ni et al.) releases.

Reviews: JSON lines (``reviewerID``, ``asin``, ``unixReviewTime``) or a ratings CSV
without header (2014: user,item,rating,time; 2018: item,user,rating,time).
Meta: 2014 is one Python-literal dict per line (parsed with ``ast.literal_eval``)
with ``imUrl`` and ``categories`` (list of paths); 2018 is JSON with ``category``
(one flat path) and ``imageURLHighRes``/``imageURL`` lists. An item's ``url`` is its image URL
(2014: ``imUrl``; 2018: the first URL of ``imageURLHighRes``, else of ``imageURL``) and its
``image`` the local file name ``<asin>.<extension>`` (extension from the URL, ``jpg`` when it
has none it knows), NA without a URL: the ``images`` pipeline downloads it there. Files ending in
``.gz`` are read through gzip. The format of each meta record is recognised
from its fields, so ``version`` only matters for parsing strictness and for
the column order of a ratings CSV.

Every line is validated, also the meta lines a cheap category test would skip: a line that is
not one record (not JSON, not a Python literal dict, a missing or empty id, a rating that is not
a number from 1 to 5, a timestamp that is not a non-negative integer) is gathered with its line
number and settled by ``on_malformed`` (``fail``, ``skip`` or ``report``). Nothing in a line is
ever executed: Python literals go through ``ast.literal_eval``. A ratings CSV has one row per
line: a quote left open at the end of a line would swallow the lines after it, so it stops the
read naming that line, whatever ``on_malformed`` says. An empty file is reported as such.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import logging
import math
import re
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pandas as pd

from amr_pipeline.errors import ConfigurationError, RawDataError, describe_location
from amr_pipeline.readers import (
    MalformedRecords,
    RawTables,
    check_on_malformed,
    make_interactions,
    make_items,
    malformed,
)

logger = logging.getLogger(__name__)

VERSIONS = ("2014", "2018", "auto")
CATEGORY_SEPARATOR = " > "
RATING_RANGE = (1.0, 5.0)


def _check_version(version: str) -> str:
    version = str(version)
    if version not in VERSIONS:
        raise ConfigurationError(f"version must be one of {VERSIONS}, got {version!r}.")
    return version


def _check_category_path(category_path: Sequence[str] | None) -> list[str] | None:
    if category_path is None:
        return None
    if isinstance(category_path, str) or not all(isinstance(c, str) for c in category_path):
        raise ConfigurationError(
            "category_path must be a list of strings, e.g. "
            f"['Clothing, Shoes & Jewelry', 'Women'], got {category_path!r}."
        )
    return list(category_path) or None


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a text file for reading, through gzip when its name ends in ``.gz``."""
    path = Path(path)
    if not path.is_file():
        raise RawDataError(f"{path}: file not found; download it or fix the catalog path.")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _is_csv(path: Path) -> bool:
    suffixes = path.suffixes
    return bool(suffixes) and (suffixes[-1] == ".csv" or suffixes[-2:] == [".csv", ".gz"])


def _parse_record(line: str, version: str, source, record: int) -> dict:
    """Parse one line: strict JSON, or a Python literal unless ``version == "2018"``."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as json_error:
        if version == "2018":
            raise malformed(
                source, record, f"line is not valid JSON ({json_error}); "
                "the file looks truncated or corrupt: re-download it "
                "(or pass version='2014' for a Python-literal meta file)."
            ) from None
        try:
            value = ast.literal_eval(line)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise malformed(
                source, record, "line is neither JSON nor a Python literal dict (it is never "
                "executed); the file looks truncated, corrupt or tampered with: re-download it."
            ) from None
    if not isinstance(value, dict):
        raise RawDataError(
            f"{describe_location(source, record)}: expected one object per line, got "
            f"{type(value).__name__}; check that this is an Amazon reviews/meta file."
        )
    return value


def _iter_raw_lines(path: Path) -> Iterator[str]:
    """Yield the lines of a (maybe gzipped) text file; a cut file, or one without a single
    non-blank line, raises RawDataError."""
    number = 0
    blank = True
    with open_text(path) as stream:
        try:
            for number, line in enumerate(stream, start=1):
                blank = blank and not line.strip()
                yield line
        except (EOFError, OSError, UnicodeDecodeError) as exc:
            raise RawDataError(
                f"{describe_location(path, number + 1)}: cannot read the file ({exc}); "
                "it looks truncated or corrupt: re-download it."
            ) from exc
    if blank:
        detail = ("0 bytes" if path.stat().st_size == 0 else
                  "only blank lines" if number else "nothing once decompressed")
        raise RawDataError(f"{path}: the file is empty ({detail}); re-download it or fix the "
                           "catalog path.")


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(1-based line number, stripped line)`` for non-blank lines."""
    for number, line in enumerate(_iter_raw_lines(path), start=1):
        line = line.strip()
        if line:
            yield number, line


def _required(record: dict, field: str, source, number: int) -> str:
    """A non-empty id field (string or integer), stripped."""
    value = record.get(field)
    if value is None or value == "":
        raise malformed(
            source, number,
            f"required field {field!r} is missing; "
            "check that this is the right Amazon file (reviews vs meta)."
        )
    return _identifier(value, field, source, number)


def _identifier(value, field: str, source, number: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise malformed(
            source, number,
            f"{field} has type {type(value).__name__} ({value!r:.60}), expected text; "
            "fix or remove the line."
        )
    if not value.strip():
        raise malformed(source, number, f"{field} is empty; fix or remove the line.")
    return value.strip()


def _timestamp(value, source, number: int, required: bool = False) -> int | None:
    """A Unix time: a non-negative integer (an integral float such as ``5.0`` is accepted)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise malformed(source, number, "timestamp is empty; fix or remove the line.")
        return None
    number_value = None
    if isinstance(value, int) and not isinstance(value, bool):
        number_value = value
    elif isinstance(value, float) and value.is_integer():
        number_value = int(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number_value = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                as_float = math.nan
            if math.isfinite(as_float) and as_float.is_integer():
                number_value = int(as_float)
    if number_value is None or number_value < 0:
        raise malformed(
            source, number,
            f"timestamp {value!r:.60} is not a Unix time (a non-negative integer); "
            "fix or remove the line."
        )
    return number_value


def _rating(value, source, number: int) -> float:
    """A star rating: a number from 1 to 5."""
    rating = math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        rating = float(value)
    elif isinstance(value, str):
        try:
            rating = float(value.strip())
        except ValueError:
            pass
    low, high = RATING_RANGE
    if not low <= rating <= high:
        raise malformed(
            source, number,
            f"rating {value!r:.60} is not a number from {low:g} to {high:g}; "
            "fix or remove the line."
        )
    return rating


def _csv_version(path: Path, version: str) -> str:
    if version != "auto":
        return version
    if path.name.startswith("ratings_"):
        return "2014"
    raise ConfigurationError(
        f"{path}: cannot tell a 2014 ratings CSV (user,item,...) from a 2018 one (item,user,...); "
        "pass version='2014' or '2018'."
    )


def read_amazon_reviews(
    path: str | Path,
    version: str = "auto",
    items: Collection[str] | None = None,
    on_malformed: str = "fail",
    problems: MalformedRecords | None = None,
) -> pd.DataFrame:
    """Read reviews (JSON lines) or ratings (CSV) into the interactions table.

    ``items``, when given, keeps only interactions with those asins. For a CSV
    with ``version="auto"`` the column order is 2014's if the file name starts
    with ``ratings_``, otherwise ``version`` must be given. Every line is validated
    (ids non-empty; rating a number from 1 to 5; timestamp a non-negative integer, required
    in a CSV) and invalid lines are settled by ``on_malformed``; they are added to
    ``problems`` when given (and then not settled here).
    """
    path, version = Path(path), _check_version(version)
    check_on_malformed(on_malformed)
    found = MalformedRecords() if problems is None else problems
    users: list[str] = []
    item_ids: list[str] = []
    times: list[int | None] = []
    if _is_csv(path):
        user_col, item_col = (0, 1) if _csv_version(path, version) == "2014" else (1, 0)
        for number, row, problem in _iter_csv_rows(path):
            try:
                if problem is not None:
                    raise malformed(path, number, problem)
                if len(row) != 4:
                    raise malformed(
                        path, number,
                        f"expected 4 columns (user/item, item/user, rating, timestamp), got "
                        f"{len(row)}; check that this is an Amazon ratings CSV without a header."
                    )
                user = _identifier(row[user_col], "user id", path, number)
                item = _identifier(row[item_col], "item id", path, number)
                _rating(row[2], path, number)
                timestamp = _timestamp(row[3], path, number, required=True)
            except RawDataError as error:
                found.add(path, number, str(error))
                continue
            if items is not None and item not in items:
                continue
            users.append(user)
            item_ids.append(item)
            times.append(timestamp)
    else:
        for number, line in _iter_lines(path):
            try:
                record = _parse_record(line, version, path, number)
                user = _required(record, "reviewerID", path, number)
                item = _required(record, "asin", path, number)
                if record.get("overall") is not None:
                    _rating(record["overall"], path, number)
                timestamp = _timestamp(record.get("unixReviewTime"), path, number)
            except RawDataError as error:
                found.add(path, number, str(error))
                continue
            if items is not None and item not in items:
                continue
            users.append(user)
            item_ids.append(item)
            times.append(timestamp)
    if problems is None:
        found.settle("fail" if not users else on_malformed)
    return make_interactions(users, item_ids, times)


def _iter_csv_rows(path: Path) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """``(line number, cells, None)`` of the non-empty rows of a CSV, one row per line, or
    ``(line number, None, reason)`` for a line whose quoting is invalid within the line.

    A quote still open at the end of its line raises RawDataError naming that line: the CSV
    reader would otherwise take every line up to the next quote (or the end of the file) as
    one row, and no later line could be trusted.
    """
    state = {"start": 1, "text": "", "ended": False}

    def lines() -> Iterator[str]:
        for number, line in enumerate(_iter_raw_lines(path), start=1):
            if number == state["start"]:
                state["text"] = line
            yield line
        state["ended"] = True

    reader = csv.reader(lines(), strict=True)
    while True:
        state["start"] = start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if reader.line_num > start or state["ended"]:
                raise _unterminated_quote(path, start, reader.line_num, state["text"]) from None
            yield start, None, (f"invalid quoting ({error}); a quoted field must end with its "
                                "quote, then a comma or the end of the line: fix or remove the "
                                "line.")
            continue
        if reader.line_num > start:
            raise _unterminated_quote(path, start, reader.line_num, state["text"])
        if row:
            yield start, row, None


def _unterminated_quote(path: Path, start: int, end: int, text: str) -> RawDataError:
    swallowed = (f"lines {start} to {end} would be read as one row" if end > start
                 else "it runs to the end of the file")
    return RawDataError(
        f"{describe_location(path, start)}: unterminated quote: a '\"' opened on line {start} "
        f"({text.rstrip()!r:.80}) is not closed on that line, so {swallowed}. This stops the "
        "read whatever on_malformed_record says. Fix: close or remove the quote on line "
        f"{start} (or remove the line), or re-download the file."
    )


def _image_url(record: dict):
    for field in ("imageURLHighRes", "imageURL", "imUrl"):
        value = record.get(field)
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, str) and v), None)
        if isinstance(value, str) and value:
            return value
    return None


IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff")


def image_file_name(asin: str, url: str | None) -> str | None:
    """``<asin>.<extension>`` for an item with an image URL (characters other than letters,
    digits, ``.``, ``_`` and ``-`` in the asin become ``_``), None without one."""
    if not url:
        return None
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower().lstrip(".")
    extension = suffix if suffix in IMAGE_EXTENSIONS else "jpg"
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', asin).lstrip('.') or '_'}.{extension}"


def _category_paths(record: dict) -> list[list[str]]:
    if "categories" in record:
        paths = record["categories"] or []
        return [list(p) for p in paths if isinstance(p, (list, tuple))]
    category = record.get("category")
    if isinstance(category, (list, tuple)) and category:
        return [list(category)]
    return []


def _record_version(record: dict) -> str | None:
    if "categories" in record or "imUrl" in record:
        return "2014"
    if "category" in record or "imageURL" in record or "imageURLHighRes" in record:
        return "2018"
    return None


def _line_prefilter(category_path: list[str] | None):
    """Cheap test a line must pass to possibly match; None when it cannot be applied."""
    if not category_path or not all(
        c.isascii() and '"' not in c and "\\" not in c for c in category_path
    ):
        return None
    return lambda line: all(c in line for c in category_path)


def _python_dict_pattern(depth: int) -> str:
    """A regular expression matching only a Python literal dict whose values nest up to
    ``depth`` lists or dicts deep.

    Strings, decimal numbers, True/False/None, lists and dicts with string keys: a subset of
    what ``ast.literal_eval`` accepts, so a match proves that the line parses as a dict,
    without the cost of parsing it. Possessive quantifiers keep the match linear.
    """
    escape = r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U(?:000[0-9a-fA-F]|0010)[0-9a-fA-F]{4}|[^xuUN])"
    string = (rf"""(?:'[^'\\\n]*+(?:{escape}[^'\\\n]*+)*+'"""
              rf"""|"[^"\\\n]*+(?:{escape}[^"\\\n]*+)*+")""")
    number = (r"[-+]?(?:(?:\d++\.\d*+|\.\d++|\d++)[eE][-+]?\d++|\d++\.\d*+|\.\d++|0++|[1-9]\d*+)"
              r"(?![\w.])")
    scalar = rf"(?:{string}|{number}|(?:True|False|None)(?!\w))"

    def dict_of(value: str) -> str:
        return rf"\{{\s*+(?:{string}\s*+:\s*+{value}\s*+(?:,\s*+|(?=\}})))*+\}}"

    value = scalar
    for _ in range(depth):
        value = rf"(?:{scalar}|\[\s*+(?:{value}\s*+(?:,\s*+|(?=\])))*+\]|{dict_of(value)})"
    return dict_of(value)


_PYTHON_DICT = re.compile(_python_dict_pattern(3))
_ASIN_FIRST = re.compile(r"\{\s*'asin'\s*:\s*'[^'\\\s]")


def _is_valid_record(line: str, version: str) -> bool:
    """Whether ``line`` is certainly one well-formed record with an asin, checked cheaply.

    True lets a line that cannot match the category path be skipped unparsed; False means
    "parse it properly", which either finds it valid after all or reports it.
    """
    if line.startswith('{"'):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            return False
        return isinstance(value, dict) and isinstance(value.get("asin"), str) \
            and bool(value["asin"].strip())
    return (version != "2018" and _ASIN_FIRST.match(line) is not None
            and _PYTHON_DICT.fullmatch(line) is not None)


def _read_meta(
    path: Path, version: str, category_path: list[str] | None, problems: MalformedRecords
) -> tuple[pd.DataFrame, str | None]:
    prefilter = _line_prefilter(category_path)
    seen: set[str] = set()
    item_ids, images, urls, categories = [], [], [], []
    detected = None
    duplicates = 0
    for number, line in _iter_lines(path):
        if prefilter is not None and not prefilter(line) and _is_valid_record(line, version):
            continue
        try:
            record = _parse_record(line, version, path, number)
            asin = _required(record, "asin", path, number)
        except RawDataError as error:
            problems.add(path, number, str(error))
            continue
        detected = detected or _record_version(record)
        paths = _category_paths(record)
        if category_path is not None:
            paths = [p for p in paths if p[: len(category_path)] == category_path]
            if not paths:
                continue
        if asin in seen:
            duplicates += 1
            continue
        seen.add(asin)
        item_ids.append(asin)
        url = _image_url(record)
        urls.append(url)
        images.append(image_file_name(asin, url))
        categories.append(CATEGORY_SEPARATOR.join(map(str, paths[0])) if paths else None)
    if duplicates:
        logger.info("Skipped %d duplicate asin records in %s (kept the first).", duplicates, path)
    if not item_ids:
        problems.settle("fail")
        if category_path is not None:
            raise RawDataError(
                f"no item matches category path {category_path} in {path}: "
                "check the `category_path` parameter."
            )
        raise RawDataError(f"{path}: no item record found; check that this is an Amazon meta file.")
    return make_items(item_ids, images, categories, urls), detected


def read_amazon_meta(
    path: str | Path,
    version: str = "auto",
    category_path: Sequence[str] | None = None,
    on_malformed: str = "fail",
) -> pd.DataFrame:
    """Read item metadata into the items table, keeping items under ``category_path``.

    ``category`` is the matched path (or the first path) joined with " > ".
    A line that cannot contain every ``category_path`` element is skipped unparsed only when
    a cheap check proves it a well-formed record; every other line is parsed and validated,
    and invalid lines are settled by ``on_malformed``.
    """
    check_on_malformed(on_malformed)
    problems = MalformedRecords()
    items, _ = _read_meta(Path(path), _check_version(version),
                          _check_category_path(category_path), problems)
    problems.settle(on_malformed)
    return items


def read_amazon(
    reviews: str | Path,
    meta: str | Path,
    version: str = "auto",
    category_path: Sequence[str] | None = None,
    on_malformed: str = "fail",
) -> RawTables:
    """Read reviews/ratings and meta into ``(interactions, items)``.

    Interactions are restricted to items kept from the meta file (those under
    ``category_path``, e.g. ``["Clothing, Shoes & Jewelry", "Women"]``; None keeps all).
    With ``version="auto"`` a ratings CSV takes its column order from the meta format.
    Invalid lines of both files are gathered and settled by ``on_malformed``: ``fail`` (one
    error listing the first few), ``skip`` (logged, left out) or ``report`` (left out and
    listed in ``RawTables.problems`` for the caller to decide).
    """
    reviews, meta = Path(reviews), Path(meta)
    version = _check_version(version)
    check_on_malformed(on_malformed)
    problems = MalformedRecords()
    items, detected = _read_meta(meta, version, _check_category_path(category_path), problems)
    reviews_version = version
    if version == "auto" and _is_csv(reviews) and detected is not None:
        reviews_version = detected
    interactions = read_amazon_reviews(
        reviews, reviews_version, items=set(items["item_raw_id"]), problems=problems
    )
    problems.settle("fail" if interactions.empty else on_malformed)
    if interactions.empty:
        raise RawDataError(
            f"{reviews}: no review refers to an item kept from {meta}; check that both files "
            "are the same category and release, and the `category_path` parameter."
        )
    logger.info(
        "Read %d interactions on %d items from %s and %s.",
        len(interactions), len(items), reviews.name, meta.name,
    )
    return RawTables(interactions, items, problems)
