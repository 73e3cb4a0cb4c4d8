"""Training triples ``(u, i, j)`` for the BPR loss (eq. 3).

One negative ``j`` per training pair per epoch, uniform over the items seen in training that
``u`` has not interacted with: cold items are never negatives (4.1.2). The draw for an epoch
depends only on ``(seed, epoch)``, so a resumed run samples exactly what an uninterrupted one
would.
"""

from __future__ import annotations

import numpy as np

from amr_pipeline.errors import ConfigurationError


class NegativeSampler:
    """Vectorised rejection sampling of negatives for ``(users, items)`` training pairs."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.n_items = int(n_items)
        self.warm_items = np.unique(self.items)
        self._keys = np.unique(self.users * self.n_items + self.items)
        per_user = np.bincount(self._keys // self.n_items) if len(self._keys) else np.zeros(1)
        if per_user.max() >= len(self.warm_items):
            raise ConfigurationError(
                "a user has interacted with every training item, so no negative can be drawn: "
                "drop such users in data_processing"
            )

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each ``(u, j)`` is a training interaction."""
        keys = np.asarray(users, np.int64) * self.n_items + np.asarray(items, np.int64)
        slots = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return self._keys[slots] == keys

    def negatives(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One uniform non-interacted warm item per entry of ``users``."""
        users = np.asarray(users, np.int64)
        negatives = self.warm_items[rng.integers(len(self.warm_items), size=len(users))]
        redraw = np.flatnonzero(self.is_positive(users, negatives))
        while len(redraw):
            redrawn = rng.integers(len(self.warm_items), size=len(redraw))
            negatives[redraw] = self.warm_items[redrawn]
            redraw = redraw[self.is_positive(users[redraw], negatives[redraw])]
        return negatives

    def epoch(self, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shuffled ``(users, positives, negatives)``: a function of ``(seed, epoch)`` only."""
        rng = epoch_rng(seed, epoch)
        order = rng.permutation(len(self.users))
        users = self.users[order]
        return users, self.items[order], self.negatives(users, rng)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The NumPy generator for one epoch of one seeded run."""
    return np.random.default_rng([int(seed), int(epoch)])
