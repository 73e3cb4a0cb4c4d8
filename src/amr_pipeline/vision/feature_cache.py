"""The on-disk cache of per-image feature vectors (so a resumed extraction skips done images)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd


class FeatureCache:
    """Feature vectors on disk, keyed by :meth:`key`, as ``.npz`` shards written atomically.

    Shards are only ever added, so an interrupted extraction keeps everything it flushed.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(name: str, size: int, mtime_ns: int, weights_id: str, image_size: int,
            precision: str) -> str:
        text = f"{name}\0{size}\0{mtime_ns}\0{weights_id}\0{image_size}\0{precision}"
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def model_path(self, name: str) -> Path:
        """Where a network derived for this cache (the int8 ResNet-50) is kept."""
        return self.directory / "models" / f"{name}.xml"

    def _shards(self) -> list[Path]:
        return sorted(self.directory.glob("shard-*.npz")) if self.directory.is_dir() else []

    def __len__(self) -> int:
        return sum(len(np.load(shard)["keys"]) for shard in self._shards())

    def lookup(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """``(found, features)``: a mask over ``keys`` and the cached rows of the found keys."""
        keys = np.asarray(keys, dtype=str)
        shards = self._shards()
        stored = [np.load(shard)["keys"] for shard in shards]
        if not stored:
            return np.zeros(len(keys), bool), None
        index = pd.Index(np.concatenate(stored))
        shard_of = np.repeat(np.arange(len(shards)), [len(k) for k in stored])
        row_of = np.concatenate([np.arange(len(k)) for k in stored])
        unique = ~index.duplicated()
        positions = index[unique].get_indexer(keys)
        found = positions >= 0
        shard_of, row_of = shard_of[unique][positions[found]], row_of[unique][positions[found]]
        if not found.any():
            return found, None
        features = None
        for shard in np.unique(shard_of):
            matrix = np.load(shards[shard])["features"]
            if features is None:
                features = np.empty((int(found.sum()), matrix.shape[1]), np.float32)
            features[shard_of == shard] = matrix[row_of[shard_of == shard]]
        return found, features

    def store(self, keys: Sequence[str], features: np.ndarray) -> None:
        """Write one shard (temporary file, then rename)."""
        if len(keys) == 0:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex}.npz"
        temporary = self.directory / f".{name}.tmp"
        with temporary.open("wb") as handle:
            np.savez(handle, keys=np.asarray(keys, dtype=str),
                     features=np.asarray(features, dtype=np.float32))
        os.replace(temporary, self.directory / name)
