"""Factor tables and scoring: the one model abstraction every recommender shares.

A score is ``ŷ_ui = p_u · (q_i + E c_i)`` (paper eq. 4), with ``p_u`` a row of
``user_factors``, ``q_i`` a row of ``item_factors`` and ``feature_projection = Eᵀ`` (D x K)
applied to the scaled image features ``c_i = features_i / feature_scale``.
MF models have no projection, DUIF has zero ``q_i``, POP has K = 1.
Cold items (never in training) keep ``q_i = 0`` and score from their features only (4.1.2).
NumPy only: loading and scoring never needs TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from amr_pipeline.errors import ConfigurationError

FEATURE_SCALE_COLUMN = "feature_scale"
HISTORY_COLUMNS = ["epoch", "loss", "hr_at_10", "ndcg_at_10", "seconds"]
_CHUNK_ROWS = 16384


def factor_columns(n_factors: int) -> list[str]:
    """``["f0", ..., "f{K-1}"]``."""
    return [f"f{k}" for k in range(n_factors)]


def feature_scale(features: np.ndarray | None, scaling: str | None = "max_abs") -> float:
    """The scalar divisor applied to raw features: their global max |x| (official AMR code)
    for ``"max_abs"``, 1 for ``None``/``"none"``."""
    if features is None or scaling in (None, "none"):
        return 1.0
    if scaling != "max_abs":
        raise ConfigurationError(
            f"feature_scaling must be 'max_abs' or 'none', got {scaling!r}: fix it in the "
            "training parameters"
        )
    peak = 0.0
    for start in range(0, len(features), _CHUNK_ROWS):
        peak = max(peak, float(np.abs(features[start : start + _CHUNK_ROWS]).max(initial=0.0)))
    return peak if peak > 0 else 1.0


@dataclass
class FactorModel:
    """``user_factors`` (U x K) ``p_u``, ``item_factors`` (I x K) ``q_i``, optional
    ``feature_projection`` (D x K) ``Eᵀ`` and the ``feature_scale`` dividing raw features."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    feature_projection: np.ndarray | None = None
    feature_scale: float = 1.0

    def __post_init__(self):
        self.user_factors = np.ascontiguousarray(self.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(self.item_factors, dtype=np.float32)
        if self.feature_projection is not None:
            self.feature_projection = np.ascontiguousarray(self.feature_projection, np.float32)
        self.feature_scale = float(self.feature_scale)
        k = self.user_factors.shape[1]
        if self.item_factors.shape[1] != k or (
            self.feature_projection is not None and self.feature_projection.shape[1] != k
        ):
            raise ConfigurationError(
                "user_factors, item_factors and feature_projection must share K columns, got "
                f"{self.user_factors.shape}, {self.item_factors.shape}, "
                f"{None if self.feature_projection is None else self.feature_projection.shape}"
            )

    @property
    def n_factors(self) -> int:
        return self.user_factors.shape[1]

    @property
    def uses_features(self) -> bool:
        return self.feature_projection is not None

    def item_vectors(self, features: np.ndarray | None = None) -> np.ndarray:
        """``q_i + E c_i`` for every item (I x K), computed once, in row chunks."""
        if self.feature_projection is None:
            return self.item_factors
        if features is None or len(features) != len(self.item_factors):
            raise ConfigurationError(
                "this model projects image features: pass `features` with one row per item "
                f"({len(self.item_factors)} rows)"
            )
        projection = self.feature_projection / np.float32(self.feature_scale)
        vectors = self.item_factors.copy()
        for start in range(0, len(vectors), _CHUNK_ROWS):
            stop = start + _CHUNK_ROWS
            vectors[start:stop] += np.asarray(features[start:stop], np.float32) @ projection
        return vectors

    def score(self, users, items, features: np.ndarray | None = None, item_vectors=None):
        """``ŷ_ui`` for aligned ``users`` and ``items`` arrays (eq. 4)."""
        vectors = self.item_vectors(features) if item_vectors is None else item_vectors
        users, items = np.asarray(users), np.asarray(items)
        return np.einsum("nk,nk->n", self.user_factors[users], vectors[items])

    def copy(self) -> FactorModel:
        projection = None if self.feature_projection is None else self.feature_projection.copy()
        return FactorModel(
            self.user_factors.copy(), self.item_factors.copy(), projection, self.feature_scale
        )

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """``user_factors`` (``user_id``, f0..), ``item_factors`` (``item_id``, f0..) and, for
        visual models, ``feature_projection`` (``feature``, f0.., ``feature_scale``)."""
        columns = factor_columns(self.n_factors)
        frames = {
            "user_factors": _frame("user_id", self.user_factors, columns),
            "item_factors": _frame("item_id", self.item_factors, columns),
        }
        if self.feature_projection is not None:
            frame = _frame("feature", self.feature_projection, columns)
            frame[FEATURE_SCALE_COLUMN] = np.float64(self.feature_scale)
            frames["feature_projection"] = frame
        return frames

    @classmethod
    def from_frames(
        cls,
        user_factors: pd.DataFrame,
        item_factors: pd.DataFrame,
        feature_projection: pd.DataFrame | None = None,
    ) -> FactorModel:
        """Inverse of :meth:`to_frames`; rows are placed by their id column."""
        users = _matrix(user_factors, "user_id", "user_factors")
        items = _matrix(item_factors, "item_id", "item_factors")
        projection, scale = None, 1.0
        if feature_projection is not None:
            projection = _matrix(feature_projection, "feature", "feature_projection")
            if FEATURE_SCALE_COLUMN in feature_projection and len(feature_projection):
                scale = float(feature_projection[FEATURE_SCALE_COLUMN].iloc[0])
        return cls(users, items, projection, scale)


@dataclass
class TrainResult:
    """A trained model (the best evaluated epoch's weights) and its history, one row per
    evaluation with ``HISTORY_COLUMNS``."""

    model: FactorModel
    history: pd.DataFrame
    best_epoch: int


def popularity_model(train: pd.DataFrame, n_users: int, n_items: int) -> FactorModel:
    """POP as factor tables (K = 1): ``p_u = 1``, ``q_i`` = training interaction count."""
    counts = np.bincount(train["item_id"].to_numpy(), minlength=n_items).astype(np.float32)
    return FactorModel(np.ones((n_users, 1), np.float32), counts[:n_items, None])


def warm_item_mask(train: pd.DataFrame, n_items: int) -> np.ndarray:
    """True for items seen in training; the others are cold (4.1.2)."""
    mask = np.zeros(n_items, dtype=bool)
    mask[train["item_id"].to_numpy()] = True
    return mask


def truncated_normal(rng: np.random.Generator, shape, stddev: float = 0.01) -> np.ndarray:
    """N(0, stddev²) redrawn beyond two deviations, like the official code's initialiser."""
    values = rng.standard_normal(shape, dtype=np.float32)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()), dtype=np.float32)
        outside = np.abs(values) > 2
    return values * np.float32(stddev)


def _frame(id_column: str, values: np.ndarray, columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=columns)
    frame.insert(0, id_column, np.arange(len(values), dtype=np.int64))
    return frame


def _matrix(frame: pd.DataFrame, id_column: str, name: str) -> np.ndarray:
    columns = [c for c in frame.columns if isinstance(c, str) and c[:1] == "f" and c[1:].isdigit()]
    columns.sort(key=lambda c: int(c[1:]))
    if id_column not in frame or not columns or columns != factor_columns(len(columns)):
        raise ConfigurationError(
            f"{name} frame needs an `{id_column}` column and factor columns f0..f(K-1), got "
            f"{list(frame.columns)[:6]}...: re-export it with FactorModel.to_frames()"
        )
    ids = frame[id_column].to_numpy()
    size = int(ids.max()) + 1 if len(ids) else 0
    if len(np.unique(ids)) != len(ids) or (len(ids) and ids.min() < 0):
        raise ConfigurationError(f"{name} frame has duplicate or negative `{id_column}` values")
    matrix = np.zeros((size, len(columns)), np.float32)
    matrix[ids] = frame[columns].to_numpy(np.float32)
    return matrix
