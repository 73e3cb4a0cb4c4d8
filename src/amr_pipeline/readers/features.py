"""Import of precomputed item image features, mapped onto the items table by raw id.

Two source formats:

- McAuley's ``image_features_<Category>.b``: headerless records, each a 10-byte ASCII asin
  (space padded) followed by ``dimension`` little-endian float32 (4096 for the released files).
- A ``.npy`` matrix (n x D) plus an id list: a text file with one id per line, or one
  column of a parquet/CSV file.

Both are read through a memory map, so only the rows of items in the table are ever copied.
The result is an :class:`~amr_pipeline.item_features.ItemFeatures`.
Record numbers in messages are 1-based: record 1 is the first asin + vector of a ``.b`` file,
the first row of an ``.npy`` matrix.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from amr_pipeline.errors import ConfigurationError, RawDataError, describe_location
from amr_pipeline.item_features import ItemFeatures

logger = logging.getLogger(__name__)

ASIN_BYTES = 10
ON_MISSING = ("fail", "drop")
REPORT_LIMIT = 20
ROWS_PER_CHECK = 4096


class RawFeatures(NamedTuple):
    """Feature rows keyed by raw item id, as stored in a source file (possibly memory-mapped)."""

    raw_ids: np.ndarray
    features: np.ndarray
    source: str


def check_on_missing(on_missing: str, name: str = "on_missing") -> str:
    """Validate a ``"fail"``/``"drop"`` policy parameter."""
    if on_missing not in ON_MISSING:
        raise ConfigurationError(f"{name} must be one of {ON_MISSING}, got {on_missing!r}.")
    return on_missing


def format_problems(lines: list[str], limit: int = REPORT_LIMIT) -> str:
    """Indented list of the first ``limit`` problem lines, with a count of the rest."""
    shown = "\n".join(f"  {line}" for line in lines[:limit])
    rest = len(lines) - limit
    return shown + (f"\n  ... and {rest} more" if rest > 0 else "")


def _check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise RawDataError(f"{path}: the file is empty (0 bytes); re-download or re-export it, "
                           "or fix the catalog path.")


def read_mcauley_features(path: str | Path, dimension: int = 4096) -> RawFeatures:
    """Memory-map McAuley's ``image_features_<Category>.b`` (records: asin + float32 vector).

    A size that is not a whole number of records names the first incomplete record (1-based).
    """
    path = Path(path)
    if int(dimension) <= 0:
        raise ConfigurationError(f"dimension must be a positive integer, got {dimension!r}.")
    if not path.is_file():
        raise RawDataError(f"{path}: file not found; download it or fix the catalog path.")
    _check_not_empty(path)
    record = np.dtype([("asin", f"S{ASIN_BYTES}"), ("features", "<f4", (int(dimension),))])
    size = path.stat().st_size
    complete, extra = divmod(size, record.itemsize)
    if extra:
        raise RawDataError(
            f"{describe_location(path, complete + 1)}: truncated; the file has {size} bytes: "
            f"{complete} whole {record.itemsize}-byte records ({ASIN_BYTES}-byte asin + "
            f"{dimension} float32) and {extra} bytes of record {complete + 1}. Re-download the "
            "file, or set the feature dimension parameter if these records are not "
            f"{dimension}-dimensional."
        )
    table = np.memmap(path, dtype=record, mode="r")
    raw_ids = np.char.strip(np.char.decode(table["asin"], "ascii"))
    return RawFeatures(raw_ids.astype(str), table["features"], str(path))


def read_id_list(path: str | Path, column: str | None = None) -> np.ndarray:
    """Raw ids, one per line of a text file, or ``column`` of a parquet/CSV file."""
    path = Path(path)
    if not path.is_file():
        raise RawDataError(f"{path}: file not found; fix the catalog path of the id list.")
    _check_not_empty(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".csv"):
        if column is None:
            raise ConfigurationError(f"{path}: name the id column (ids_column) of this table.")
        frame = (pd.read_parquet(path, columns=[column]) if suffix == ".parquet"
                 else pd.read_csv(path, usecols=[column], dtype={column: str}))
        ids = frame[column].reset_index(drop=True)
        empty = (ids.isna() | (ids.astype(str).str.strip() == "")).to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0]) + 1
            raise RawDataError(f"{describe_location(path, row)}: empty id in row {row} of the "
                               "table; every row needs an id.")
    else:
        ids = pd.Series(path.read_text(encoding="utf-8").splitlines())
        ids = ids[ids.str.strip() != ""]
    return ids.astype(str).str.strip().to_numpy()


def read_npy_features(path: str | Path, raw_ids: np.ndarray, ids_source: str = "") -> RawFeatures:
    """Memory-map an ``.npy`` feature matrix whose row ``r`` belongs to ``raw_ids[r]``."""
    path = Path(path)
    if not path.is_file():
        raise RawDataError(f"{path}: file not found; fix the catalog path of the feature matrix.")
    _check_not_empty(path)
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise RawDataError(f"{path}: not a readable .npy array ({error}); re-export it.") from None
    if matrix.ndim != 2:
        raise RawDataError(f"{path}: expected a 2-D (items x D) matrix, got shape {matrix.shape}.")
    if len(raw_ids) != matrix.shape[0]:
        raise RawDataError(
            f"{path}: {matrix.shape[0]} feature rows but {len(raw_ids)} ids in "
            f"{ids_source or 'the id list'}; export the ids in the same order as the rows."
        )
    return RawFeatures(np.asarray(raw_ids, dtype=str), matrix, str(path))


def non_finite_rows(features, rows) -> np.ndarray:
    """Mask over ``rows``: which of those rows of ``features`` hold a NaN or an infinity.

    Rows are read in file order, :data:`ROWS_PER_CHECK` at a time, so a memory-mapped matrix
    is never copied whole.
    """
    rows = np.asarray(rows, dtype=np.int64)
    bad = np.zeros(len(rows), bool)
    order = np.argsort(rows, kind="stable")
    for start in range(0, len(order), ROWS_PER_CHECK):
        chunk = order[start:start + ROWS_PER_CHECK]
        bad[chunk] = ~np.isfinite(np.asarray(features[rows[chunk]])).all(axis=1)
    return bad


def map_features_to_items(
    items: pd.DataFrame, raw: RawFeatures, on_missing: str = "fail"
) -> tuple[ItemFeatures, pd.DataFrame]:
    """Pick the feature row of every item by ``item_raw_id`` (first row wins for duplicate ids).

    Items without a feature row, or whose row holds NaN or infinite values, are collected into
    one report (``item_id``, ``item_raw_id``, ``reason``; a row is named by its 1-based record
    number). ``on_missing="fail"`` raises :class:`RawDataError` listing them; ``"drop"`` logs
    the list and leaves those items out of the result. Returns ``(ItemFeatures, report)``.
    """
    check_on_missing(on_missing)
    missing_columns = {"item_id", "item_raw_id"} - set(items.columns)
    if missing_columns:
        raise ConfigurationError(f"items table lacks column(s) {sorted(missing_columns)}.")
    item_ids = items["item_id"].to_numpy(np.int64)
    item_raw = items["item_raw_id"].astype(str).to_numpy()
    first_rows = pd.Series(np.arange(len(raw.raw_ids)), index=pd.Index(raw.raw_ids))
    first_rows = first_rows[~first_rows.index.duplicated()]
    rows = first_rows.index.get_indexer(item_raw)
    reasons = np.full(len(items), "", dtype=object)
    reasons[rows < 0] = "no feature row"
    found = np.flatnonzero(rows >= 0)
    for position in found[non_finite_rows(raw.features, rows[found])]:
        reasons[position] = f"non-finite feature values, record {rows[position] + 1}"
    bad = reasons != ""
    report = pd.DataFrame({"item_id": item_ids[bad], "item_raw_id": item_raw[bad],
                           "reason": pd.Series(reasons[bad], dtype="str")})
    if len(report):
        lines = [f"item {i} ({r}): {why}" for i, r, why in report.itertuples(index=False)]
        message = (f"{len(report)} of {len(items)} items have no usable feature row in "
                   f"{raw.source}:\n")
        if on_missing == "fail":
            raise RawDataError(
                message + format_problems(lines) + "\nFix: use the feature file of the same "
                "dataset release (re-download or re-export it), or set on_missing_image: drop "
                "to leave these items out."
            )
        logger.warning("%s%s\nDropping them.", message, format_problems(lines))
    keep = ~bad
    order = np.argsort(rows[keep], kind="stable")
    chosen = rows[keep][order]
    features = np.asarray(raw.features[chosen], dtype=np.float32)[np.argsort(order, kind="stable")]
    logger.info("Imported %d x %d features from %s", *features.shape, raw.source)
    return ItemFeatures(item_ids[keep], features), report
