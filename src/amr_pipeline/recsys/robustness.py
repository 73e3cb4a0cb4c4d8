"""Test-time attacks on image features (paper 4.3.2, Table 3, Figures 4-5).

Every item's scaled feature vector ``c_i`` gets a perturbation ``Δ_i`` with ``||Δ_i|| = ε``
(eq. 5: ``ŷ'_ui = p_u·(q_i + E(c_i + Δ_i))``) and the stored candidates are ranked again.

Attacks:

- ``random``: a seeded uniformly random direction per item (VBPR-rand).
- ``fgm_train``: the paper's adversary (eq. 6, 11; VBPR-grad): ``Δ_i = ε Γ_i/||Γ_i||`` with
  ``Γ = ∂L'_BPR/∂Δ`` over all training pairs, one negative each, drawn once with ``seed``.
- ``fgm_test``: the same step on the loss of the measured ranking,
  ``Σ_u Σ_j -ln σ(ŷ_ut - ŷ_uj)`` over each user's test item ``t`` and its negatives ``j``.
- ``fgsm``: ``Δ_i = ε sign(Γ_i)/√D`` with the training-loss ``Γ`` (norm ``ε``; 0 where Γ_i = 0).
- ``pgd``: from ``fgm_test``, ``steps`` projected steps on the test loss of the pairs an ``ε``
  attack can reorder.
- ``certified``: the exact worst case, attained even by a perturbation chosen separately per
  user: the test item loses at most ``ε||Eᵀp_u||`` and every negative gains at most as much,
  so negative ``j`` can overtake only if ``ε ≥ ε*_uj = (ŷ_ut - ŷ_uj)/(2||Eᵀp_u||)``. No attack
  ranks a test item lower (a lower bound on HR/NDCG).

Every loss gradient is ``Γ_i = Eᵀ g_i`` with ``g_i ∈ R^K`` (a sum of ``∓σ(-x) p_u`` over the
item's occurrences), so with ``M = E Eᵀ`` (K x K) the FGM step moves item vector ``i`` by
``ε M g_i / √(g_iᵀ M g_i)``: gradient attacks and PGD (``Δ_i = Eᵀ a_i``,
``||Δ_i||² = a_iᵀ M a_i``) never leave K-space. ``random`` draws ``z ~ N(0, I_D)`` as its
K-dimensional part in the span of ``Eᵀ`` plus the χ² norm of the rest; only ``fgsm`` works in
D-space, in item chunks. Single-step directions do not depend on ``ε``, so one pass over the
candidates gives ``ŷ + ε ŷ_Δ`` for the whole ε grid; Δ is never held as an I x D matrix.

Models without a ``feature_projection`` (POP, MF) have nothing to attack: every attack is a
no-op there and reports the clean numbers (a warning is logged).

The heavy maps run on an executor (:mod:`amr_pipeline.distributed`): candidate scores and
ranks over blocks of users, the training-loss gradient over partitions of the training pairs
(summed in partition order) and ``fgsm``'s D-space step over item chunks, with the item
vectors, ``E`` and the candidate matrix shared once. ``local`` and ``ray`` run the same block
functions on the same blocks, so their results are identical.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit

from amr_pipeline.distributed import LocalExecutor
from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.metrics import grouped_candidates, summarise
from amr_pipeline.recsys.models import FactorModel
from amr_pipeline.recsys.sampling import NegativeSampler, epoch_rng

log = logging.getLogger(__name__)

ATTACKS = ("random", "fgm_train", "fgm_test", "fgsm", "pgd", "certified")
SINGLE_STEP = ("random", "fgm_train", "fgm_test", "fgsm")
_GATHER_FLOATS = 1 << 20  # floats per gathered block (4 MB)
_ITEM_CHUNK = 8192  # items per D-dimensional block; fixes the random stream too
_TASK_ENTRIES = 1 << 22  # candidate entries per user block handed to an executor
_PAIR_PARTITION = 1 << 19  # training pairs per partition of the training-loss gradient


def training_triples(train: pd.DataFrame, n_items: int, seed: int = 0):
    """``(u, i, j)`` for every training pair, one negative each, drawn once from ``seed``."""
    users = train["user_id"].to_numpy(np.int64)
    items = train["item_id"].to_numpy(np.int64)
    sampler = NegativeSampler(users, items, n_items)
    return users, items, sampler.negatives(users, epoch_rng(seed, 0))


class _Candidates:
    """Candidates as an (n_users x C) item matrix, test item in column 0; ragged lists are
    padded with the test item and masked out by ``valid``."""

    def __init__(self, candidates: pd.DataFrame, n_items: int, executor=None):
        self.n_items = int(n_items)
        self.executor = executor if executor is not None else LocalExecutor()
        users, items, is_test, starts = grouped_candidates(candidates)
        if items.min() < 0 or items.max() >= self.n_items:
            raise ConfigurationError(
                f"candidate item ids must lie in [0, {self.n_items}): rebuild the candidates "
                "with data_processing for this model's items"
            )
        sizes = np.diff(np.r_[starts, len(users)])
        self.users = users[starts]
        self.test_items = items[starts]
        width = int(sizes.max())
        index = np.int32 if items.max() < 2**31 - 1 else np.int64
        if (sizes == width).all():
            self.items = items.reshape(len(starts), width).astype(index)
            self.valid = None
        else:
            self.items = np.repeat(self.test_items[:, None], width, axis=1).astype(index)
            column = np.arange(len(users)) - np.repeat(starts, sizes)
            self.items[np.repeat(np.arange(len(starts)), sizes), column] = items
            self.valid = np.arange(width) < sizes[:, None]

    def step(self, width: int = 1) -> int:
        """Users per gathered block: about ``_GATHER_FLOATS`` entries of ``width`` floats."""
        return max(1, _GATHER_FLOATS // (self.items.shape[1] * width))

    def blocks(self, width: int = 1):
        """User slices holding about ``_GATHER_FLOATS`` entries of ``width`` floats each."""
        step = self.step(width)
        for start in range(0, len(self.users), step):
            yield slice(start, start + step)

    def task_blocks(self, width: int = 1) -> list[tuple[int, int, int]]:
        """``(start, stop, step)`` user blocks for an executor: each about ``_TASK_ENTRIES``
        candidates, a whole number of the gathered blocks of :meth:`blocks` (same edges)."""
        step = self.step(width)
        size = step * max(1, -(-_TASK_ENTRIES // (self.items.shape[1] * step)))
        n = len(self.users)
        return [(start, min(start + size, n), step) for start in range(0, n, size)]

    def shared(self):
        """Handles on the candidate matrix, its users and mask, shared once per executor."""
        if not hasattr(self, "_shared"):
            share = self.executor.share
            self._shared = (share(self.items), share(self.users), share(self.valid))
        return self._shared

    def scores(self, user_factors: np.ndarray, table: np.ndarray) -> np.ndarray:
        """``p_u · table_i`` for every candidate: (n, C) for an (I, K) table, (n, C, m) for a
        stacked (I, m, K) one. Same batched product as ``metrics.rank_candidates``."""
        k = user_factors.shape[1]
        stacked = table.ndim == 3
        table = np.ascontiguousarray(table, np.float32).reshape(len(table), -1)
        m = table.shape[1] // k
        n, width = self.items.shape
        out = np.empty((n, width * m, 1), np.float32)
        items, users, _ = self.shared()
        share = self.executor.share
        blocks = self.task_blocks(m * k)
        parts = self.executor.map(_score_block, blocks, items, users, share(user_factors),
                                  share(table), m, k)
        for (start, stop, _), part in zip(blocks, parts):
            out[start:stop] = part
        return out.reshape(n, width, m) if stacked else out.reshape(n, width)

    def ranks(self, scores: np.ndarray, shift: np.ndarray | None = None, epsilon: float = 0.0):
        """How many valid negatives score ``>=`` the test item (ties count against it) under
        ``scores + ε shift``, the rule of ``metrics.rank_candidates``."""
        return self.rank_grid(scores, shift, [epsilon])[:, 0]

    def rank_grid(self, scores: np.ndarray, shift: np.ndarray | None, epsilons) -> np.ndarray:
        """:meth:`ranks` at every ``ε`` of ``epsilons`` (n x len(ε)), over user blocks."""
        out = np.empty((len(self.users), len(epsilons)), np.int64)
        _, _, valid = self.shared()
        share = self.executor.share
        blocks = self.task_blocks()
        epsilons = np.asarray(epsilons, np.float32)
        parts = self.executor.map(_rank_block, blocks, share(scores), share(shift), valid,
                                  epsilons)
        for (start, stop, _), part in zip(blocks, parts):
            out[start:stop] = part
        return out

    def test_loss_weights(self, scores: np.ndarray) -> np.ndarray:
        """``∂/∂ŷ`` of ``Σ_j -ln σ(ŷ_ut - ŷ_uj)``: ``σ(ŷ_uj - ŷ_ut)`` per negative and minus
        their sum on the test item (column 0)."""
        weights = np.empty_like(scores)
        for block in self.blocks():
            part = expit(scores[block, 1:] - scores[block, :1])
            if self.valid is not None:
                part *= self.valid[block, 1:]
            weights[block, 1:] = part
            weights[block, 0] = -part.sum(axis=1)
        return weights

    def thresholds(self, scores: np.ndarray, reach: np.ndarray, rows=None, columns=None):
        """``ε*_uj = (ŷ_ut - ŷ_uj) / (2||Eᵀp_u||)``: the smallest ``ε`` at which an attack can
        lift negative ``j`` to the test item (``-inf``/``inf`` where ``||Eᵀp_u|| = 0``); for
        a block of rows, or for the ``(rows, columns)`` pairs."""
        if rows is None:
            gap = scores[:, :1].astype(np.float64) - scores[:, 1:]
            reach = reach[:, None]
        else:
            gap = scores[rows, 0].astype(np.float64) - scores[rows, columns]
            reach = reach[rows]
        return np.divide(gap, 2 * reach, out=np.where(gap > 0, np.inf, -np.inf), where=reach > 0)

    def certified_counts(self, scores: np.ndarray, reach: np.ndarray, epsilon: float):
        """Per user, ``#{j: ε*_uj ≤ ε}`` (= ``#{j: ŷ_uj + 2ε||Eᵀp_u|| ≥ ŷ_ut}``)."""
        out = np.empty(len(self.users), np.int64)
        for block in self.blocks():
            beaten = self.thresholds(scores[block], reach[block]) <= epsilon
            if self.valid is not None:
                beaten &= self.valid[block, 1:]
            out[block] = beaten.sum(axis=1)
        return out

    @property
    def by_item(self) -> _Pairs:
        """Every valid negative as a pair list sorted by item (built once)."""
        if not hasattr(self, "_by_item"):
            n, width = self.items.shape
            index = np.int32 if n * width < 2**31 - 1 else np.int64
            positions = np.arange(n * width, dtype=index).reshape(n, width)[:, 1:]
            counts = np.full(n, width - 1)
            if self.valid is not None:
                positions, counts = positions[self.valid[:, 1:]], self.valid[:, 1:].sum(axis=1)
            items = self.items.reshape(-1)[positions.reshape(-1)]
            self._by_item = _Pairs.sort(positions.reshape(-1), items, counts, self.n_items)
        return self._by_item

    def test_gradient(self, user_rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``g_t += w_u p_u`` for each user's test item ``t``."""
        matrix = sparse.csc_matrix(
            (np.asarray(weights, np.float32), self.test_items, np.arange(len(weights) + 1)),
            shape=(self.n_items, len(weights)),
        )
        return matrix @ user_rows


def _score_block(block, items, users, user_factors, table, m, k) -> np.ndarray:
    """``p_u · table_i`` (b, C·m, 1) for the users ``start:stop`` of ``block``, gathered
    ``step`` users at a time (the executor's unit of work in :meth:`_Candidates.scores`)."""
    start, stop, step = block
    width = items.shape[1]
    out = np.empty((stop - start, width * m, 1), np.float32)
    for first in range(start, stop, step):
        last = min(first + step, stop)
        rows = np.take(table, items[first:last], axis=0).reshape(-1, width * m, k)
        np.matmul(rows, user_factors[users[first:last], :, None],
                  out=out[first - start:last - start])
    return out


def _rank_block(block, scores, shift, valid, epsilons) -> np.ndarray:
    """Ranks (b x len(ε)) of the users ``start:stop`` under ``scores + ε shift``, ``step``
    users at a time (the unit of work of :meth:`_Candidates.rank_grid`)."""
    start, stop, step = block
    out = np.empty((stop - start, len(epsilons)), np.int64)
    for first in range(start, stop, step):
        last = min(first + step, stop)
        for column, epsilon in enumerate(epsilons):
            current = scores[first:last]
            if shift is not None:
                current = current + epsilon * shift[first:last]
            beaten = current[:, 1:] >= current[:, :1]
            if valid is not None:
                beaten &= valid[first:last, 1:]
            out[first - start:last - start, column] = beaten.sum(axis=1)
    return out


def _train_gradient_block(block, users, positives, negatives, user_factors, vectors):
    """One partition's part of the training-loss gradient: ``(items, g rows)`` for the items
    its pairs touch, ``g_i = Σ ∓σ(-x_uij) p_u`` over the pairs ``start:stop``."""
    start, stop = block
    users, positives, negatives = users[start:stop], positives[start:stop], negatives[start:stop]
    margin = np.einsum("nk,nk->n", user_factors[users], vectors[positives] - vectors[negatives])
    weight = expit(-margin)
    touched, rows = np.unique(np.r_[positives, negatives], return_inverse=True)
    matrix = sparse.coo_matrix(
        (np.r_[-weight, weight], (rows, np.r_[users, users])),
        shape=(len(touched), len(user_factors)),
    ).tocsr()
    return touched, np.asarray(matrix @ user_factors)


def _sign_shift_block(block, gradient, projection, scale) -> np.ndarray:
    """``E (sign(Γ_i)/√D)`` (chunk x K) for the items ``start:stop`` of ``block``."""
    start, stop = block
    delta = np.sign(gradient[start:stop] @ projection.T) * scale
    return delta @ projection


class _Pairs:
    """``(user row, item)`` pairs sorted by item: ``positions`` in the flattened candidate
    matrix, ``rows``, ``items`` and per-item ``indptr`` (a CSR layout over items)."""

    def __init__(self, positions, rows, indptr):
        self.positions, self.rows, self.indptr = positions, rows, indptr
        self.items = np.repeat(np.arange(len(indptr) - 1, dtype=np.int32), np.diff(indptr))

    @classmethod
    def sort(cls, positions, items, counts, n_items) -> _Pairs:
        """From a user-major list (``counts[r]`` pairs of row ``r``), by a counting sort."""
        indptr = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        by_item = sparse.csc_matrix(
            (positions, items, indptr), shape=(n_items, len(counts))
        ).tocsr()
        return cls(by_item.data, by_item.indices.astype(np.int32, copy=False), by_item.indptr)

    def subset(self, keep: np.ndarray) -> _Pairs:
        counts = np.bincount(self.items[keep], minlength=len(self.indptr) - 1)
        return _Pairs(self.positions[keep], self.rows[keep], np.r_[0, np.cumsum(counts)])

    def gradient(self, user_rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``g_i = Σ_u w_ui p_u`` (I x K): a CSR product over items."""
        matrix = sparse.csr_matrix(
            (np.asarray(weights, np.float32), self.rows, self.indptr),
            shape=(len(self.indptr) - 1, len(user_rows)),
        )
        return matrix @ user_rows

    def scores(self, user_rows: np.ndarray, table: np.ndarray) -> np.ndarray:
        """``p_u · table_i`` per pair."""
        out = np.empty(len(self.rows), np.float32)
        step = max(1, _GATHER_FLOATS // (4 * table.shape[1]))
        for start in range(0, len(out), step):
            block = slice(start, start + step)
            np.einsum(
                "nk,nk->n", np.take(user_rows, self.rows[block], axis=0),
                np.take(table, self.items[block], axis=0), out=out[block],
            )
        return out


class _Attacker:
    """One model's attack state: item vectors ``q_i + E c_i``, ``M = E Eᵀ``, clean candidate
    scores and the two loss gradients, each computed once."""

    def __init__(self, model, features, candidates=None, train=None, seed=0, executor=None,
                 perturb_cold_items=False):
        self.model, self.seed, self.train = model, int(seed), train
        self.perturb_cold_items = bool(perturb_cold_items)
        self.executor = executor if executor is not None else LocalExecutor()
        self.vectors = model.item_vectors(features)
        self.n_items, self.k = self.vectors.shape
        self.projection = model.feature_projection
        self.visual = self.projection is not None
        if self.visual:
            projection = self.projection.astype(np.float64)
            self.gram = projection.T @ projection
            self.gram32 = self.gram.astype(np.float32)
        self.candidates = (None if candidates is None
                           else _Candidates(candidates, self.n_items, self.executor))
        self._cache = {}

    def _cached(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _need_candidates(self) -> _Candidates:
        if self.candidates is None:
            raise ConfigurationError("this attack ranks candidates: pass `candidates`")
        return self.candidates

    @property
    def clean_scores(self) -> np.ndarray:
        """``ŷ`` (n x C), test item in column 0."""
        return self._cached("scores", lambda: self._need_candidates().scores(
            self.model.user_factors, self.vectors))

    @property
    def user_rows(self) -> np.ndarray:
        return self.model.user_factors[self._need_candidates().users]

    @property
    def reach(self) -> np.ndarray:
        """``||Eᵀp_u||`` per candidate user: the most any ``||Δ_i|| ≤ 1`` moves ``ŷ_ui``."""
        return self._cached("reach", lambda: np.linalg.norm(
            self.user_rows.astype(np.float64) @ self.projection.T.astype(np.float64), axis=1))

    def gradient(self, loss: str) -> np.ndarray:
        """``g`` (I x K) with ``Γ_i = ∂L/∂c_i = Eᵀ g_i`` for ``loss`` = ``train`` or ``test``."""
        if loss == "train":
            return self._cached("g_train", self._train_gradient)
        return self._cached("g_test", self._test_gradient)

    def _train_gradient(self):
        if self.train is None:
            raise ConfigurationError("fgm_train and fgsm attack the training loss: pass `train`")
        users, positives, negatives = training_triples(self.train, self.n_items, self.seed)
        share = self.executor.share
        partitions = [(start, min(start + _PAIR_PARTITION, len(users)))
                      for start in range(0, len(users), _PAIR_PARTITION)]
        parts = self.executor.map(
            _train_gradient_block, partitions, share(users), share(positives), share(negatives),
            share(self.model.user_factors.astype(np.float64)),
            share(self.vectors.astype(np.float64)),
        )
        gradient = np.zeros((self.n_items, self.k), np.float64)
        for touched, rows in parts:
            gradient[touched] += rows
        if self.perturb_cold_items:
            # cold items are in no training pair (Γ = 0): they follow the test loss instead
            cold = np.ones(self.n_items, bool)
            cold[positives] = False
            gradient[cold] = self.gradient("test")[cold]
        return gradient

    def _test_gradient(self):
        layout, user_rows = self._need_candidates(), self.user_rows
        weights = layout.test_loss_weights(self.clean_scores)
        pairs = layout.by_item
        return pairs.gradient(user_rows, weights.reshape(-1)[pairs.positions]) + \
            layout.test_gradient(user_rows, weights[:, 0])

    def latent_norms(self, a: np.ndarray) -> np.ndarray:
        """``||Eᵀ a_i|| = √(a_iᵀ M a_i)`` per row."""
        gram = self.gram32 if a.dtype == np.float32 else self.gram
        return np.sqrt(np.maximum(((a @ gram) * a).sum(axis=1), 0))

    def unit_weights(self, g: np.ndarray) -> np.ndarray:
        """``a = g/||Eᵀg||`` (0 where ``Eᵀg = 0``), so ``Δ = Eᵀ a`` has unit norm."""
        norms = self.latent_norms(g)[:, None]
        return np.divide(g, norms, out=np.zeros_like(g), where=norms > 0)

    def unit_shift(self, attack: str) -> np.ndarray:
        """``E Δ_i`` (I x K) of a single-step attack at ``ε = 1``."""
        return self._cached(("shift", attack), lambda: self._unit_shift(attack))

    def _unit_shift(self, attack):
        if attack in ("fgm_train", "fgm_test"):
            g = self.gradient("train" if attack == "fgm_train" else "test")
            return (self.unit_weights(g) @ self.gram).astype(np.float32)
        shift = np.zeros((self.n_items, self.k), np.float32)
        if attack == "random":
            _, triangle = self.span
            for start, inside, rest in self.random_parts():
                norms = np.sqrt((inside**2).sum(axis=1) + rest)[:, None]
                shift[start : start + len(inside)] = inside @ triangle / norms
        else:
            gradient = self.gradient("train").astype(np.float32)
            scale = np.float32(1 / np.sqrt(len(self.projection)))
            chunks = [(start, min(start + _ITEM_CHUNK, self.n_items))
                      for start in range(0, self.n_items, _ITEM_CHUNK)]
            share = self.executor.share
            parts = self.executor.map(_sign_shift_block, chunks, share(gradient),
                                      share(self.projection), scale)
            for (start, stop), part in zip(chunks, parts):
                shift[start:stop] = part
        return shift

    @property
    def span(self):
        """``Eᵀ = Q R`` with orthonormal ``Q`` (D x r)."""
        return self._cached("span", lambda: np.linalg.qr(self.projection.astype(np.float64)))

    def random_parts(self, stop: int | None = None):
        """Uniform directions ``z/||z||``, ``z ~ N(0, I_D)``, drawn in K-space:
        ``z = Q w + z_⊥`` with ``w ~ N(0, I_r)`` and ``||z_⊥||² ~ χ²(D - r)``, which Eᵀ
        ignores. Yields ``(first item, w, ||z_⊥||²)`` per item chunk."""
        rng = np.random.default_rng([self.seed, 1])
        dims, rank = self.projection.shape[0], self.span[0].shape[1]
        stop = self.n_items if stop is None else stop
        for start in range(0, stop, _ITEM_CHUNK):
            rows = min(_ITEM_CHUNK, self.n_items - start)
            inside = rng.standard_normal((rows, rank))
            rest = rng.chisquare(dims - rank, rows) if dims > rank else np.zeros(rows)
            yield start, inside, rest

    def unit_scores(self, attacks: list[str]) -> list[np.ndarray]:
        """``p_u · E Δ_i`` at ``ε = 1`` for every candidate (n x C) per attack, from one pass
        over a stacked (I, m, K) table; kept for later calls."""
        missing = [attack for attack in attacks if ("scores", attack) not in self._cache]
        if missing:
            table = np.stack([self.unit_shift(attack) for attack in missing], axis=1)
            stacked = self._need_candidates().scores(self.model.user_factors, table)
            for index, attack in enumerate(missing):
                self._cache[("scores", attack)] = stacked[..., index]
        return [self._cache[("scores", attack)] for attack in attacks]

    def pgd(self, epsilon: float, steps: int, step_size: float | None):
        """PGD at ``ε`` from the ``fgm_test`` point on the test loss of the pairs an ``ε``
        attack can reorder (``ŷ_uj + 2ε||Eᵀp_u|| ≥ ŷ_ut``; no ``||Δ_i|| ≤ ε`` reorders the
        others, so ranks stay exact). Each step: ``a_i ← a_i + α g_i/||Eᵀg_i||`` with
        ``α = step_size·ε``, then ``a_i`` is scaled back to ``||Eᵀa_i|| ≤ ε``; with
        ``step_size=None``, ``a_i ← ε g_i/||Eᵀg_i||`` (the FGM step at the current point). The
        loss is convex in Δ, so no step lowers it; the loss is a surrogate, so the iterate
        (start included) with the highest mean rank is kept. Returns that ``a`` (I x K,
        ``Δ_i = Eᵀa_i``) and its per-user ranks."""
        epsilon, layout, user_rows = float(epsilon), self._need_candidates(), self.user_rows
        everything, clean, start, thresholds = self.by_item
        n_users = len(layout.users)
        keep = thresholds <= epsilon
        pairs = everything.subset(keep)
        base, start = clean[keep], start[keep]
        tests = self.clean_scores[:, 0]
        eps = np.float32(epsilon)
        test_scores = tests + eps * self.unit_scores(["fgm_test"])[0][:, 0]
        gaps = (base + eps * start) - test_scores[pairs.rows]
        del start
        a = (epsilon * self.unit_weights(self.gradient("test"))).astype(np.float32)

        def ranks():
            return np.bincount(pairs.rows[gaps >= 0], minlength=n_users).astype(np.int64)

        best = (a, ranks())
        for _ in range(steps):
            weights = expit(gaps)
            g = pairs.gradient(user_rows, weights) + layout.test_gradient(
                user_rows, -np.bincount(pairs.rows, weights, n_users))
            direction = self.unit_weights(g)
            if step_size is None:
                a = np.where(direction.any(axis=1, keepdims=True), epsilon * direction, a)
            else:
                a = a + np.float32(step_size * epsilon) * direction
                norms = self.latent_norms(a)[:, None]
                scale = np.divide(epsilon, norms, out=np.ones_like(norms), where=norms > 0)
                a *= np.minimum(1, scale)
            shift = a @ self.gram32
            test_scores = tests + np.einsum("nk,nk->n", user_rows, shift[layout.test_items])
            gaps = (base + pairs.scores(user_rows, shift)) - test_scores[pairs.rows]
            current = ranks()
            if current.sum() > best[1].sum():
                best = (a, current)
        return best

    @property
    def by_item(self):
        """All valid negatives sorted by item, with their clean scores, ``fgm_test`` unit
        scores and thresholds ``ε*`` (cached for every ``ε`` of PGD)."""
        def compute():
            pairs, layout = self._need_candidates().by_item, self.candidates
            width = layout.items.shape[1]
            rows, columns = pairs.rows, pairs.positions % width
            clean = self.clean_scores.reshape(-1)[pairs.positions]
            start = self.unit_scores(["fgm_test"])[0].reshape(-1)[pairs.positions]
            thresholds = layout.thresholds(self.clean_scores, self.reach, rows, columns)
            return pairs, clean, start, thresholds
        return self._cached("by_item", compute)


def latent_shift(
    model: FactorModel,
    attack: str,
    epsilon: float,
    *,
    features: np.ndarray | None,
    train: pd.DataFrame | None = None,
    candidates: pd.DataFrame | None = None,
    seed: int = 0,
    steps: int = 3,
    step_size: float | None = None,
) -> np.ndarray:
    """The change ``E Δ_i`` of every item vector (I x K) under ``attack`` at ``ε``
    (``ŷ'_ui = p_u·(q_i + E c_i + E Δ_i)``, eq. 5). ``fgm_train``/``fgsm`` need ``train``,
    ``fgm_test``/``pgd`` need ``candidates``; ``certified`` has no single Δ (it is per user)."""
    _check_attacks([attack], [epsilon], steps, step_size)
    if attack == "certified":
        raise ConfigurationError("certified is a per-user bound: use certified_ranks()")
    attacker = _Attacker(model, features, candidates, train, seed)
    if not attacker.visual:
        return np.zeros_like(attacker.vectors)
    if attack == "pgd":
        return (attacker.pgd(epsilon, steps, step_size)[0] @ attacker.gram).astype(np.float32)
    return attacker.unit_shift(attack) * np.float32(epsilon)


def perturbation(
    model: FactorModel,
    attack: str,
    epsilon: float,
    items: Sequence[int],
    *,
    features: np.ndarray | None,
    train: pd.DataFrame | None = None,
    candidates: pd.DataFrame | None = None,
    seed: int = 0,
    steps: int = 3,
    step_size: float | None = None,
) -> np.ndarray:
    """``Δ_i`` (len(items) x D) on the scaled features ``c_i`` for a few ``items``; for
    inspection (e.g. Figure 1), evaluation never materialises Δ. Same arguments as
    :func:`latent_shift`, whose rows equal ``Δ_i Eᵀ``."""
    _check_attacks([attack], [epsilon], steps, step_size)
    if model.feature_projection is None or attack == "certified":
        raise ConfigurationError(f"{attack!r} has no feature perturbation for this model")
    attacker = _Attacker(model, features, candidates, train, seed)
    items = np.asarray(items, np.int64)
    projection = attacker.projection.astype(np.float64)
    if attack in ("fgm_train", "fgm_test"):
        g = attacker.gradient("train" if attack == "fgm_train" else "test")[items]
        return (epsilon * attacker.unit_weights(g) @ projection.T).astype(np.float32)
    if attack == "pgd":
        a = attacker.pgd(epsilon, steps, step_size)[0]
        return (a[items] @ projection.T).astype(np.float32)
    if attack == "fgsm":
        g = attacker.gradient("train").astype(np.float32)[items]
        return epsilon * np.sign(g @ attacker.projection.T) / np.float32(np.sqrt(len(projection)))
    basis = attacker.span[0]
    out = np.empty((len(items), len(projection)), np.float32)
    for start, inside, rest in attacker.random_parts(stop=int(items.max(initial=-1)) + 1):
        for row in np.flatnonzero((items >= start) & (items < start + len(inside))):
            item = items[row] - start
            other = np.random.default_rng([seed, 2, int(items[row])]).standard_normal(len(basis))
            other -= basis @ (basis.T @ other)
            other *= np.sqrt(rest[item]) / max(np.linalg.norm(other), 1e-300)
            z = basis @ inside[item] + other
            out[row] = epsilon * z / np.sqrt(inside[item] @ inside[item] + rest[item])
    return out


def certified_ranks(
    model: FactorModel,
    features: np.ndarray | None,
    candidates: pd.DataFrame,
    epsilon: float,
) -> pd.DataFrame:
    """Worst rank over every ``||Δ_i|| ≤ ε`` (even chosen per user): ``#{j: ŷ_uj +
    2ε||Eᵀp_u|| ≥ ŷ_ut}``. Columns ``user_id``, ``item_id``, ``rank`` as in
    ``metrics.rank_candidates``; no attack can rank a test item lower."""
    _check_attacks(["certified"], [epsilon], 1, None)
    attacker = _Attacker(model, features, candidates)
    layout = attacker.candidates
    ranks = _certified(attacker, np.array([epsilon]))[:, 0]
    return pd.DataFrame({"user_id": layout.users, "item_id": layout.test_items, "rank": ranks})


def _certified(attacker: _Attacker, epsilons: np.ndarray) -> np.ndarray:
    layout, scores = attacker.candidates, attacker.clean_scores
    if not attacker.visual:
        return np.repeat(layout.ranks(scores)[:, None], len(epsilons), axis=1)
    return np.stack([layout.certified_counts(scores, attacker.reach, e) for e in epsilons], axis=1)


def evaluate_attacks(
    model: FactorModel,
    features: np.ndarray | None,
    candidates: pd.DataFrame,
    train: pd.DataFrame | None,
    attacks: Iterable[str] = ATTACKS,
    epsilons: Iterable[float] = (0.01, 0.05, 0.1, 0.2, 0.5),
    cutoffs: Iterable[int] = (5, 10, 20),
    seed: int = 0,
    pgd_steps: int = 3,
    pgd_step_size: float | None = None,
    cold_items: np.ndarray | None = None,
    executor=None,
    perturb_cold_items: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """HR/NDCG under each attack and ``ε`` (Table 3, Figures 4-5).

    ``fgm_train`` and ``fgsm`` follow the training loss, in which cold items never occur, so
    they leave cold items unperturbed; ``perturb_cold_items`` moves those along the test-loss
    gradient instead, so every item is perturbed. ``certified`` is exact for perturbations
    chosen per user and a lower bound on HR/NDCG for one perturbation per item shared by all.

    ``executor`` (:mod:`amr_pipeline.distributed`; default: this process) runs the user-block
    scores and ranks and the training-gradient partitions; every executor gives the same result.

    Returns ``table`` (``attack``, ``epsilon``, ``hr_at_N``, ``ndcg_at_N`` and
    ``<metric>_drop`` = (attacked - clean)/clean, a clean row with attack ``none``, ε 0) and
    ``per_user_ranks`` (``attack``, ``epsilon``, ``user_id``, ``clean_rank``, ``rank`` and
    ``cold`` when ``cold_items`` is given)."""
    attacks, epsilons, cutoffs = list(attacks), [float(e) for e in epsilons], tuple(cutoffs)
    _check_attacks(attacks, epsilons, pgd_steps, pgd_step_size)
    clock = _Clock()
    attacker = _Attacker(model, features, candidates, train, seed, executor, perturb_cold_items)
    layout, clean_scores = attacker.candidates, attacker.clean_scores
    clean = layout.ranks(clean_scores)
    clock.lap("clean scores")
    grid = np.asarray(epsilons, np.float64)
    results = {}
    if not attacker.visual:
        log.warning("model has no feature_projection: feature attacks are no-ops")
        results = {attack: np.repeat(clean[:, None], len(grid), axis=1) for attack in attacks}
    else:
        single = [attack for attack in SINGLE_STEP if attack in attacks]
        if "pgd" in attacks and "fgm_test" not in single:
            single.append("fgm_test")
        for attack in single:
            attacker.unit_shift(attack)
            clock.lap(f"{attack} direction")
        shifted = attacker.unit_scores(single)
        clock.lap("single-step scores")
        for attack, unit in zip(single, shifted):
            if attack in attacks:
                results[attack] = layout.rank_grid(clean_scores, unit, grid)
        clock.lap("single-step ranks")
        if "pgd" in attacks:
            results["pgd"] = np.stack(
                [attacker.pgd(e, pgd_steps, pgd_step_size)[1] for e in grid], axis=1
            )
            clock.lap("pgd")
        if "certified" in attacks:
            results["certified"] = _certified(attacker, grid)
            clock.lap("certified")

    base = summarise(clean, cutoffs)
    rows = [{"attack": "none", "epsilon": 0.0, **base}]
    frames = []
    for attack in attacks:
        for column, epsilon in enumerate(epsilons):
            ranks = results[attack][:, column]
            rows.append({"attack": attack, "epsilon": epsilon, **summarise(ranks, cutoffs)})
            frame = pd.DataFrame({"user_id": layout.users, "clean_rank": clean, "rank": ranks})
            if cold_items is not None:
                frame["cold"] = np.asarray(cold_items, bool)[layout.test_items]
            frames.append(frame.assign(attack=attack, epsilon=epsilon))
    summary = pd.DataFrame(rows)
    for metric in base:
        summary[f"{metric}_drop"] = (
            (summary[metric] - base[metric]) / base[metric] if base[metric] else np.nan
        )
    per_user = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["attack", "epsilon", "user_id", "clean_rank", "rank"]
    )
    order = ["attack", "epsilon", "user_id", "clean_rank", "rank"]
    per_user = per_user[order + [c for c in per_user.columns if c not in order]]
    return summary, per_user


class _Clock:
    """Logs ``"<stage>: <seconds> s"`` at INFO for each stage of :func:`evaluate_attacks`."""

    def __init__(self):
        self.last = time.perf_counter()

    def lap(self, stage: str):
        now = time.perf_counter()
        log.info("robustness %s: %.2f s", stage, now - self.last)
        self.last = now


def _check_attacks(attacks, epsilons, steps, step_size):
    unknown = [attack for attack in attacks if attack not in ATTACKS]
    if unknown:
        raise ConfigurationError(
            f"unknown attacks {unknown}: choose from {ATTACKS} in the evaluation parameters"
        )
    if any(not (e >= 0) for e in epsilons):
        raise ConfigurationError(f"epsilon (ε) must be >= 0, got {list(epsilons)}")
    if int(steps) < 1 or (step_size is not None and not step_size > 0):
        raise ConfigurationError(
            f"pgd needs steps >= 1 and step_size > 0 (or None), got {steps}, {step_size}"
        )
