"""The item image features c_i: one home for the matrix, its rows and its file.

- :class:`ItemFeatures`: ``(item_ids, features)``, row ``r`` of ``features`` belonging to
  ``item_ids[r]`` (what readers, extractors and the catalog hand around).
- :class:`MappedFeatures`: a read-only float32 matrix over the memory-mapped record batches of
  a feature file; copies only the rows asked for.
- :class:`ItemRows` / :func:`feature_matrix`: the ``(n_items, D)`` c_i addressed by item id
  (items without a row read as zeros), what trainers and scorers take; :func:`take_rows`
  gathers rows from a NumPy matrix or any of these.
- :func:`write_feature_file` / :func:`open_feature_file`: the feature file, an uncompressed
  Arrow IPC file.

File layout: ``item_id`` (int64) and ``features``, a standard ``fixed_size_list<float32, D>``
column (``fixed_size_list<float16, D>`` with ``storage="float16"``, half the size), in record
batches of ``rows_per_batch`` items. pandas (``pyarrow.feather.read_table``), polars
(``read_ipc``), DuckDB and Spark read it as a table of vectors. Uncompressed, so
:func:`open_feature_file` maps it without reading it: :class:`MappedFeatures` copies only the
rows asked for, so a process holds the rows it gathers, never the whole matrix.

Core: imports neither Kedro nor TensorFlow nor :mod:`amr_pipeline.vision`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from amr_pipeline.errors import ConfigurationError, RawDataError

logger = logging.getLogger(__name__)

STORAGES = {"float32": (np.float32, pa.float32()), "float16": (np.float16, pa.float16())}
METADATA_KEY = b"amr_pipeline.features"


class ItemFeatures(NamedTuple):
    """Visual features: row ``r`` of ``features`` (float32, n x D) belongs to ``item_ids[r]``."""

    item_ids: np.ndarray
    features: np.ndarray


class MappedFeatures:
    """A read-only ``(rows, D)`` float32 matrix over memory-mapped record batches.

    Indexing (``features[rows]`` with an int, slice, index array or boolean mask) and
    :meth:`take` gather just those rows into a new float32 array; ``np.asarray(features)``
    gathers them all (what a dense consumer gets). float16 files are widened on the fly.
    """

    def __init__(self, batches: list[np.ndarray], source: str = "") -> None:
        self._batches = batches
        self.source = source
        sizes = [len(batch) for batch in batches]
        self._offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        self.dimension = int(batches[0].shape[1]) if batches else 0
        self.storage = str(batches[0].dtype) if batches else "float32"

    @property
    def shape(self) -> tuple[int, int]:
        return int(self._offsets[-1]), self.dimension

    dtype = np.dtype(np.float32)
    ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, rows, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``rows`` (int64 indices, any order, repeats allowed) as a float32 array,
        written into ``out`` (``(len(rows), D)`` float32) when given."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        if len(rows) and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} feature rows")
        rows = np.where(rows < 0, rows + len(self), rows)
        out = np.empty((len(rows), self.dimension), np.float32) if out is None else out
        batch_of = np.searchsorted(self._offsets, rows, side="right") - 1
        runs = np.r_[0, np.flatnonzero(np.diff(batch_of)) + 1, len(rows)]
        if len(runs) - 1 <= max(len(self._batches), len(rows) // 32):
            # rows in runs from one record batch (e.g. sorted): copied straight into `out`
            for low, high in zip(runs[:-1], runs[1:]):
                batch = batch_of[low]
                local = rows[low:high] - self._offsets[batch]
                if self.storage == "float32":
                    np.take(self._batches[batch], local, axis=0, out=out[low:high], mode="clip")
                else:
                    out[low:high] = self._batches[batch][local]
            return out
        order = np.argsort(batch_of, kind="stable")
        bounds = np.searchsorted(batch_of[order], np.arange(len(self._batches) + 1))
        for batch, (low, high) in enumerate(zip(bounds[:-1], bounds[1:])):
            if high > low:
                selected = order[low:high]
                out[selected] = self._batches[batch][rows[selected] - self._offsets[batch]]
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            rows, columns = key[0], key[1:]
            return self[rows][(slice(None), *columns)]
        if isinstance(key, (int, np.integer)):
            return self.take([key])[0]
        if isinstance(key, slice):
            return self.take(np.arange(*key.indices(len(self))))
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (len(self),):
                raise IndexError(f"boolean index of shape {key.shape} for {len(self)} rows")
            key = np.flatnonzero(key)
        return self.take(key)

    def __array__(self, dtype=None, copy=None):
        dense = self.take(np.arange(len(self)))
        return dense if dtype is None else dense.astype(dtype, copy=False)

    def chunks(self):
        """``(first row, float32 rows)`` per record batch, for streaming over every row."""
        for start, batch in zip(self._offsets[:-1], self._batches):
            yield int(start), np.asarray(batch, np.float32)


def write_feature_file(path: str | Path, chunks: Iterable, storage: str = "float32",
                       rows_per_batch: int = 16384) -> int:
    """Write ``(item_ids, features)`` chunks (e.g. :class:`ItemFeatures`) to ``path`` as an
    Arrow IPC file, to a temporary name first, renamed once whole. Returns the row count."""
    if storage not in STORAGES:
        raise ConfigurationError(f"feature storage must be one of {tuple(STORAGES)}, got "
                                 f"{storage!r}: set storage in the item_features catalog entry.")
    if int(rows_per_batch) < 1:
        raise ConfigurationError(f"rows_per_batch must be a positive integer, got "
                                 f"{rows_per_batch!r}.")
    numpy_type, arrow_type = STORAGES[storage]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer, rows, dimension = None, 0, None
    try:
        with pa.OSFile(str(temporary), "wb") as sink:
            for item_ids, features in chunks:
                item_ids = np.asarray(item_ids, np.int64)
                features = np.asarray(features)
                if features.ndim != 2 or len(features) != len(item_ids):
                    raise ConfigurationError(f"{path}: expected {len(item_ids)} feature rows, "
                                             f"got shape {features.shape}.")
                if dimension is None:
                    dimension = features.shape[1]
                    schema = pa.schema(
                        [("item_id", pa.int64()),
                         ("features", pa.list_(pa.field("item", arrow_type), dimension))],
                        metadata={METADATA_KEY: json.dumps(
                            {"dtype": storage, "dimension": int(dimension)})})
                    writer = pa.ipc.new_file(sink, schema)
                elif features.shape[1] != dimension:
                    raise ConfigurationError(f"{path}: chunks of {dimension} and "
                                             f"{features.shape[1]} dimensions.")
                for start in range(0, len(item_ids), int(rows_per_batch)):
                    part = slice(start, start + int(rows_per_batch))
                    values = np.ascontiguousarray(features[part], numpy_type).reshape(-1)
                    vectors = pa.FixedSizeListArray.from_arrays(pa.array(values, arrow_type),
                                                                int(dimension))
                    writer.write_batch(pa.record_batch([pa.array(item_ids[part]), vectors],
                                                       schema=schema))
                rows += len(item_ids)
            if writer is None:
                raise ConfigurationError(f"{path}: no feature rows to write.")
            writer.close()
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return rows


def open_feature_file(path: str | Path) -> tuple[np.ndarray, MappedFeatures]:
    """``(item_ids, MappedFeatures)`` of a file written by :func:`write_feature_file` (any
    Arrow IPC file with ``item_id`` and a fixed-size-list ``features`` column works)."""
    path = Path(path)
    reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
    schema = reader.schema
    if "item_id" not in schema.names or "features" not in schema.names:
        raise RawDataError(f"{path}: needs columns item_id and features; re-run the features "
                           "pipeline to rewrite the file.")
    vector_type = schema.field("features").type
    if (not pa.types.is_fixed_size_list(vector_type)
            or vector_type.value_type not in (pa.float32(), pa.float16())):
        raise RawDataError(f"{path}: 'features' has type {vector_type}, not fixed_size_list "
                           "<float32> or <float16>; re-run the features pipeline.")
    dimension = vector_type.list_size
    ids, batches = [], []
    for index in range(reader.num_record_batches):
        batch = reader.get_batch(index)
        vectors = batch.column("features")
        if vectors.null_count:
            raise RawDataError(f"{path}: null feature vectors; re-run the features pipeline.")
        values = vectors.values.slice(vectors.offset * dimension, len(vectors) * dimension)
        batches.append(values.to_numpy(zero_copy_only=True).reshape(len(vectors), dimension))
        ids.append(batch.column("item_id").to_numpy())
    item_ids = np.concatenate(ids).astype(np.int64, copy=False) if ids else np.zeros(0, np.int64)
    if not batches:
        batches = [np.zeros((0, dimension), np.float32)]
    return item_ids, MappedFeatures(batches, str(path))


class ItemRows:
    """Feature rows addressed by item id: ``(n_items, D)`` over any row source with ``take``
    (:class:`MappedFeatures`) or a NumPy matrix; items without a row read as zeros.

    What a trainer needs to stay out of core: ``ItemRows(item_ids, features, n_items)``
    (built by :func:`feature_matrix`), then ``take(rows)`` for each chunk of batches.
    Supports the same indexing as :class:`MappedFeatures`.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, item_ids, features, n_items: int) -> None:
        item_ids = np.asarray(item_ids, np.int64)
        self.n_items, self.dimension = int(n_items), int(features.shape[1])
        self._source = features
        inside = (item_ids >= 0) & (item_ids < self.n_items)
        self._row = np.full(self.n_items, -1, np.int64)
        self._row[item_ids[inside]] = np.flatnonzero(inside)
        self.identity = bool(len(item_ids) == self.n_items
                             and np.array_equal(item_ids, np.arange(self.n_items)))

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_items, self.dimension

    @property
    def missing(self) -> int:
        """How many items have no feature row (they score with zeros)."""
        return int((self._row < 0).sum())

    def __len__(self) -> int:
        return self.n_items

    def take(self, items, out: np.ndarray | None = None) -> np.ndarray:
        """Feature rows of ``items`` (zeros for items without one), into ``out`` if given."""
        items = np.asarray(items, np.int64).reshape(-1)
        rows = self._row[items]
        out = np.empty((len(items), self.dimension), np.float32) if out is None else out
        found = rows >= 0
        if found.all():
            return take_rows(self._source, rows, out)
        out[~found] = 0.0
        if found.any():
            out[found] = take_rows(self._source, rows[found])
        return out

    __getitem__ = MappedFeatures.__getitem__
    __array__ = MappedFeatures.__array__


def feature_matrix(item_features, items: pd.DataFrame) -> ItemRows:
    """The (n_items, D) features c_i in ``item_id`` order, items without a row as zeros,
    addressed in place (a memory-mapped ``.arrow`` file stays on disk): consumers gather the
    rows they need (:class:`ItemRows`)."""
    rows = ItemRows(item_features.item_ids, item_features.features, len(items))
    if rows.missing:
        logger.warning("%d items have no image feature row and score with zeros.", rows.missing)
    return rows


def take_rows(source, rows, out: np.ndarray | None = None) -> np.ndarray:
    """``source[rows]`` as float32 (into ``out`` if given) for a NumPy matrix or anything with
    ``take(rows, out=...)`` (:class:`MappedFeatures`, :class:`ItemRows`)."""
    if not isinstance(source, np.ndarray):
        return source.take(rows, out=out)
    if out is None or source.dtype != np.float32:
        gathered = np.take(source, rows, axis=0).astype(np.float32, copy=False)
        if out is None:
            return gathered
        out[...] = gathered
        return out
    if len(rows) and (np.min(rows) < 0 or np.max(rows) >= len(source)):
        raise IndexError(f"row index out of range for {len(source)} feature rows")
    return np.take(source, rows, axis=0, out=out, mode="clip")
