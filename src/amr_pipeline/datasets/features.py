"""Kedro datasets for item image features: image folder, feature cache, feature matrix, imports.

Example catalog entries::

    item_images:
      type: amr_pipeline.datasets.features.ImageFolderDataset
      path: data/01_raw/demo/images
    feature_cache:
      type: amr_pipeline.datasets.features.FeatureCacheDataset
      path: data/04_feature/demo/feature_cache
    item_features:
      type: amr_pipeline.datasets.features.FeatureMatrixDataset
      filepath: data/04_feature/demo/item_features.parquet   # or .arrow: memory-mapped
    item_feature_parts:
      type: amr_pipeline.datasets.features.FeaturePartsDataset
      path: data/04_feature/demo/feature_parts
      dataset: amr_pipeline.datasets.features.FeaturePartDataset
      filename_suffix: .parquet
    amazon_image_features:
      type: amr_pipeline.datasets.features.McAuleyFeaturesDataset
      filepath: data/01_raw/amazon/image_features_Clothing_Shoes_and_Jewelry.b
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import TablePreview
from kedro_datasets.partitions import PartitionedDataset

from amr_pipeline.errors import ConfigurationError, RawDataError
from amr_pipeline.item_features import (
    STORAGES,
    ItemFeatures,
    open_feature_file,
    write_feature_file,
)
from amr_pipeline.readers.features import (
    RawFeatures,
    read_id_list,
    read_mcauley_features,
    read_npy_features,
)
from amr_pipeline.vision.feature_cache import FeatureCache
from amr_pipeline.vision.images import ImageFolder

ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")


class _PathDataset(AbstractDataset):
    """A dataset over one path that the catalog never writes."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def save(self, data: Any) -> None:
        raise DatasetError(f"{type(self).__name__} is read-only in the catalog.")

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class ImageFolderDataset(_PathDataset):
    """``load()`` returns an :class:`ImageFolder`: files are stat-ed and decoded on demand."""

    def load(self) -> ImageFolder:
        if not self._path.is_dir():
            raise DatasetError(f"{self._path}: image folder not found; fix the catalog path.")
        return ImageFolder(self._path)

    def _exists(self) -> bool:
        return self._path.is_dir()


class OptionalImageFolderDataset(_PathDataset):
    """``load()`` returns an :class:`ImageFolder` whose folder may be absent (no image)."""

    def load(self) -> ImageFolder:
        return ImageFolder(self._path)

    def _exists(self) -> bool:
        return True


class FeatureCacheDataset(_PathDataset):
    """``load()`` returns the :class:`FeatureCache` in ``path`` (created on first store)."""

    def load(self) -> FeatureCache:
        return FeatureCache(self._path)

    def _exists(self) -> bool:
        return True


class FeatureMatrixDataset(AbstractDataset[ItemFeatures, ItemFeatures]):
    """:class:`ItemFeatures`, one row per item: ``item_id`` (int64) and ``features``.

    A ``filepath`` ending in ``.arrow`` (``.feather``, ``.ipc``) is an uncompressed Arrow IPC
    file with ``features`` as a standard ``fixed_size_list<float32>`` column (``storage:
    float16`` halves it), which pandas, polars, DuckDB and Spark read; ``load()`` maps it
    and returns a :class:`~amr_pipeline.item_features.MappedFeatures` that copies
    only the rows a consumer gathers (see :mod:`amr_pipeline.item_features`).

    A ``.parquet`` file holds each vector as ``fixed_size_binary[4 * D]`` (little-endian
    float32), which parquet stores without per-value levels: loading 100k x 2048 takes a
    fraction of a second, about 20x less than a ``fixed_size_list<float32>`` column (also
    accepted on load); ``load()`` returns read-only arrays. The schema metadata records
    ``{"dtype": ..., "dimension": D}``.

    ``save()`` takes :class:`ItemFeatures` or an iterable of them (chunks, written as they
    come, so the matrix never has to be in memory); it writes to a temporary file and renames
    it, so the file is whole or absent.
    """

    def __init__(self, filepath: str, storage: str = "float32", rows_per_batch: int = 16384,
                 metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self._arrow = self._filepath.suffix in ARROW_SUFFIXES
        if storage not in STORAGES or (storage != "float32" and not self._arrow):
            raise DatasetError(
                f"{self._filepath}: storage {storage!r}: choose float32, or float16 with an "
                f"Arrow file ({'/'.join(ARROW_SUFFIXES)})."
            )
        self._storage = storage
        self._rows_per_batch = int(rows_per_batch)
        self.metadata = metadata

    def load(self) -> ItemFeatures:
        if self._arrow:
            return ItemFeatures(*open_feature_file(self._filepath))
        table = pq.read_table(self._filepath, columns=["item_id", "features"])
        return ItemFeatures(table.column("item_id").to_numpy().astype(np.int64, copy=False),
                            self._matrix(table.column("features").combine_chunks()))

    def _matrix(self, column: pa.Array) -> np.ndarray:
        """``(rows, D)`` float32 view of a fixed-size binary (or fixed-size list) column."""
        if column.null_count:
            raise RawDataError(f"{self._filepath}: null feature vectors; re-run the features "
                               "pipeline to rewrite the file.")
        if pa.types.is_fixed_size_list(column.type):
            values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
            return values.reshape(len(column), column.type.list_size)
        if not pa.types.is_fixed_size_binary(column.type) or column.type.byte_width % 4:
            raise RawDataError(f"{self._filepath}: 'features' has type {column.type}, not float32 "
                               "vectors; re-run the features pipeline to rewrite the file.")
        dimension = column.type.byte_width // 4
        values = np.frombuffer(column.buffers()[1], dtype="<f4",
                               count=len(column) * dimension, offset=column.offset * 4 * dimension)
        return values.reshape(len(column), dimension)

    def save(self, data) -> None:
        chunks = [data] if isinstance(data, ItemFeatures) else data
        try:
            if self._arrow:
                write_feature_file(self._filepath, chunks, self._storage, self._rows_per_batch)
            else:
                self._save_parquet(chunks)
        except ConfigurationError as error:
            raise DatasetError(str(error)) from error

    def _save_parquet(self, chunks) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._filepath.with_name(f".{self._filepath.name}.{os.getpid()}.tmp")
        writer = None
        try:
            for item_ids, features in chunks:
                item_ids = np.asarray(item_ids, dtype=np.int64)
                features = np.ascontiguousarray(features, dtype="<f4")
                if features.ndim != 2 or len(features) != len(item_ids):
                    raise DatasetError(
                        f"{self._filepath}: expected {len(item_ids)} feature rows, got shape "
                        f"{features.shape}."
                    )
                vectors = pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(4 * features.shape[1]), len(features),
                    [None, pa.py_buffer(features)]
                )
                table = pa.table({"item_id": pa.array(item_ids), "features": vectors})
                if writer is None:
                    description = {"dtype": "float32", "dimension": int(features.shape[1])}
                    schema = table.schema.with_metadata(
                        {"amr_pipeline.features": json.dumps(description)})
                    writer = pq.ParquetWriter(temporary, schema, compression="none",
                                              use_dictionary=["item_id"],
                                              write_statistics=["item_id"])
                writer.write_table(table.cast(writer.schema))
            if writer is None:
                raise DatasetError(f"{self._filepath}: no feature rows to write.")
            writer.close()
            writer = None
            os.replace(temporary, self._filepath)
        finally:
            if writer is not None:
                writer.close()
            temporary.unlink(missing_ok=True)

    def preview(self, nrows: int = 5) -> TablePreview:
        """First rows: item id, vector norm and the first components (for kedro-viz)."""
        if self._arrow:
            item_ids, mapped = open_feature_file(self._filepath)
            rows = min(int(nrows), len(item_ids))
            vectors, ids = mapped.take(np.arange(rows)), item_ids[:rows]
        else:
            batch = next(pq.ParquetFile(self._filepath).iter_batches(batch_size=nrows), None)
            if batch is None:
                return TablePreview(pd.DataFrame().to_dict(orient="split"))
            vectors, ids = self._matrix(batch.column("features")), batch.column("item_id")
        frame = pd.DataFrame({"item_id": np.asarray(ids),
                              "norm": np.linalg.norm(vectors, axis=1)})
        for k in range(min(4, vectors.shape[1])):
            frame[f"f{k}"] = vectors[:, k]
        return TablePreview(frame.to_dict(orient="split"))

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "storage": self._storage}


class FeaturePartDataset(AbstractDataset[pa.Table, pq.ParquetFile]):
    """One part of a Ray feature extraction (see :mod:`amr_pipeline.vision.ray_features`):
    ``save()`` writes an Arrow table as uncompressed Parquet (temporary file, then rename);
    ``load()`` opens it as a memory-mapped ``pyarrow.parquet.ParquetFile``, so a reader picks
    its columns (the figures without the vectors)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> pq.ParquetFile:
        return pq.ParquetFile(self._filepath, memory_map=True)

    def save(self, data: pa.Table) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._filepath.with_name(f".{self._filepath.name}.{os.getpid()}.tmp")
        try:
            pq.write_table(data, temporary, compression="none")
            os.replace(temporary, self._filepath)
        finally:
            temporary.unlink(missing_ok=True)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class FeaturePartsDataset(PartitionedDataset):
    """A ``PartitionedDataset`` of feature parts whose ``load()`` is ``{}`` (not an error)
    while the folder holds no part yet: a first run resumes from nothing."""

    def load(self) -> dict:
        try:
            return super().load()
        except DatasetError:
            if self._list_partitions():
                raise
            return {}


class McAuleyFeaturesDataset(AbstractDataset[None, RawFeatures]):
    """Load-only ``image_features_<Category>.b``; ``load()`` returns memory-mapped RawFeatures."""

    def __init__(self, filepath: str, dimension: int = 4096,
                 metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self._dimension = int(dimension)
        self.metadata = metadata

    def load(self) -> RawFeatures:
        return read_mcauley_features(self._filepath, self._dimension)

    def save(self, data: Any) -> None:
        raise DatasetError("McAuleyFeaturesDataset is read-only: raw data is never overwritten.")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "dimension": self._dimension}


class NpyFeaturesDataset(AbstractDataset[None, RawFeatures]):
    """Load-only ``.npy`` matrix + id list (one id a line, or ``ids_column`` of a parquet/CSV)."""

    def __init__(self, filepath: str, ids_filepath: str, ids_column: str | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self._ids_filepath = Path(ids_filepath)
        self._ids_column = ids_column
        self.metadata = metadata

    def load(self) -> RawFeatures:
        ids = read_id_list(self._ids_filepath, self._ids_column)
        return read_npy_features(self._filepath, ids, str(self._ids_filepath))

    def save(self, data: Any) -> None:
        raise DatasetError("NpyFeaturesDataset is read-only: raw data is never overwritten.")

    def _exists(self) -> bool:
        return self._filepath.is_file() and self._ids_filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "ids_filepath": str(self._ids_filepath),
                "ids_column": self._ids_column}
