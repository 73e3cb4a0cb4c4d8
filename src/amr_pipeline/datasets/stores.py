"""Catalog entries for on-disk stores that a node writes into while it runs.

A checkpoint store is opened through the catalog (so kedro-viz shows it and no node builds a
path), and the trainer saves into it atomically every few epochs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from amr_pipeline.recsys.train import CheckpointStore


class CheckpointDataset(AbstractDataset[None, CheckpointStore]):
    """``load()`` returns the :class:`CheckpointStore` in ``path`` (created on first save)."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> CheckpointStore:
        return CheckpointStore(self._path)

    def save(self, data: Any) -> None:
        raise DatasetError("A checkpoint store is written by the trainer, not by the catalog.")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
