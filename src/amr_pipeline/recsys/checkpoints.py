"""Checkpoints of a training run: where they are stored, what they hold, whose they are.

A :class:`CheckpointStore` keeps one ``checkpoint.npz`` per run, replaced atomically.
:func:`checkpoint_arrays` / :func:`restore` turn a trainer's state, history and best model into
arrays and back; :func:`run_fingerprint` names the run (settings, pairs, initial tables and a
streamed CRC of the features c_i), so a checkpoint never resumes a different run. The trainer
(:class:`~amr_pipeline.recsys.train.BPRTrainer`) is passed in; this module does not import it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from amr_pipeline.recsys.models import HISTORY_COLUMNS, FactorModel

_CRC_ROWS = 8192  # feature rows per CRC step of the run fingerprint
# Fields left out of a run's identity: how long it runs and how rows are fed change no weight.
_NOT_IDENTITY_FIELDS = ("epochs", "eval_every", "checkpoint_every", "early_stopping_patience",
                        "feature_gather", "feature_chunk_batches")


class CheckpointStore:
    """NumPy arrays in ``<directory>/checkpoint.npz``, replaced atomically on every save."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.path = self.directory / "checkpoint.npz"

    def save(self, arrays: dict[str, np.ndarray]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        with open(partial, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path)

    def load(self) -> dict[str, np.ndarray] | None:
        if not self.path.exists():
            return None
        with np.load(self.path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def run_fingerprint(trainer, users: np.ndarray, items: np.ndarray, features) -> str:
    """Identity of a run: settings, training pairs, initial tables and the features c_i
    (re-extracted features must not resume a model trained on the old ones)."""
    settings = dataclasses.asdict(trainer.config)
    for name in _NOT_IDENTITY_FIELDS:
        settings.pop(name)
    digest = hashlib.sha256(repr(sorted(settings.items())).encode())
    digest.update(f"{trainer.n_users},{trainer.n_items},{trainer.adversary!r}".encode())
    digest.update(np.sort(users * trainer.n_items + items).tobytes())
    for value in trainer.state().values():
        digest.update(zlib.crc32(value.tobytes()).to_bytes(4, "little"))
    if trainer.config.uses_features:
        digest.update(f"{tuple(int(n) for n in features.shape)}".encode())
        digest.update(_feature_crc(features).to_bytes(4, "little"))
    return digest.hexdigest()


def _feature_crc(features) -> int:
    """CRC-32 of the float32 feature matrix, streamed over row chunks (equal to the CRC of
    the whole buffer, without ever holding it)."""
    crc = 0
    for start in range(0, len(features), _CRC_ROWS):
        block = np.ascontiguousarray(features[start : start + _CRC_ROWS], np.float32)
        crc = zlib.crc32(memoryview(block).cast("B"), crc)
    return crc


def checkpoint_arrays(trainer, epoch: int, history: list[dict], best: dict):
    """Everything a resumed run needs after ``epoch``: the trainer's tables and accumulators,
    the run fingerprint, the history so far and the best model yet."""
    arrays = {f"state/{name}": value for name, value in trainer.state().items()}
    arrays["epoch"] = np.array(epoch)
    arrays["fingerprint"] = np.array(trainer.fingerprint)
    arrays["best_score"] = np.array(best["score"], np.float64)
    arrays["best_epoch"] = np.array(best["epoch"])
    arrays["evaluations_since_best"] = np.array(best["since"])
    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    for column in HISTORY_COLUMNS:
        arrays[f"history/{column}"] = frame[column].to_numpy(np.float64)
    if best["model"] is not None:
        for name, value in _model_arrays(best["model"]).items():
            arrays[f"best/{name}"] = value
    return arrays


def _model_arrays(model: FactorModel) -> dict[str, np.ndarray]:
    arrays = {"user_factors": model.user_factors, "item_factors": model.item_factors,
              "feature_scale": np.array(model.feature_scale)}
    if model.feature_projection is not None:
        arrays["feature_projection"] = model.feature_projection
    return arrays


def restore(trainer, saved: dict, history: list, best: dict) -> int:
    """Load ``saved`` (from :func:`checkpoint_arrays`) into ``trainer``, ``history`` and
    ``best``; returns the epoch it was saved after."""
    trainer.load_state({k.split("/", 1)[1]: v for k, v in saved.items() if k.startswith("state/")})
    columns = {c: saved[f"history/{c}"] for c in HISTORY_COLUMNS}
    for row in range(len(columns["epoch"])):
        record = {c: float(columns[c][row]) for c in HISTORY_COLUMNS}
        record["epoch"] = int(record["epoch"])
        history.append(record)
    best.update(score=float(saved["best_score"]), epoch=int(saved["best_epoch"]),
                since=int(saved.get("evaluations_since_best", 0)))
    if "best/user_factors" in saved:
        best["model"] = FactorModel(
            saved["best/user_factors"],
            saved["best/item_factors"],
            saved.get("best/feature_projection"),
            float(saved["best/feature_scale"]),
        )
    return int(saved["epoch"])
