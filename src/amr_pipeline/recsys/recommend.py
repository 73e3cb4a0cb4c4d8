"""Top-N recommendation with a trained model: every user's best ``top_k`` items over the whole
catalogue, minus the items the user interacted with in the final training data.

Scores are ``p_u · v_i`` with ``v_i = q_i + E c_i`` computed once
(:meth:`~amr_pipeline.recsys.models.FactorModel.item_vectors`). Users are scored in blocks
(never a users x items matrix); in each block a threshold ``t`` per row that no top-``k``
item is below comes from group maxima (see :func:`top_n`), and only the candidates ``>= t`` are
sorted, by score (descending) and item id (ascending), so ties are broken by item id exactly,
even at the threshold. NumPy only. ``benchmarks/recommend_speed.py`` times it at Amazon Women
scale.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.models import FactorModel

BLOCK_SCORES = 1 << 24
"""Scores held per block of users (64 MiB of float32)."""


class TopN(NamedTuple):
    """Flat arrays, one entry per recommendation, by user then rank: ``user`` (row of the
    user factors), ``rank`` (1 = best), ``item`` and ``score``. A user with fewer than
    ``top_k`` unseen items has fewer rows."""

    user: np.ndarray
    rank: np.ndarray
    item: np.ndarray
    score: np.ndarray


class SeenItems:
    """The items each user interacted with, as sorted ``(user, item)`` arrays, looked up by
    blocks of users."""

    def __init__(self, users=None, items=None) -> None:
        users = np.zeros(0, np.int64) if users is None else np.asarray(users, np.int64)
        items = np.zeros(0, np.int64) if items is None else np.asarray(items, np.int64)
        order = np.argsort(users, kind="stable")
        self.users, self.items = users[order], items[order]

    def in_block(self, block_users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, items)``: row ``r`` of ``block_users`` interacted with ``items``."""
        low = np.searchsorted(self.users, block_users, side="left")
        high = np.searchsorted(self.users, block_users, side="right")
        counts = high - low
        rows = np.repeat(np.arange(len(block_users)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return rows, self.items[np.repeat(low, counts) + offsets]


def top_n(
    user_factors: np.ndarray,
    item_vectors: np.ndarray,
    top_k: int,
    seen: SeenItems | None = None,
    users: np.ndarray | None = None,
    block_scores: int = BLOCK_SCORES,
) -> TopN:
    """The ``top_k`` items of each of ``users`` (default: every row of ``user_factors``) by
    ``user_factors[u] · item_vectors[i]``, ``seen`` items left out, ties by item id.

    Per block of users: one matrix product into a reused buffer, then a threshold per row
    that no top-``k`` item is below: the catalogue is cut into groups of ``g`` items and the
    ``k``-th largest group maximum is taken (``np.argpartition`` over the group maxima; ``k``
    groups hold an item at least that high). Only the items at or above it are sorted, by
    score then item id. ``g = 1`` for small catalogues (the exact ``k``-th score)."""
    top_k = int(top_k)
    if top_k < 1:
        raise ConfigurationError(f"top_k must be a positive integer, got {top_k!r}")
    user_factors = np.asarray(user_factors, np.float32)
    vectors_t = np.ascontiguousarray(np.asarray(item_vectors, np.float32).T)
    n_items = vectors_t.shape[1]
    users = (np.arange(len(user_factors), dtype=np.int64) if users is None
             else np.asarray(users, np.int64))
    k = min(top_k, n_items)
    empty = TopN(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                 np.zeros(0, np.float32))
    if k == 0 or not len(users):
        return empty
    step = min(len(users), max(1, int(block_scores) // max(n_items, 1)))
    group = max(1, n_items // (16 * k))
    whole = n_items - n_items % group  # items in full groups; the rest form one more group
    buffer = np.empty((step, n_items), np.float32)
    above = np.empty((step, n_items), bool)
    parts: list[tuple[np.ndarray, ...]] = []
    for start in range(0, len(users), step):
        block_users = users[start:start + step]
        size = len(block_users)
        scores = buffer[:size]
        np.matmul(user_factors[block_users], vectors_t, out=scores)
        if seen is not None:
            rows, items = seen.in_block(block_users)
            scores[rows, items] = -np.inf
        maxima = scores[:, :whole].reshape(size, -1, group).max(axis=2)
        if whole < n_items:
            maxima = np.concatenate([maxima, scores[:, whole:].max(axis=1, keepdims=True)], 1)
        kth = min(k, maxima.shape[1])
        threshold = np.partition(maxima, maxima.shape[1] - kth, axis=1)[:, -kth]
        # no finite threshold (fewer than k unseen items): every unseen item is a candidate
        threshold = np.maximum(threshold, np.nextafter(np.float32(-np.inf), np.float32(0)))
        candidates = np.greater_equal(scores, threshold[:, None], out=above[:size])
        # row-major: item ids ascending within a row (1-d flatnonzero: 2-d nonzero is slow)
        rows, items = np.divmod(np.flatnonzero(candidates), n_items)
        values = scores[rows, items]
        order = np.lexsort((items, -values, rows))
        rows, items, values = rows[order], items[order], values[order]
        first = np.searchsorted(rows, np.arange(size))
        rank = np.arange(len(rows)) - first[rows]
        keep = rank < k
        parts.append((block_users[rows[keep]], rank[keep] + 1, items[keep], values[keep]))
    return TopN(*(np.concatenate(column) for column in zip(*parts)))


def recommend(
    model: FactorModel,
    top_k: int,
    features=None,
    seen: SeenItems | None = None,
    users: np.ndarray | None = None,
    item_vectors: np.ndarray | None = None,
) -> TopN:
    """:func:`top_n` for a :class:`FactorModel` (its ``q_i + E c_i`` from ``features``, or
    the precomputed ``item_vectors``)."""
    vectors = model.item_vectors(features) if item_vectors is None else item_vectors
    return top_n(model.user_factors, vectors, top_k, seen, users)


def new_item_vectors(model: FactorModel, features: np.ndarray) -> np.ndarray:
    """``E c_n`` for new items scored from their image features only (``q_n = 0``, as cold
    items are), with the model's ``feature_scale``."""
    features = np.asarray(features, np.float32)
    if model.feature_projection is None:
        raise ConfigurationError("this model does not use image features: new items cannot "
                                 "be scored from their images; choose a visual model")
    if features.ndim != 2 or features.shape[1] != model.feature_projection.shape[0]:
        raise ConfigurationError(
            f"new item features have shape {features.shape}, the model projects "
            f"{model.feature_projection.shape[0]}-d features")
    return features @ (model.feature_projection / np.float32(model.feature_scale))


def placements(new_scores: np.ndarray, top_scores: np.ndarray, top_k: int):
    """Where each new item would enter each user's top-N: ``new_scores`` (users x new items),
    ``top_scores`` (users x ``top_k``, descending, ``-inf`` padded). Rank (1-based) = 1 + the
    top-N items scoring ``>=`` the new item (ties against it); returns ``(user, new item,
    rank)`` for ranks ``<= top_k``."""
    ahead = np.empty(new_scores.shape, np.int64)
    for column in range(new_scores.shape[1]):
        ahead[:, column] = (top_scores >= new_scores[:, column:column + 1]).sum(axis=1)
    users, items = np.nonzero(ahead < int(top_k))
    return users, items, ahead[users, items] + 1
