"""Leave-one-out ranks, HR@N and NDCG@N (paper 4.1.2)."""

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.metrics import rank_candidates, summarise
from amr_pipeline.recsys.models import FactorModel


def _scalar_model(item_scores):
    """K = 1 model whose score for every user is ``item_scores[item]``."""
    scores = np.asarray(item_scores, np.float32)[:, None]
    return FactorModel(np.ones((3, 1), np.float32), scores)


def _candidates(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "is_test"])


def test_rank_counts_negatives_scoring_at_least_the_test_item():
    model = _scalar_model([5.0, 4.0, 3.0, 2.0, 1.0, 3.0])
    candidates = _candidates(
        [(0, 2, True), (0, 0, False), (0, 1, False), (0, 5, False), (0, 4, False)]
        + [(1, 0, True), (1, 1, False), (1, 2, False), (1, 3, False), (1, 4, False)]
        + [(2, 4, True), (2, 0, False), (2, 1, False), (2, 2, False), (2, 3, False)]
    )
    ranks = rank_candidates(model, None, candidates)
    # user 0: items 0, 1 score higher and item 5 ties, so three are at least as good
    assert ranks.to_dict("list") == {"user_id": [0, 1, 2], "item_id": [2, 0, 4], "rank": [3, 0, 4]}


def test_rank_does_not_depend_on_row_order():
    rng = np.random.default_rng(0)
    model = FactorModel(rng.normal(size=(20, 4)), rng.normal(size=(60, 4)))
    rows = []
    for user in range(20):
        items = rng.choice(60, 30, replace=False)
        rows += [(user, item, k == 0) for k, item in enumerate(items)]
    candidates = _candidates(rows)
    expected = rank_candidates(model, None, candidates)
    shuffled = candidates.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(rank_candidates(model, None, shuffled), expected)
    scores = model.user_factors @ model.item_factors.T
    for user, item, rank in expected.itertuples(index=False):
        negatives = candidates[(candidates.user_id == user) & ~candidates.is_test].item_id
        assert rank == int((scores[user, negatives] >= scores[user, item]).sum())


def test_users_with_different_candidate_counts_are_ranked_too():
    model = _scalar_model([5.0, 4.0, 3.0, 2.0, 1.0])
    candidates = _candidates(
        [(0, 3, True), (0, 0, False), (0, 4, False), (1, 1, True), (1, 0, False), (1, 2, False),
         (1, 3, False), (1, 4, False)]
    )
    assert rank_candidates(model, None, candidates)["rank"].tolist() == [1, 1]


def test_cold_column_marks_cold_test_items():
    model = _scalar_model([1.0, 2.0, 3.0])
    candidates = _candidates([(0, 0, True), (0, 1, False), (1, 2, True), (1, 0, False)])
    ranks = rank_candidates(model, None, candidates, cold_items=np.array([True, False, False]))
    assert ranks["cold"].tolist() == [True, False]


def test_summarise_matches_hand_computed_values():
    summary = summarise(pd.DataFrame({"rank": [0, 3, 7, 12, 40]}), cutoffs=(5, 10, 20))
    assert summary["hr_at_5"] == pytest.approx(2 / 5)
    assert summary["hr_at_10"] == pytest.approx(3 / 5)
    assert summary["hr_at_20"] == pytest.approx(4 / 5)
    assert summary["ndcg_at_5"] == pytest.approx((1 + 1 / np.log2(5)) / 5)
    assert summary["ndcg_at_10"] == pytest.approx((1 + 1 / np.log2(5) + 1 / np.log2(9)) / 5)
    assert summary["ndcg_at_20"] == pytest.approx(
        (1 + 1 / np.log2(5) + 1 / np.log2(9) + 1 / np.log2(14)) / 5
    )
    assert set(summary) == {f"{m}_at_{n}" for m in ("hr", "ndcg") for n in (5, 10, 20)}


@pytest.mark.parametrize(
    "rows",
    [
        [(0, 0, True), (0, 1, True)],
        [(0, 0, False), (0, 1, False)],
        [],
    ],
)
def test_candidates_need_exactly_one_test_item_per_user(rows):
    with pytest.raises(ConfigurationError):
        rank_candidates(_scalar_model([1.0, 2.0]), None, _candidates(rows))


def test_dense_scoring_gives_the_same_ranks():
    from amr_pipeline.recsys.data import sample_candidates

    rng = np.random.default_rng(5)
    model = FactorModel(rng.standard_normal((50, 8)), rng.standard_normal((400, 8)))
    model.item_factors[300:] = 0.0  # cold items: exact ties count against the test item
    held_out = pd.DataFrame({"user_id": np.arange(50), "item_id": rng.integers(0, 400, 50)})
    candidates = sample_candidates(held_out, held_out, 400, n_negatives=99, seed=1)
    gathered = rank_candidates(model, None, candidates)
    dense = rank_candidates(model, None, candidates, dense=True)
    pd.testing.assert_frame_equal(dense, gathered)
    assert gathered["rank"].max() > 0


# --------------------------------------------------- full ranking and corrected metrics
def test_full_ranks_equal_a_brute_force_ranking_over_the_non_interacted_items():
    """Ties count against the test item; training items and the test item itself are left
    out; users come in blocks smaller than the user count."""
    from amr_pipeline.recsys import metrics as module

    rng = np.random.default_rng(0)
    n_users, n_items = 37, 50
    model = FactorModel(rng.normal(size=(n_users, 3)), rng.normal(size=(n_items, 3)).round(1))
    seen = pd.DataFrame({"user_id": rng.integers(0, n_users, 300),
                         "item_id": rng.integers(0, n_items, 300)}).drop_duplicates()
    test = []
    for user in range(n_users):
        left = np.setdiff1d(np.arange(n_items), seen.loc[seen["user_id"] == user, "item_id"])
        test.append((user, rng.choice(left)))
    test = pd.DataFrame(test, columns=["user_id", "item_id"])
    original = module._FULL_BLOCK_SCORES
    module._FULL_BLOCK_SCORES = 8 * n_items  # blocks of 8 users
    try:
        ranks = module.full_ranks(model, None, test, seen)
    finally:
        module._FULL_BLOCK_SCORES = original
    vectors = model.item_vectors()
    expected = []
    for user, target in test.itertuples(index=False):
        scores = vectors @ model.user_factors[user]
        excluded = set(seen.loc[seen["user_id"] == user, "item_id"]) | {target}
        expected.append(sum(scores[i] >= scores[target] for i in range(n_items)
                            if i not in excluded))
    np.testing.assert_array_equal(ranks, expected)
    values = module.full_metrics(ranks)
    np.testing.assert_array_equal(values["full_hr_at_10"], np.asarray(expected) < 10)
    np.testing.assert_allclose(values["full_ndcg_at_10"],
                               [1 / np.log2(r + 2) if r < 10 else 0 for r in expected])


@pytest.mark.parametrize("gamma", [0.0, 0.1])
def test_corrected_metric_minimises_its_definition_by_brute_force(gamma):
    """Krichene and Rendle's BV objective written out with math.comb and minimised
    numerically equals the closed form, for HR@3 and NDCG@3 (N = 30 negatives, 6 sampled)."""
    from math import comb

    from scipy.optimize import minimize

    from amr_pipeline.recsys.metrics import corrected_metric, metric_at_rank

    n_negatives, n_sampled = 30, 6
    for metric in ("hr_at_3", "ndcg_at_3"):
        probability = np.array([[comb(full, r) * comb(n_negatives - full, n_sampled - r)
                                 / comb(n_negatives, n_sampled) for r in range(n_sampled + 1)]
                                for full in range(n_negatives + 1)])
        truth = metric_at_rank(metric, np.arange(n_negatives + 1))

        def objective(values):
            expected = probability @ values
            variance = probability @ values ** 2 - expected ** 2
            return float(((expected - truth) ** 2 + gamma * variance).sum())

        found = minimize(objective, np.zeros(n_sampled + 1), method="BFGS",
                         options={"gtol": 1e-12}).x
        closed = corrected_metric(metric, n_negatives, n_sampled, gamma)
        np.testing.assert_allclose(closed, found, atol=1e-5)
        assert objective(closed) <= objective(found) + 1e-10
