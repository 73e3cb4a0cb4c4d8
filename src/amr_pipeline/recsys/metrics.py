"""Leave-one-out ranking metrics (paper 4.1.2): the held-out item ranked among 999 sampled
non-interacted items; HR@N and NDCG@N averaged over users. NumPy only."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.models import FactorModel

_CHUNK_ROWS = 65_536


def rank_candidates(
    model: FactorModel,
    features: np.ndarray | None,
    candidates: pd.DataFrame,
    cold_items: np.ndarray | None = None,
    dense: bool = False,
) -> pd.DataFrame:
    """Per user: ``user_id``, ``item_id`` (the test item) and ``rank`` = how many of the user's
    negatives score ``>=`` the test item (ties count against it); ``cold`` when a boolean
    ``cold_items`` mask (one entry per item) is given. Item vectors ``q_i + E c_i`` are
    computed once; scores are batched. ``candidates`` may also be the arrays of
:func:`grouped_candidates`, to group once and rank many models. ``dense`` scores each block
    of users against every item with one matrix product and picks the candidates from it: about
    3x faster when the catalogue is a few times the candidate count (validation during
    training), the same ranks up to float rounding of near-ties."""
    grouped = candidates if isinstance(candidates, tuple) else grouped_candidates(candidates)
    users, items, is_test, starts = grouped
    vectors = model.item_vectors(features)
    user_factors = model.user_factors
    sizes = np.diff(np.r_[starts, len(users)])
    if (sizes == sizes[0]).all():
        rank = _dense_ranks if dense else _uniform_ranks
        ranks = rank(user_factors, vectors, users[starts], items.reshape(len(starts), -1))
    else:
        ranks = _ragged_ranks(user_factors, vectors, users, items, starts)
    frame = pd.DataFrame({"user_id": users[starts], "item_id": items[starts], "rank": ranks})
    if cold_items is not None:
        frame["cold"] = np.asarray(cold_items, bool)[items[starts]]
    return frame


def grouped_candidates(candidates: pd.DataFrame):
    """Validated candidate arrays ``(users, items, is_test, starts)`` sorted by user with each
    user's test item first; ``starts`` indexes each user's first row."""
    for column in ("user_id", "item_id", "is_test"):
        if column not in candidates:
            raise ConfigurationError(
                f"candidates need a `{column}` column, got {list(candidates.columns)}"
            )
    users = candidates["user_id"].to_numpy(np.int64)
    items = candidates["item_id"].to_numpy(np.int64)
    is_test = candidates["is_test"].to_numpy(bool)
    if not len(users):
        raise ConfigurationError("candidates are empty: rebuild them with data_processing")
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    if (users[1:] < users[:-1]).any() or not is_test[starts].all():
        order = np.lexsort((~is_test, users))
        users, items, is_test = users[order], items[order], is_test[order]
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    if not is_test[starts].all() or is_test.sum() != len(starts):
        raise ConfigurationError(
            "candidates must hold exactly one is_test row per user: rebuild them with "
            "data_processing"
        )
    return users, items, is_test, starts


def summarise(ranks: pd.DataFrame | np.ndarray, cutoffs: Iterable[int] = (5, 10, 20)) -> dict:
    """``{"hr_at_N": mean(rank < N), "ndcg_at_N": mean(1/log2(rank + 2) if rank < N)}``."""
    rank = np.asarray(ranks["rank"] if isinstance(ranks, pd.DataFrame) else ranks, np.float64)
    gain = 1.0 / np.log2(rank + 2.0)
    out = {}
    for cutoff in cutoffs:
        hit = rank < cutoff
        empty = not len(rank)
        out[f"hr_at_{cutoff}"] = float("nan") if empty else float(hit.mean())
        out[f"ndcg_at_{cutoff}"] = float("nan") if empty else float(np.where(hit, gain, 0).mean())
    return out


def _uniform_ranks(user_factors, vectors, users, items):
    """``items`` is (n_users, n_candidates) with the test item in column 0."""
    ranks = np.empty(len(users), np.int64)
    step = max(1, _CHUNK_ROWS // items.shape[1])
    for start in range(0, len(users), step):
        block = slice(start, start + step)
        candidates = np.take(vectors, items[block], axis=0)
        scores = np.matmul(candidates, user_factors[users[block], :, None])[..., 0]
        ranks[block] = (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
    return ranks


def _dense_ranks(user_factors, vectors, users, items):
    """As :func:`_uniform_ranks`, scoring blocks of users against all items at once."""
    ranks = np.empty(len(users), np.int64)
    step = max(1, (_CHUNK_ROWS * 16) // len(vectors))
    for start in range(0, len(users), step):
        block = slice(start, start + step)
        scores = user_factors[users[block]] @ vectors.T
        candidates = np.take_along_axis(scores, items[block], axis=1)
        ranks[block] = (candidates[:, 1:] >= candidates[:, :1]).sum(axis=1)
    return ranks


def _ragged_ranks(user_factors, vectors, users, items, starts):
    scores = np.empty(len(users), np.float32)
    for start in range(0, len(users), _CHUNK_ROWS):
        block = slice(start, start + _CHUNK_ROWS)
        scores[block] = np.einsum(
            "nk,nk->n", np.take(user_factors, users[block], axis=0),
            np.take(vectors, items[block], axis=0),
        )
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(users)]))
    beaten = scores >= scores[starts][group]
    beaten[starts] = False
    return np.bincount(group, weights=beaten, minlength=len(starts)).astype(np.int64)


# ----------------------------------------------------------------------- full ranking
_FULL_BLOCK_SCORES = 1 << 24  # user x item scores per block (64 MiB of float32)


def full_ranks(model: FactorModel, features, test: pd.DataFrame, seen: pd.DataFrame,
               item_vectors: np.ndarray | None = None) -> np.ndarray:
    """Full-ranking protocol: for each row of ``test`` (``user_id``, ``item_id``), how many
    items the user has not interacted with in ``seen`` (the training pairs; train + validation
    in the final fit) score ``>=`` the test item (ties count against it), over the whole
    catalogue. Scores are computed in blocks of users (never a users x items matrix)."""
    vectors = model.item_vectors(features) if item_vectors is None else item_vectors
    users = test["user_id"].to_numpy(np.int64)
    targets = test["item_id"].to_numpy(np.int64)
    seen_users = seen["user_id"].to_numpy(np.int64)
    seen_items = seen["item_id"].to_numpy(np.int64)
    order = np.argsort(seen_users, kind="stable")
    seen_users, seen_items = seen_users[order], seen_items[order]
    n_items = len(vectors)
    step = max(1, _FULL_BLOCK_SCORES // max(n_items, 1))
    ranks = np.empty(len(users), np.int64)
    for start in range(0, len(users), step):
        block_users = users[start:start + step]
        rows = np.arange(len(block_users))
        scores = model.user_factors[block_users] @ vectors.T
        target_scores = scores[rows, targets[start:start + step]].copy()
        low = np.searchsorted(seen_users, block_users, side="left")
        high = np.searchsorted(seen_users, block_users, side="right")
        counts = high - low
        seen_rows = np.repeat(rows, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        seen_positions = np.repeat(low, counts) + offsets
        scores[seen_rows, seen_items[seen_positions]] = -np.inf
        # the test item itself scores >= itself: subtract it
        ranks[start:start + step] = (scores >= target_scores[:, None]).sum(axis=1) - 1
    return ranks


def full_metrics(full_rank: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user full-ranking metrics: ``full_hr_at_10``, ``full_ndcg_at_10`` and
    ``full_recall_at_20`` (one held-out item, so recall@20 is its hit at 20)."""
    rank = np.asarray(full_rank, np.float64)
    return {
        "full_hr_at_10": (rank < 10).astype(np.float64),
        "full_ndcg_at_10": np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0),
        "full_recall_at_20": (rank < 20).astype(np.float64),
    }


# ------------------------------------------------------- sampled metrics, corrected
def metric_at_rank(metric: str, ranks: np.ndarray) -> np.ndarray:
    """``hr_at_N`` or ``ndcg_at_N`` of a test item with ``ranks`` items ahead of it."""
    name, _, cutoff = metric.partition("_at_")
    ranks = np.asarray(ranks, np.float64)
    hit = ranks < int(cutoff)
    if name == "hr":
        return hit.astype(np.float64)
    if name == "ndcg":
        return np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    raise ConfigurationError(f"unknown metric {metric!r}: use hr_at_N or ndcg_at_N")


def sampled_rank_probabilities(n_negatives: int, n_sampled: int, chunk: int = 2048):
    """Yield ``(full_ranks, P)`` blocks: ``P[R, r]`` = the probability that ``r`` of
    ``n_sampled`` negatives drawn without replacement from ``n_negatives`` are ahead of the test
    item when ``R`` of all negatives are (hypergeometric: C(R, r) C(N - R, n - r) / C(N, n)),
    for R = 0 .. n_negatives; log-gamma arithmetic, block by block."""
    from scipy.special import gammaln

    def log_choose(total, chosen):
        return gammaln(total + 1.0) - gammaln(chosen + 1.0) - gammaln(total - chosen + 1.0)

    sampled = np.arange(n_sampled + 1, dtype=np.float64)[None, :]
    for start in range(0, n_negatives + 1, chunk):
        full = np.arange(start, min(start + chunk, n_negatives + 1))
        ahead = full.astype(np.float64)[:, None]
        possible = (sampled <= ahead) & (n_sampled - sampled <= n_negatives - ahead)
        with np.errstate(invalid="ignore"):
            log_p = (log_choose(ahead, sampled) + log_choose(n_negatives - ahead,
                                                             n_sampled - sampled)
                     - log_choose(float(n_negatives), float(n_sampled)))
        yield full, np.where(possible, np.exp(np.where(possible, log_p, 0.0)), 0.0)


def corrected_metric(metric: str, n_negatives: int, n_sampled: int,
                     gamma: float = 0.1) -> np.ndarray:
    """Krichene and Rendle's bias-variance (BV) corrected metric (KDD 2020, "On sampled
    metrics for item recommendation", section 5): the value ``m[r]`` to credit a sampled rank
    ``r`` (r of ``n_sampled`` sampled negatives ahead) so that, under a uniform prior over the
    full rank R (0 .. ``n_negatives``),

        sum_R (E[m(r) | R] - M(R))^2 + gamma * Var[m(r) | R]

    is smallest, M being the metric at full rank R. ``gamma = 0`` is their least-squares
    (CLS) estimator. Solved in closed form: ((1 - γ) AᵀA + γ diag(Aᵀ1)) m = AᵀM with
    A[R, r] = P(r | R) (:func:`sampled_rank_probabilities`)."""
    gram = np.zeros((n_sampled + 1, n_sampled + 1))
    mass = np.zeros(n_sampled + 1)
    target = np.zeros(n_sampled + 1)
    for full, probabilities in sampled_rank_probabilities(n_negatives, n_sampled):
        gram += probabilities.T @ probabilities
        mass += probabilities.sum(axis=0)
        target += probabilities.T @ metric_at_rank(metric, full)
    system = (1.0 - gamma) * gram + gamma * np.diag(mass)
    try:
        return np.linalg.solve(system, target)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(system, target, rcond=None)[0]
