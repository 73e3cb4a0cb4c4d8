"""Training and evaluation nodes as plain functions: the initialisation chain and the outputs."""

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.pipelines.evaluation.nodes import evaluate_model
from amr_pipeline.pipelines.training.nodes import train_model
from amr_pipeline.readers.features import ItemFeatures
from amr_pipeline.recsys.data import sample_candidates

N_USERS, N_ITEMS, DIMS = 30, 1100, 8


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(0)
    pairs = pd.DataFrame({"user_id": np.repeat(np.arange(N_USERS), 6),
                          "item_id": rng.integers(0, 60, N_USERS * 6)}).drop_duplicates()
    test = pairs.groupby("user_id").head(1).reset_index(drop=True)
    train = pairs.drop(pairs.groupby("user_id").head(1).index).reset_index(drop=True)
    items = pd.DataFrame({"item_id": np.arange(N_ITEMS)})
    items["cold"] = ~items["item_id"].isin(train["item_id"])
    users = pd.DataFrame({"user_id": np.arange(N_USERS)})
    candidates = sample_candidates(test, pairs, N_ITEMS, seed=1)
    features = ItemFeatures(np.arange(N_ITEMS), rng.random((N_ITEMS, DIMS), dtype=np.float32))
    return train, users, items, candidates, features


def _parameters(model, epochs):
    return {"model": model, "n_factors": 4, "epochs": epochs, "eval_every": 1, "seed": 3}


def test_the_initialisation_chain_starts_each_model_from_the_previous_one(tables):
    train, users, items, candidates, features = tables
    mf = train_model(train, users, items, _parameters("mf_bpr", 3), candidates)
    assert set(mf) == {"user_factors", "item_factors", "history", "history_metrics"}
    vbpr = train_model(train, users, items, _parameters("vbpr", 0), candidates, features,
                       mf["user_factors"], mf["item_factors"])
    pd.testing.assert_frame_equal(vbpr["user_factors"], mf["user_factors"])
    warm = ~items["cold"].to_numpy()
    np.testing.assert_array_equal(vbpr["item_factors"].to_numpy()[warm],
                                  mf["item_factors"].to_numpy()[warm])
    assert vbpr["feature_projection"].shape[0] == DIMS
    duif = train_model(train, users, items, _parameters("duif", 0), candidates, features,
                       mf["user_factors"])
    pd.testing.assert_frame_equal(duif["user_factors"], mf["user_factors"])
    scratch = train_model(train, users, items, {**_parameters("duif", 0), "initialise_users": False},
                          candidates, features, mf["user_factors"])
    assert not scratch["user_factors"].equals(mf["user_factors"])


def test_training_curves_are_metric_history_by_epoch(tables):
    train, users, items, candidates, _ = tables
    result = train_model(train, users, items, _parameters("mf_bpr", 3), candidates)
    curves = result["history_metrics"]
    assert [point["step"] for point in curves["train.loss"]] == [1, 2, 3]
    assert set(curves) == {"train.loss", "validation.hr_at_10", "validation.ndcg_at_10"}


def test_evaluation_reports_overall_cold_and_warm_metrics(tables):
    train, users, items, candidates, features = tables
    vbpr = train_model(train, users, items, _parameters("vbpr", 2), candidates, features)
    ranks, logged = evaluate_model(candidates, items, vbpr["user_factors"], vbpr["item_factors"],
                                   {"cutoffs": [5, 10, 20]}, vbpr["feature_projection"], features)
    assert len(ranks) == N_USERS and ranks["rank"].between(0, 999).all()
    for key in ("hr_at_10", "ndcg_at_20", "warm.hr_at_5"):
        assert key in logged and logged[key]["step"] == 0
