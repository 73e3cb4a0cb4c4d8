"""Planted data where only image features can rank cold items: VBPR must beat MF-BPR there.

Each of 10 taste groups owns a direction of the feature space; an item's features are its
group's direction plus noise, and a user pins only items of its own group. Every user's test
item is cold (never in training), so MF-BPR scores it with ``q_i = 0`` and can only guess,
while VBPR learns the projection ``E`` from warm items and ranks the cold item from its
features (paper 4.1.2).
"""

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.recsys import data
from amr_pipeline.recsys.metrics import rank_candidates, summarise
from amr_pipeline.recsys.models import warm_item_mask
from amr_pipeline.recsys.train import train_bpr

N_GROUPS, USERS_PER_GROUP, WARM_PER_GROUP, COLD_PER_GROUP = 10, 20, 30, 10
TRAIN_PER_USER, N_NEGATIVES, NOISE_DIMS = 6, 99, 6


def planted_data(seed=0):
    """``(train, test, candidates, features, n_users, n_items)``: items 0..299 warm (in training),
    300..399 cold; group g's items are ``g*30..g*30+29`` and ``300+g*10..300+g*10+9``."""
    rng = np.random.default_rng(seed)
    n_users = N_GROUPS * USERS_PER_GROUP
    n_warm = N_GROUPS * WARM_PER_GROUP
    n_items = n_warm + N_GROUPS * COLD_PER_GROUP
    item_group = np.r_[np.repeat(np.arange(N_GROUPS), WARM_PER_GROUP),
                       np.repeat(np.arange(N_GROUPS), COLD_PER_GROUP)]
    features = np.concatenate(
        [np.eye(N_GROUPS)[item_group], np.zeros((n_items, NOISE_DIMS))], axis=1
    ) + 0.3 * rng.standard_normal((n_items, N_GROUPS + NOISE_DIMS))
    train_rows, test_rows = [], []
    for user in range(n_users):
        group = user // USERS_PER_GROUP
        warm = np.arange(group * WARM_PER_GROUP, (group + 1) * WARM_PER_GROUP)
        cold = n_warm + np.arange(group * COLD_PER_GROUP, (group + 1) * COLD_PER_GROUP)
        train_rows += [(user, int(i)) for i in rng.choice(warm, TRAIN_PER_USER, replace=False)]
        test_rows.append((user, int(rng.choice(cold))))
    train = pd.DataFrame(train_rows, columns=["user_id", "item_id"])
    test = pd.DataFrame(test_rows, columns=["user_id", "item_id"])
    candidates = data.sample_candidates(
        test, pd.concat([train, test]), n_items, n_negatives=N_NEGATIVES, seed=seed + 1
    )
    return train, test, candidates, features.astype(np.float32), n_users, n_items


@pytest.fixture(scope="module")
def cold_hit_ratios():
    train, _test, candidates, features, n_users, n_items = planted_data()
    cold = ~warm_item_mask(train, n_items)
    assert cold[300:].all()
    common = {"n_factors": 8, "epochs": 40, "batch_size": 64, "learning_rate": 0.05,
              "regularization": 0.001, "seed": 3}
    hit_ratios = {}
    for model in ("mf_bpr", "vbpr"):
        result = train_bpr(
            train, n_users, n_items, params={**common, "model": model},
            features=None if model == "mf_bpr" else features, progress=False,
        )
        ranks = rank_candidates(
            result.model, None if model == "mf_bpr" else features, candidates, cold_items=cold
        )
        assert ranks["cold"].all()
        hit_ratios[model] = summarise(ranks[ranks["cold"]], cutoffs=(10,))["hr_at_10"]
    return hit_ratios


def test_vbpr_ranks_cold_items_from_their_features(cold_hit_ratios):
    """Chance is 10/100; VBPR reaches at least three times chance. (About 10 of the 99
    negatives share the user's group, and its warm ones also carry learned ``q_i``, so even a
    perfect use of the features leaves the cold item below some of them.)"""
    assert cold_hit_ratios["vbpr"] >= 0.3


def test_vbpr_beats_mf_bpr_on_cold_items_by_a_clear_margin(cold_hit_ratios):
    """MF-BPR scores every cold item 0, tied with the cold negatives (ties count against it)."""
    assert cold_hit_ratios["vbpr"] >= cold_hit_ratios["mf_bpr"] + 0.3
