"""Filtering, ids, leave-one-out and candidate invariants (paper 4.1.1-4.1.2)."""

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.errors import ConfigurationError, RawDataError
from amr_pipeline.recsys import data


def _random_interactions(n_users=500, n_items=1300, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        count = int(rng.integers(1, 12))
        for item in rng.choice(n_items, count, replace=False):
            rows.append((f"u{user:03d}", f"i{item:04d}"))
    interactions = pd.DataFrame(rows, columns=["user_raw_id", "item_raw_id"])
    items = pd.DataFrame({"item_raw_id": [f"i{i:04d}" for i in range(n_items)]})
    items["image"] = items["item_raw_id"] + ".jpg"
    return interactions, items


@pytest.fixture
def indexed():
    interactions, items = _random_interactions()
    filtered, kept = data.filter_interactions(interactions, items, min_user_interactions=2)
    return data.assign_ids(filtered, kept)


def test_filter_collapses_duplicates_and_applies_thresholds():
    interactions = pd.DataFrame(
        {
            "user_raw_id": ["a", "a", "a", "b", "c", "c", "c"],
            "item_raw_id": ["x", "x", "y", "x", "y", "z", "w"],
        }
    )
    items = pd.DataFrame({"item_raw_id": ["x", "y", "z", "w", "v"],
                          "image": ["x.jpg", "y.jpg", None, "w.jpg", "v.jpg"]})
    pairs, kept = data.filter_interactions(interactions, items, min_user_interactions=2)
    # b has one interaction; the duplicate (a, x) collapses; z has no image; v no interaction.
    assert sorted(map(tuple, pairs.to_numpy())) == [("a", "x"), ("a", "y"), ("c", "w"), ("c", "y")]
    assert sorted(kept["item_raw_id"]) == ["w", "x", "y"]


def test_filter_samples_users_with_seed():
    interactions, items = _random_interactions()
    first, _ = data.filter_interactions(interactions, items, sample_users=20,
                                        min_user_interactions=1, seed=3)
    again, _ = data.filter_interactions(interactions, items, sample_users=20,
                                        min_user_interactions=1, seed=3)
    other, _ = data.filter_interactions(interactions, items, sample_users=20,
                                        min_user_interactions=1, seed=4)
    assert first["user_raw_id"].nunique() == 20
    pd.testing.assert_frame_equal(first, again)
    assert set(first["user_raw_id"]) != set(other["user_raw_id"])


def test_filter_that_leaves_nothing_is_a_clear_error():
    interactions, items = _random_interactions()
    with pytest.raises(RawDataError, match="min_user_interactions"):
        data.filter_interactions(interactions, items, min_user_interactions=1000)


def test_ids_are_contiguous_and_map_back(indexed):
    interactions, users, items = indexed
    assert sorted(users["user_id"]) == list(range(len(users)))
    assert sorted(items["item_id"]) == list(range(len(items)))
    assert interactions["user_id"].max() == len(users) - 1
    assert set(interactions["item_id"]) == set(items["item_id"])


def test_leave_one_out_invariants(indexed):
    interactions, users, items = indexed
    train, validation, test = data.leave_one_out(interactions, seed=1)
    assert test["user_id"].value_counts().eq(1).all()
    assert test["user_id"].nunique() == len(users)
    assert validation["user_id"].is_unique
    keys = lambda frame: set(map(tuple, frame[["user_id", "item_id"]].to_numpy()))  # noqa: E731
    assert not keys(test) & keys(train)
    assert not keys(validation) & keys(train)
    assert not keys(validation) & keys(test)
    assert keys(train) | keys(validation) | keys(test) == keys(interactions)
    # validation only where the user keeps at least one training interaction
    assert validation["user_id"].isin(train["user_id"]).all()
    sizes = interactions.groupby("user_id").size()
    assert set(validation["user_id"]) == set(sizes.index[sizes >= 3])


def test_leave_one_out_is_seeded(indexed):
    interactions = indexed[0]
    first = data.leave_one_out(interactions, seed=5)
    again = data.leave_one_out(interactions, seed=5)
    for a, b in zip(first, again):
        pd.testing.assert_frame_equal(a, b)
    assert not data.leave_one_out(interactions, seed=6)[2].equals(first[2])


def test_cold_items_are_those_absent_from_train(indexed):
    interactions, _, items = indexed
    train, _, test = data.leave_one_out(interactions, seed=1)
    marked = data.mark_cold_items(items, train)
    assert set(marked.loc[marked["cold"], "item_id"]).isdisjoint(train["item_id"])
    expected = np.mean(~test["item_id"].isin(train["item_id"]))
    assert data.cold_share(test, marked) == pytest.approx(expected)


def test_candidates_invariants(indexed):
    interactions, _, items = indexed
    _, _, test = data.leave_one_out(interactions, seed=1)
    candidates = data.sample_candidates(test, interactions, len(items), seed=2)
    per_user = candidates.groupby("user_id")
    assert per_user.size().eq(1000).all()
    assert per_user["item_id"].nunique().eq(1000).all()
    assert per_user["is_test"].sum().eq(1).all()
    chosen = candidates[candidates["is_test"]].set_index("user_id")["item_id"]
    assert chosen.sort_index().equals(test.set_index("user_id")["item_id"].sort_index())
    negatives = candidates[~candidates["is_test"]]
    merged = negatives.merge(interactions, on=["user_id", "item_id"])
    assert merged.empty, "a negative candidate is one of the user's interactions"
    pd.testing.assert_frame_equal(
        candidates, data.sample_candidates(test, interactions, len(items), seed=2)
    )


def _uniformity_case(n_users=3000, n_items=60):
    """Users with 2 to 11 positives each (sliding windows over the items) and a test item."""
    rng = np.random.default_rng(11)
    rows = []
    for user in range(n_users):
        size = int(rng.integers(2, 12))
        rows += [(user, (user + offset) % n_items) for offset in range(size)]
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id"])
    test = interactions.groupby("user_id", as_index=False).first()
    return interactions, test, n_items


def _uniformity_p_value(candidates, interactions, n_items, n_negatives):
    """Chi-square p-value of the negatives' item counts against uniform sampling without
    replacement from each user's non-interacted items. Item i is drawn for user u with
    probability ``π_ui = n_negatives / (n_items - |P_u|)`` (0 when i ∈ P_u), so its count has
    mean ``Σ_u π_ui`` and variance ``Σ_u π_ui (1 - π_ui)``; the standardised squares sum to
    about χ² with ``n_items - 1`` degrees of freedom (the total is fixed)."""
    from scipy.stats import chi2

    negatives = candidates.loc[~candidates["is_test"], "item_id"].to_numpy()
    observed = np.bincount(negatives, minlength=n_items).astype(np.float64)
    positives = np.zeros((interactions["user_id"].max() + 1, n_items), bool)
    positives[interactions["user_id"], interactions["item_id"]] = True
    share = n_negatives / (n_items - positives.sum(axis=1))
    probability = (~positives) * share[:, None]
    expected = probability.sum(axis=0)
    variance = (probability * (1 - probability)).sum(axis=0)
    statistic = ((observed - expected) ** 2 / variance).sum()
    return chi2.sf(statistic, n_items - 1)


def _biased_candidates(test, interactions, n_items, n_negatives, seed):
    """A sampler that is 10% more likely to draw even items: what the test must catch."""
    rng = np.random.default_rng(seed)
    weight = np.where(np.arange(n_items) % 2 == 0, 1.1, 1.0)
    rows = []
    for user, group in interactions.groupby("user_id"):
        allowed = np.setdiff1d(np.arange(n_items), group["item_id"])
        p = weight[allowed] / weight[allowed].sum()
        test_item = int(test.loc[test["user_id"] == user, "item_id"].iloc[0])
        rows.append((user, test_item, True))
        rows += [(user, int(item), False)
                 for item in rng.choice(allowed, n_negatives, replace=False, p=p)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "is_test"])


def test_candidates_are_uniform_over_non_interacted_items():
    """Chi-square over items (seeded; p > 0.001), and the same test rejects a sampler with a
    10% bias (p < 0.001), so it has the power to fail."""
    interactions, test, n_items = _uniformity_case()
    n_negatives = 20
    candidates = data.sample_candidates(
        test, interactions, n_items, n_negatives=n_negatives, seed=5
    )
    negatives = candidates[~candidates["is_test"]]
    assert not negatives.merge(interactions, on=["user_id", "item_id"]).shape[0]
    assert not negatives.duplicated(["user_id", "item_id"]).any()
    assert negatives.groupby("user_id").size().eq(n_negatives).all()
    assert _uniformity_p_value(candidates, interactions, n_items, n_negatives) > 0.001

    biased = _biased_candidates(test, interactions, n_items, n_negatives, seed=5)
    assert _uniformity_p_value(biased, interactions, n_items, n_negatives) < 0.001


def test_too_few_items_for_negatives_is_a_configuration_error(indexed):
    interactions, _, items = indexed
    _, _, test = data.leave_one_out(interactions, seed=1)
    with pytest.raises(ConfigurationError, match="n_negatives"):
        data.sample_candidates(test, interactions, len(items), n_negatives=len(items))
