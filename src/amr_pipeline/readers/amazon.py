"""Reader of the Amazon product data: 2014 (McAuley et al.) and 2018 (Ni et al.) releases.

Reviews: JSON lines (``reviewerID``, ``asin``, ``unixReviewTime``) or a ratings CSV
without header (2014: user,item,rating,time; 2018: item,user,rating,time).
Meta: 2014 is one Python-literal dict per line (parsed with ``ast.literal_eval``)
with ``imUrl`` and ``categories`` (list of paths); 2018 is JSON with ``category``
(one flat path) and ``imageURLHighRes``/``imageURL`` lists. Files ending in
``.gz`` are read through gzip. The format of each meta record is recognised
from its fields, so ``version`` only matters for parsing strictness and for
the column order of a ratings CSV.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import logging
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import pandas as pd

from amr_pipeline.errors import ConfigurationError, RawDataError, describe_location
from amr_pipeline.readers import RawTables, make_interactions, make_items

logger = logging.getLogger(__name__)

VERSIONS = ("2014", "2018", "auto")
CATEGORY_SEPARATOR = " > "


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
            raise RawDataError(
                f"{describe_location(source, record)}: line is not valid JSON ({json_error}); "
                "the file looks truncated or corrupt: re-download it "
                "(or pass version='2014' for a Python-literal meta file)."
            ) from None
        try:
            value = ast.literal_eval(line)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise RawDataError(
                f"{describe_location(source, record)}: line is neither JSON nor a Python "
                "literal dict; the file looks truncated or corrupt: re-download it."
            ) from None
    if not isinstance(value, dict):
        raise RawDataError(
            f"{describe_location(source, record)}: expected one object per line, got "
            f"{type(value).__name__}; check that this is an Amazon reviews/meta file."
        )
    return value


def _iter_raw_lines(path: Path) -> Iterator[str]:
    """Yield the lines of a (maybe gzipped) text file; a cut file raises RawDataError."""
    number = 0
    with open_text(path) as stream:
        try:
            for number, line in enumerate(stream, start=1):
                yield line
        except (EOFError, OSError, UnicodeDecodeError) as exc:
            raise RawDataError(
                f"{describe_location(path, number + 1)}: cannot read the file ({exc}); "
                "it looks truncated or corrupt: re-download it."
            ) from exc


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(1-based line number, stripped line)`` for non-blank lines."""
    for number, line in enumerate(_iter_raw_lines(path), start=1):
        line = line.strip()
        if line:
            yield number, line


def _required(record: dict, field: str, source, number: int) -> str:
    value = record.get(field)
    if value is None or value == "":
        raise RawDataError(
            f"{describe_location(source, number)}: required field {field!r} is missing; "
            "check that this is the right Amazon file (reviews vs meta)."
        )
    return str(value)


def _timestamp(value, source, number: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            raise RawDataError(
                f"{describe_location(source, number)}: timestamp {value!r} is not a Unix time; "
                "fix or remove the line."
            ) from None


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
    path: str | Path, version: str = "auto", items: Collection[str] | None = None
) -> pd.DataFrame:
    """Read reviews (JSON lines) or ratings (CSV) into the interactions table.

    ``items``, when given, keeps only interactions with those asins. For a CSV
    with ``version="auto"`` the column order is 2014's if the file name starts
    with ``ratings_``, otherwise ``version`` must be given.
    """
    path, version = Path(path), _check_version(version)
    users: list[str] = []
    item_ids: list[str] = []
    times: list[int | None] = []
    if _is_csv(path):
        user_col, item_col = (0, 1) if _csv_version(path, version) == "2014" else (1, 0)
        reader = csv.reader(_iter_raw_lines(path))
        for row in reader:
            number = reader.line_num
            if not row:
                continue
            if len(row) != 4:
                raise RawDataError(
                    f"{describe_location(path, number)}: expected 4 columns "
                    f"(user/item, item/user, rating, timestamp), got {len(row)}; "
                    "check that this is an Amazon ratings CSV without a header."
                )
            item = row[item_col]
            if items is not None and item not in items:
                continue
            users.append(row[user_col])
            item_ids.append(item)
            times.append(_timestamp(row[3], path, number))
    else:
        for number, line in _iter_lines(path):
            record = _parse_record(line, version, path, number)
            user = _required(record, "reviewerID", path, number)
            item = _required(record, "asin", path, number)
            if items is not None and item not in items:
                continue
            users.append(user)
            item_ids.append(item)
            times.append(_timestamp(record.get("unixReviewTime"), path, number))
    return make_interactions(users, item_ids, times)


def _image_url(record: dict):
    for field in ("imageURLHighRes", "imageURL", "imUrl"):
        value = record.get(field)
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, str) and v), None)
        if isinstance(value, str) and value:
            return value
    return None


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


def _read_meta(
    path: Path, version: str, category_path: list[str] | None
) -> tuple[pd.DataFrame, str | None]:
    prefilter = _line_prefilter(category_path)
    seen: set[str] = set()
    item_ids, images, categories = [], [], []
    detected = None
    duplicates = 0
    for number, line in _iter_lines(path):
        if prefilter is not None and not prefilter(line):
            continue
        record = _parse_record(line, version, path, number)
        asin = _required(record, "asin", path, number)
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
        images.append(_image_url(record))
        categories.append(CATEGORY_SEPARATOR.join(map(str, paths[0])) if paths else None)
    if duplicates:
        logger.info("Skipped %d duplicate asin records in %s (kept the first).", duplicates, path)
    if not item_ids:
        if category_path is not None:
            raise RawDataError(
                f"no item matches category path {category_path} in {path}: "
                "check the `category_path` parameter."
            )
        raise RawDataError(f"{path}: no item record found; check that this is an Amazon meta file.")
    return make_items(item_ids, images, categories), detected


def read_amazon_meta(
    path: str | Path, version: str = "auto", category_path: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read item metadata into the items table, keeping items under ``category_path``.

    ``category`` is the matched path (or the first path) joined with " > ".
    Lines that cannot contain every ``category_path`` element are skipped unparsed.
    """
    items, _ = _read_meta(Path(path), _check_version(version), _check_category_path(category_path))
    return items


def read_amazon(
    reviews: str | Path,
    meta: str | Path,
    version: str = "auto",
    category_path: Sequence[str] | None = None,
) -> RawTables:
    """Read reviews/ratings and meta into ``(interactions, items)``.

    Interactions are restricted to items kept from the meta file (those under
    ``category_path``, e.g. ``["Clothing, Shoes & Jewelry", "Women"]``; None keeps all).
    With ``version="auto"`` a ratings CSV takes its column order from the meta format.
    """
    reviews, meta = Path(reviews), Path(meta)
    version = _check_version(version)
    items, detected = _read_meta(meta, version, _check_category_path(category_path))
    reviews_version = version
    if version == "auto" and _is_csv(reviews) and detected is not None:
        reviews_version = detected
    interactions = read_amazon_reviews(
        reviews, reviews_version, items=set(items["item_raw_id"])
    )
    if interactions.empty:
        raise RawDataError(
            f"{reviews}: no review refers to an item kept from {meta}; check that both files "
            "are the same category and release, and the `category_path` parameter."
        )
    logger.info(
        "Read %d interactions on %d items from %s and %s.",
        len(interactions), len(items), reviews.name, meta.name,
    )
    return RawTables(interactions, items)
