"""Tests of the recommender core. Fixtures are built in code."""

from __future__ import annotations

import numpy as np
import pandas as pd


def planted_data(
    n_users=240, n_items=1300, n_groups=40, per_user=12, dims=16, n_candidates=1000, seed=0
):
    """Users and items in ``n_groups`` taste groups; each user interacts only within its group
    and item features encode the group. Returns ``train, candidates, features``; candidates
    hold each user's held-out item plus ``n_candidates - 1`` non-interacted items, so a
    random ranker scores HR@10 = 10 / n_candidates."""
    rng = np.random.default_rng(seed)
    item_group = rng.integers(n_groups, size=n_items)
    user_group = np.arange(n_users) % n_groups
    train_rows, test_items = [], []
    for user in range(n_users):
        pool = np.flatnonzero(item_group == user_group[user])
        chosen = rng.choice(pool, size=per_user, replace=False)
        test_items.append(chosen[0])
        train_rows += [(user, item) for item in chosen[1:]]
    train = pd.DataFrame(train_rows, columns=["user_id", "item_id"])
    candidate_rows = []
    for user in range(n_users):
        seen = set(train.item_id[train.user_id == user]) | {test_items[user]}
        others = np.setdiff1d(np.arange(n_items), sorted(seen))
        negatives = rng.choice(others, size=n_candidates - 1, replace=False)
        candidate_rows.append(
            pd.DataFrame(
                {
                    "user_id": user,
                    "item_id": np.r_[test_items[user], negatives],
                    "is_test": np.r_[True, np.zeros(n_candidates - 1, bool)],
                }
            )
        )
    candidates = pd.concat(candidate_rows, ignore_index=True)
    centers = rng.normal(size=(n_groups, dims))
    features = (5.0 * centers[item_group] + rng.normal(size=(n_items, dims))).astype(np.float32)
    return train, candidates, features


def random_data(n_users=30, n_items=50, n_pairs=200, dims=8, seed=0):
    """Small random interactions and features; the last five items are cold."""
    rng = np.random.default_rng(seed)
    train = pd.DataFrame(
        {
            "user_id": np.r_[np.arange(n_users), rng.integers(n_users, size=n_pairs - n_users)],
            "item_id": rng.integers(n_items - 5, size=n_pairs),
        }
    ).drop_duplicates(ignore_index=True)
    features = rng.normal(size=(n_items, dims)).astype(np.float32)
    return train, features
