"""MF-eALS: element-wise ALS with popularity-weighted missing data (He et al., SIGIR'16).

Minimises ``Σ_(u,i)∈R w (1 - p_u·q_i)² + Σ_(u,i)∉R c_i (p_u·q_i)² + reg (||P||² + ||Q||²)``
with missing-entry weights ``c_i = c0 f_i^α / Σ_j f_j^α`` (``f_i``: training popularity).
Every coordinate update is exact. The missing-data part is carried by the cached K x K Gram
matrices ``S^q = Σ_i c_i q_i q_iᵀ`` and ``S^p = Σ_u p_u p_uᵀ``, so one iteration costs
O((|R| + U + I) K²). Users are independent given Q (and items given P), so each coordinate f
is solved for all users (items) at once. Defaults ``c0 = 512``, ``α = 0.4`` follow the eALS
paper's reported best setting; its released code defaults to ``w0 = 10, α = 0.75,
reg = 0.01``. NumPy only; the result has the shared :class:`FactorModel` shape, no projection.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys import metrics
from amr_pipeline.recsys.models import HISTORY_COLUMNS, FactorModel, TrainResult


def missing_weights(popularity: np.ndarray, c0: float = 512.0, alpha: float = 0.4) -> np.ndarray:
    """``c_i = c0 f_i^α / Σ_j f_j^α``; zero for items never seen in training."""
    popularity = np.asarray(popularity, np.float64)
    powered = np.where(popularity > 0, popularity, 0.0) ** alpha
    powered[popularity <= 0] = 0.0
    total = powered.sum()
    return c0 * powered / total if total > 0 else powered


def eals_loss(
    model: FactorModel,
    users: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    regularization: float,
    positive_weight: float = 1.0,
) -> float:
    """The weighted loss in O((|R| + U) K²) through ``S^q`` (no dense U x I matrix)."""
    return _loss(
        model.user_factors.astype(np.float64), model.item_factors.astype(np.float64),
        np.asarray(users), np.asarray(items), np.asarray(weights, np.float64),
        regularization, positive_weight,
    )


def _loss(p, q, users, items, weights, regularization, positive_weight):
    predictions = np.einsum("nk,nk->n", p[users], q[items])
    gram = (q * weights[:, None]).T @ q
    observed = positive_weight * (1 - predictions) ** 2 - weights[items] * predictions**2
    missing = np.sum((p @ gram) * p)
    return float(observed.sum() + missing + regularization * ((p**2).sum() + (q**2).sum()))


def train_eals(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    n_factors: int = 64,
    iterations: int = 50,
    c0: float = 512.0,
    alpha: float = 0.4,
    regularization: float = 0.01,
    positive_weight: float = 1.0,
    init_stddev: float = 0.01,
    seed: int = 0,
    validation_candidates: pd.DataFrame | None = None,
    eval_every: int = 1,
    selection_metric: str = "ndcg_at_10",
    on_epoch_end: Callable[[int, dict], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fit MF-eALS; history rows as the BPR trainer's (``epoch`` = iteration, ``loss`` =
    :func:`eals_loss`); returns the best evaluated iteration by ``selection_metric`` on
    ``validation_candidates`` (the last one without them), iteration 0 (the random start)
    included."""
    counts = {"n_factors": n_factors, "iterations": iterations, "eval_every": eval_every}
    for name, value in counts.items():
        if int(value) != value or value < (0 if name == "iterations" else 1):
            raise ConfigurationError(
                f"eALS parameter {name} must be a positive integer, got {value}"
            )
    if c0 <= 0 or alpha < 0 or regularization < 0 or positive_weight <= 0:
        raise ConfigurationError(
            "eALS needs c0 > 0, alpha >= 0, regularization >= 0 and positive_weight > 0, got "
            f"c0={c0}, alpha={alpha}, regularization={regularization}, "
            f"positive_weight={positive_weight}"
        )
    if selection_metric not in ("hr_at_10", "ndcg_at_10"):
        raise ConfigurationError(
            f"selection_metric must be hr_at_10 or ndcg_at_10, got {selection_metric!r}"
        )
    pairs = train[["user_id", "item_id"]].drop_duplicates()
    users = pairs["user_id"].to_numpy(np.int64)
    items = pairs["item_id"].to_numpy(np.int64)
    if (
        len(users) == 0
        or users.max() >= n_users
        or items.max() >= n_items
        or min(users.min(), items.min()) < 0
    ):
        raise ConfigurationError(
            "train must be non-empty with ids in [0, n_users) and [0, n_items): pass the "
            "counts from the same data_processing run"
        )

    weights = missing_weights(np.bincount(items, minlength=n_items), c0, alpha)
    rng = np.random.default_rng(seed)
    # factor-major copies (K x U, K x I): coordinate f of every user / item is contiguous
    p = np.ascontiguousarray(rng.normal(0.0, init_stddev, (n_users, n_factors)).T)
    q = np.ascontiguousarray(rng.normal(0.0, init_stddev, (n_items, n_factors)).T)
    q[:, weights == 0] = 0.0
    active_users = np.bincount(users, minlength=n_users) > 0
    active_items = weights > 0
    predictions = np.einsum("kn,kn->n", p[:, users], q[:, items])
    target = positive_weight * 1.0
    scale = positive_weight - weights[items]  # w - c_i on observed entries

    history, best = [], {"score": -np.inf, "epoch": 0, "model": None}

    def evaluate(iteration: int, loss: float, seconds: float) -> dict:
        model = FactorModel(p.T.astype(np.float32), q.T.astype(np.float32))
        record = {"epoch": iteration, "loss": loss, "hr_at_10": np.nan, "ndcg_at_10": np.nan,
                  "seconds": seconds}
        score = float(iteration)
        if validation_candidates is not None:
            summary = metrics.summarise(
                metrics.rank_candidates(model, None, validation_candidates), (10,)
            )
            record.update(summary)
            score = record[selection_metric]
        if score > best["score"]:
            best.update(score=score, epoch=iteration, model=model)
        history.append(record)
        if on_epoch_end is not None:
            on_epoch_end(iteration, dict(record))
        return record

    evaluate(0, _loss(p.T, q.T, users, items, weights, regularization, positive_weight), 0.0)
    bar = tqdm(
        range(1, iterations + 1), desc="mf_eals", unit="iter", disable=not progress, leave=False
    )
    for iteration in bar:
        began = time.perf_counter()
        gram = (q * weights) @ q.T  # S^q = Σ_i c_i q_i q_iᵀ
        for f in range(n_factors):
            old, qf = p[f].copy(), q[f][items]
            partial = predictions - old[users] * qf
            numer = old * gram[f, f] - gram[f] @ p
            numer += np.bincount(users, (target - scale * partial) * qf, n_users)
            denom = np.bincount(users, scale * qf**2, n_users) + (gram[f, f] + regularization)
            p[f] = np.where(active_users, numer / denom, old)
            predictions = partial + p[f][users] * qf
        gram = p @ p.T  # S^p
        for f in range(n_factors):
            old, pf = q[f].copy(), p[f][users]
            partial = predictions - pf * old[items]
            numer = weights * (old * gram[f, f] - gram[f] @ q)
            numer += np.bincount(items, (target - scale * partial) * pf, n_items)
            denom = np.bincount(items, scale * pf**2, n_items)
            denom += weights * gram[f, f] + regularization
            q[f] = np.where(active_items, numer / denom, old)
            predictions = partial + pf * q[f][items]
        seconds = time.perf_counter() - began

        if iteration % eval_every == 0 or iteration == iterations:
            loss = _loss(p.T, q.T, users, items, weights, regularization, positive_weight)
            record = evaluate(iteration, loss, seconds)
            bar.set_postfix(loss=f"{loss:.4g}", hr10=f"{record['hr_at_10']:.4f}")

    model = best["model"]
    if model is None:
        model = FactorModel(p.T.astype(np.float32), q.T.astype(np.float32))
    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS).astype({"epoch": "int64"})
    return TrainResult(model=model, history=frame, best_epoch=int(best["epoch"]))
