"""Catalog entries for on-disk stores that a node writes into while it runs.

A checkpoint store is opened through the catalog (so kedro-viz shows it and no node builds a
path), and the trainer saves into it atomically every few epochs. The tuning pipeline's selected
settings are a YAML file that may not exist yet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from kedro.io import AbstractDataset, DatasetError

from amr_pipeline.recsys.checkpoints import CheckpointStore


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


class SelectedParametersDataset(AbstractDataset[dict, dict]):
    """The tuning pipeline's selected settings as YAML; ``load()`` gives ``{}`` while no
    tuning has run, so the training pipelines fall back to ``parameters_training.yml``."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict:
        if not self._filepath.is_file():
            return {}
        try:
            document = yaml.safe_load(self._filepath.read_text()) or {}
        except yaml.YAMLError as error:
            raise DatasetError(
                f"{self._filepath} is not valid YAML ({error}). Fix: correct it, or delete it "
                "and run `kedro run --pipeline=tuning` again."
            ) from error
        if not isinstance(document, dict) or not isinstance(document.get("training", {}), dict):
            raise DatasetError(
                f"{self._filepath} must map `training` to per-model settings. Fix: delete it "
                "and run `kedro run --pipeline=tuning` again."
            )
        return document

    def save(self, data: dict) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        partial = self._filepath.with_name(f".{self._filepath.name}.partial")
        partial.write_text(yaml.safe_dump(data, sort_keys=False))
        os.replace(partial, self._filepath)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class ReplicateTablesDataset(AbstractDataset[dict, dict]):
    """Tables of replicates ``1 .. R-1`` (replicate 0 keeps the model's usual datasets):
    ``<path>/<k>/<table>.parquet`` for each table named in ``tables``.

    ``load()`` gives ``{k: {table: DataFrame}}`` (``{}`` when nothing is stored yet; a table
    missing from a replicate is left out). ``save()`` writes each file whole (temporary name,
    then rename) and removes this dataset's tables of replicates that the new data no longer
    has, so a run with fewer replicates leaves no stale ones behind; other files in ``path``
    (another model's tables) are left alone.
    """

    def __init__(self, path: str, tables: list[str], metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self._tables = list(tables)
        self.metadata = metadata

    def _replicates(self) -> list[int]:
        if not self._path.is_dir():
            return []
        return sorted(int(entry.name) for entry in self._path.iterdir()
                      if entry.is_dir() and entry.name.isdigit())

    def load(self) -> dict[int, dict[str, pd.DataFrame]]:
        loaded = {}
        for replicate in self._replicates():
            files = {table: self._path / str(replicate) / f"{table}.parquet"
                     for table in self._tables}
            tables = {table: pd.read_parquet(file) for table, file in files.items()
                      if file.is_file()}
            if tables:
                loaded[replicate] = tables
        return loaded

    def save(self, data: dict) -> None:
        unknown = {table for tables in data.values() for table in tables} - set(self._tables)
        if unknown:
            raise DatasetError(f"{self._path}: tables {sorted(unknown)} are not among "
                               f"{self._tables}; add them to the dataset's `tables`.")
        for replicate, tables in data.items():
            folder = self._path / str(int(replicate))
            folder.mkdir(parents=True, exist_ok=True)
            for table, frame in tables.items():
                partial = folder / f".{table}.parquet.partial"
                frame.to_parquet(partial, index=False)
                os.replace(partial, folder / f"{table}.parquet")
        kept = {int(replicate) for replicate in data}
        for replicate in set(self._replicates()) - kept:
            for table in self._tables:
                (self._path / str(replicate) / f"{table}.parquet").unlink(missing_ok=True)

    def _exists(self) -> bool:
        return bool(self._replicates())

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "tables": self._tables}
