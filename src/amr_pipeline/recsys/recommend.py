"""Top-N recommendation with a trained model: every user's best ``top_k`` items over the whole
catalogue, minus the items the user interacted with in the final training data.

Scores are ``p_u · v_i`` with ``v_i = q_i + E c_i`` computed once
(:meth:`~amr_pipeline.recsys.models.FactorModel.item_vectors`). Users are scored in blocks, one
cache-sized tile of items at a time (never a users x items matrix); each tile keeps only the
items above a per-user threshold that no top-``k`` item is below, raised as the tiles go by
(see :func:`top_n`), and only those candidates are sorted, by score (descending) and item id
(ascending), so ties are broken by item id exactly, even at the threshold. Blocks go to a
pool of worker threads (all cores by default), each scoring and selecting its own blocks with
BLAS at one thread (``threadpoolctl``; NumPy releases the GIL in the products and most of the
selection); the results are the same, bit for bit, as one thread's. NumPy and threadpoolctl
only. ``benchmarks/recommend_speed.py`` times it at Amazon Women scale.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from itertools import islice
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.models import FactorModel

BLOCK_SCORES = 1 << 24
"""Bound on the scores held at once (64 MiB of float32); blocks of ``block_scores // items``
users."""

TILE_SCORES = 1 << 22
"""Scores per tile (16 MiB of float32: still in cache when it is scanned)."""

ROWS = 448
"""Users per block where a block of ``block_scores // items`` users exceeds a tile (more rows
per product: the tile's item vectors are packed once for more users)."""

GROUPS = 32
"""The first threshold: the ``k``-th largest maximum of ``GROUPS * k`` groups of the first
tile's items."""


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


def default_workers() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def top_n(
    user_factors: np.ndarray,
    item_vectors: np.ndarray,
    top_k: int,
    seen: SeenItems | None = None,
    users: np.ndarray | None = None,
    block_scores: int = BLOCK_SCORES,
    workers: int | None = None,
) -> TopN:
    """The ``top_k`` items of each of ``users`` (default: every row of ``user_factors``) by
    ``user_factors[u] · item_vectors[i]``, ``seen`` items left out, ties by item id.

    Users in blocks of ``block_scores // items`` (of about :data:`ROWS` where those exceed a
    tile), each scored one tile of items at a time (at most :data:`TILE_SCORES` scores; a lone
    user: the whole row), in item order. A tile keeps only the items above a per-user
    threshold that no top-``k`` item is below: first the ``k``-th largest maximum of
    ``GROUPS * k`` groups of the first tile (``>=`` it), then, once candidates pile up, the
    ``k``-th largest candidate so far (``>`` it: a later equal item ranks behind ``k``
    candidates). The candidates left are sorted by score then item id. A last block of one
    user, or that fits a tile, stays one product (BLAS rounds those differently), so scores
    are those of one product per block.

    ``workers`` threads (default :func:`default_workers`; at most one per block of several
    users) each take the next such block, with their own buffers, at most ``workers`` blocks
    at a time, BLAS held at one thread meanwhile (``threadpoolctl``; the setting is
    process-wide: do not run such calls side by side). Matrix-vector products (blocks of one
    user; a catalogue of one item), which OpenBLAS rounds differently with another thread
    count, then run in the calling thread, BLAS as it is. Results are joined in block order:
    the output is the same, bit for bit, for any ``workers``. One worker, or at most one block
    of several users: no thread pool, BLAS left as it is."""
    top_k = int(top_k)
    if top_k < 1:
        raise ConfigurationError(f"top_k must be a positive integer, got {top_k!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(
            workers, (int, np.integer)) or workers < 1):
        raise ConfigurationError(f"workers must be a positive integer or None (all cores), "
                                 f"got {workers!r}")
    user_factors = np.asarray(user_factors, np.float32)
    vectors_t = np.ascontiguousarray(np.asarray(item_vectors, np.float32).T)
    n_items = vectors_t.shape[1]
    users = (np.arange(len(user_factors), dtype=np.int64) if users is None
             else np.asarray(users, np.int64))
    k = min(top_k, n_items)
    if k == 0 or not len(users):
        return TopN(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                    np.zeros(0, np.float32))
    step = min(len(users), max(1, int(block_scores) // n_items))
    blocks = _blocks(len(users), step, n_items)
    workers = default_workers() if workers is None else int(workers)
    local = threading.local()  # each thread's buffers, reused across its blocks

    def block_top(start: int, stop: int) -> tuple[np.ndarray, ...]:
        if not hasattr(local, "buffers"):
            local.buffers = [np.empty(0, np.float32), np.empty(0, bool)]
        block_users = users[start:stop]
        pairs = None if seen is None else seen.in_block(block_users)
        rows, items, values = _candidates(user_factors[block_users], vectors_t, k, pairs,
                                          local.buffers)
        order = np.lexsort((items, -values, rows))
        rows, items, values = rows[order], items[order], values[order]
        first = np.searchsorted(rows, np.arange(len(block_users)))
        rank = np.arange(len(rows)) - first[rows]
        keep = rank < k
        return block_users[rows[keep]], rank[keep] + 1, items[keep], values[keep]

    # products of one user (or of one item) are matrix-vector ones, which OpenBLAS rounds
    # differently with other thread counts: those blocks run in this thread, BLAS as it is
    pooled = [index for index, (start, stop) in enumerate(blocks)
              if stop - start > 1 and n_items > 1]
    workers = min(workers, len(pooled))
    parts: list = [None] * len(blocks)
    if workers > 1:
        threaded = _in_threads(block_top, [blocks[index] for index in pooled], workers)
        for index, part in zip(pooled, threaded):
            parts[index] = part
    parts = [block_top(*bounds) if part is None else part for part, bounds in zip(parts, blocks)]
    return TopN(*(np.concatenate(column) for column in zip(*parts)))


def _in_threads(block_top, blocks: list[tuple[int, int]], workers: int) -> list:
    """``block_top(start, stop)`` of every block, in block order, by ``workers`` threads with
    BLAS at one thread: a block is submitted only when one of the ``workers`` running ends."""
    parts: list = [None] * len(blocks)
    pending = iter(enumerate(blocks))
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(
            workers, thread_name_prefix="top-n") as pool:
        running = {pool.submit(block_top, *bounds): index
                   for index, bounds in islice(pending, workers)}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                parts[running.pop(future)] = future.result()
                for index, bounds in islice(pending, 1):
                    running[pool.submit(block_top, *bounds)] = index
    return parts


def _blocks(total: int, step: int, n_items: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the blocks of users: blocks of ``step``; where those exceed a tile,
    even groups of at most :data:`ROWS` users (or the fewest that fill a tile, if more), a last
    block of ``step`` kept apart if it holds one user or fits in a tile."""
    if step == 1 or step * n_items <= TILE_SCORES:
        return [(start, min(start + step, total)) for start in range(0, total, step)]
    last = total - (total - 1) // step * step
    grouped = total if last > 1 and last * n_items > TILE_SCORES else total - last
    bounds = [total] if grouped < total else []
    if grouped:
        groups = -(-grouped // max(ROWS, -(-TILE_SCORES // n_items)))
        bounds = [group * grouped // groups for group in range(groups + 1)] + bounds
    else:
        bounds = [0] + bounds
    return list(zip(bounds, bounds[1:]))


def _candidates(factors, vectors_t, k, seen_pairs, buffers):
    """``(rows, items, scores)`` of one block that hold every row's top ``k`` (seen items
    out): the tiles of items in order, with the thresholds of :func:`top_n`."""
    size, n_items = len(factors), vectors_t.shape[1]
    width = n_items if size == 1 else min(n_items, TILE_SCORES // size)
    n_tiles = -(-n_items // width)
    bounds = [tile * n_items // n_tiles for tile in range(n_tiles + 1)]
    if len(buffers[0]) < size * width:
        buffers[:] = np.empty(size * width, np.float32), np.empty(size * width, bool)
    if seen_pairs is not None:
        order = np.argsort(seen_pairs[1], kind="stable")
        seen_rows, seen_items = seen_pairs[0][order], seen_pairs[1][order]
        cuts = np.searchsorted(seen_items, bounds)
    threshold = np.full(size, -np.inf, np.float32)  # candidates are > it: never -inf (seen)
    rows: list[np.ndarray] = []
    items: list[np.ndarray] = []
    values: list[np.ndarray] = []
    pooled = 0
    for tile, (low, high) in enumerate(zip(bounds, bounds[1:])):
        scores = buffers[0][:size * (high - low)].reshape(size, high - low)
        np.matmul(factors, vectors_t[:, low:high], out=scores)
        if seen_pairs is not None:
            cut = slice(cuts[tile], cuts[tile + 1])
            scores[seen_rows[cut], seen_items[cut] - low] = -np.inf
        if tile == 0 and high - low >= k:
            # the k-th largest maximum of groups j, j + groups, j + 2 groups, ... of the tile
            groups = min(high - low, GROUPS * k)
            grouped = (high - low) // groups * groups
            maxima = scores[:, :grouped].reshape(size, -1, groups).max(axis=1)
            kth = np.partition(maxima, groups - k, axis=1)[:, groups - k]
            with np.errstate(over="ignore"):  # >= kth: > the float below it
                threshold = np.nextafter(kth, np.float32(-np.inf))
        above = buffers[1][:scores.size]
        np.greater(scores, threshold[:, None], out=above.reshape(scores.shape))
        # row-major: item ids ascending within a row (1-d flatnonzero: 2-d nonzero is slow)
        found = np.flatnonzero(above)
        row, column = np.divmod(found, high - low)
        rows.append(row)
        items.append(column + low)
        values.append(scores.reshape(-1)[found])
        pooled += len(found)
        if high < n_items and pooled >= 2 * k * size:  # raise the thresholds, drop the rest
            row, item, value = (np.concatenate(column) for column in (rows, items, values))
            threshold = np.maximum(threshold, _kth_largest(row, value, size, k))
            keep = value >= threshold[row]
            rows, items, values = [row[keep]], [item[keep]], [value[keep]]
            pooled = len(rows[0])
    return tuple(np.concatenate(column) for column in (rows, items, values))


def _kth_largest(rows: np.ndarray, values: np.ndarray, size: int, k: int) -> np.ndarray:
    """Per row ``0 .. size - 1``, the ``k``-th largest of its ``values`` (float32), ``-inf``
    for rows with fewer: one sort of ``row << 32 | bits`` keys (float bits mapped to an
    order-reversing unsigned integer)."""
    bits = values.view(np.uint32)
    flip = ((bits >> np.uint32(31)) - np.uint32(1)) & np.uint32(0x7FFFFFFF)
    keys = np.sort((rows.astype(np.uint64) << np.uint64(32)) | (bits ^ flip))
    counts = np.bincount(rows, minlength=size)
    full = counts >= k
    kth = np.full(size, -np.inf, np.float32)
    bits = (keys[(np.cumsum(counts) - counts)[full] + k - 1] & np.uint64(0xFFFFFFFF)).astype(
        np.uint32)
    kth[full] = (bits ^ (((bits >> np.uint32(31)) - np.uint32(1)) & np.uint32(0x7FFFFFFF))).view(
        np.float32)
    return kth


USERS_PER_TASK = 8192
"""Users per task of :func:`top_n_on` (their lists come back whole, in user order)."""


def top_n_on(executor, user_factors: np.ndarray, item_vectors: np.ndarray, top_k: int,
             seen: SeenItems | None = None, users: np.ndarray | None = None,
             users_per_task: int = USERS_PER_TASK) -> TopN:
    """:func:`top_n` with every ``users_per_task`` users one task of ``executor``
    (:mod:`amr_pipeline.distributed`: local, or Ray tasks across a cluster): the factors,
    item vectors and seen items shared once, each task one :func:`top_n` on one thread, the
    lists back in user order. The same blocks give the same arrays on any executor."""
    users = (np.arange(len(user_factors), dtype=np.int64) if users is None
             else np.asarray(users, np.int64))
    step = int(users_per_task)
    if step < 1:
        raise ConfigurationError(f"users_per_task must be a positive integer, got "
                                 f"{users_per_task!r}")
    share = executor.share
    parts = list(executor.map(
        _top_n_task, (users[start:start + step] for start in range(0, len(users), step)),
        share(np.asarray(user_factors, np.float32)), share(np.asarray(item_vectors, np.float32)),
        int(top_k), share(seen)))
    if not parts:
        return top_n(user_factors, item_vectors, top_k, seen, users)
    return TopN(*(np.concatenate(column) for column in zip(*parts)))


def _top_n_task(block: np.ndarray, user_factors, item_vectors, top_k: int, seen) -> TopN:
    return top_n(user_factors, item_vectors, top_k, seen, block, workers=1)


def recommend(
    model: FactorModel,
    top_k: int,
    features=None,
    seen: SeenItems | None = None,
    users: np.ndarray | None = None,
    item_vectors: np.ndarray | None = None,
    workers: int | None = None,
) -> TopN:
    """:func:`top_n` for a :class:`FactorModel` (its ``q_i + E c_i`` from ``features``, or
    the precomputed ``item_vectors``)."""
    vectors = model.item_vectors(features) if item_vectors is None else item_vectors
    return top_n(model.user_factors, vectors, top_k, seen, users, workers=workers)


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
