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
