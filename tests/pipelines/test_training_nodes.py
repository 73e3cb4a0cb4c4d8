"""Training and evaluation nodes as plain functions: the initialisation chain and the outputs."""

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.pipelines.evaluation.nodes import evaluate_model
from amr_pipeline.pipelines.training.nodes import continued_settings, train_model
from amr_pipeline.item_features import ItemFeatures
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
    assert set(mf) == {"user_factors", "item_factors", "history", "history_metrics",
                       "replicates"}
    assert mf["replicates"] == {}, "one replicate by default: nothing beside the model"
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
    scratch = train_model(train, users, items, {**_parameters("duif", 0), "initialise_users": False,
                                                "seed": 9},
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
    ranks, others, logged = evaluate_model(
        candidates, items, vbpr["user_factors"], vbpr["item_factors"], {"cutoffs": [5, 10, 20]},
        vbpr["feature_projection"], features, train=train)
    assert len(ranks) == N_USERS and ranks["rank"].between(0, 999).all()
    assert others == {}
    # the full ranking sees every non-training item, so it ranks the test item no higher
    assert (ranks["full_rank"] >= ranks["rank"]).all()
    assert ranks["full_rank"].max() <= N_ITEMS - 1
    for key in ("hr_at_10", "ndcg_at_20", "warm.hr_at_5", "full_hr_at_10", "full_recall_at_20"):
        assert key in logged and logged[key]["step"] == 0


def test_replicates_chain_replicate_by_replicate_and_the_same_seed_gives_the_same_numbers(
        tables):
    """Replicate 0 is the single-replicate model; replicate k starts from the upstream model's
    replicate k, trains with another seed, and a second run gives identical tables and ranks."""
    train, users, items, candidates, features = tables
    mf = train_model(train, users, items, _parameters("mf_bpr", 2), candidates, replicates=2)
    single = train_model(train, users, items, _parameters("mf_bpr", 2), candidates)
    pd.testing.assert_frame_equal(mf["user_factors"], single["user_factors"])
    assert set(mf["replicates"]) == {1}
    other = mf["replicates"][1]["user_factors"]
    assert not other.equals(mf["user_factors"]), "replicate 1 trains with another seed"
    vbpr = train_model(train, users, items, _parameters("vbpr", 0), candidates, features,
                       mf["user_factors"], mf["item_factors"], replicates=2,
                       initial_replicates=mf["replicates"])
    pd.testing.assert_frame_equal(vbpr["replicates"][1]["user_factors"], other)
    again = train_model(train, users, items, _parameters("mf_bpr", 2), candidates, replicates=2)
    pd.testing.assert_frame_equal(again["replicates"][1]["item_factors"],
                                  mf["replicates"][1]["item_factors"])
    runs = [evaluate_model(candidates, items, model["user_factors"], model["item_factors"],
                           {"cutoffs": [10]}, train=train, replicates=model["replicates"],
                           model_name="mf_bpr") for model in (mf, again)]
    pd.testing.assert_frame_equal(runs[0][1][1]["mf_bpr_ranks"], runs[1][1][1]["mf_bpr_ranks"])
    with pytest.raises(Exception, match="replicate 1 of the model this one starts from"):
        train_model(train, users, items, _parameters("vbpr", 0), candidates, features,
                    mf["user_factors"], mf["item_factors"], replicates=2, initial_replicates={})


def test_a_continued_run_starts_from_the_given_tables_and_stores_replicate_histories(tables):
    """Figure 3's runs through the training node: from VBPR's tables (all replicates), epochs
    and evaluation from the overrides, each replicate's history beside its tables."""
    train, users, items, candidates, features = tables
    vbpr = train_model(train, users, items, _parameters("vbpr", 1), candidates, features,
                       replicates=2)
    settings = continued_settings({**_parameters("vbpr", 1), "initialise_users": False},
                                  {"epochs": 2, "eval_every": 1})
    assert settings["selection_metric"] == "last" and settings["initialise_users"] is True
    continued = train_model(train, users, items, settings, candidates, features,
                            vbpr["user_factors"], vbpr["item_factors"],
                            vbpr["feature_projection"], replicates=2,
                            initial_replicates=vbpr["replicates"])
    start = evaluate_model(candidates, items, vbpr["user_factors"], vbpr["item_factors"],
                           {"cutoffs": [10]}, vbpr["feature_projection"], features)[2]
    history = continued["history"]
    assert history["epoch"].tolist() == [0, 1, 2]
    assert history["hr_at_10"].iloc[0] == pytest.approx(start["hr_at_10"]["value"])
    replicate = continued["replicates"][1]
    assert set(replicate) == {"user_factors", "item_factors", "feature_projection",
                              "training_history"}
    assert replicate["training_history"]["epoch"].tolist() == [0, 1, 2]


def test_final_fit_on_train_and_validation_trains_validation_pairs_never_test_pairs():
    from amr_pipeline.errors import ConfigurationError
    from amr_pipeline.pipelines.training.nodes import final_training_data
    from amr_pipeline.recsys.data import leave_one_out, mark_cold_items

    rng = np.random.default_rng(4)
    pairs = pd.DataFrame({"user_id": np.repeat(np.arange(40), 5),
                          "item_id": rng.integers(0, 300, 200)}).drop_duplicates()
    train, validation, test = leave_one_out(pairs, seed=1)
    items = mark_cold_items(pd.DataFrame({"item_id": np.arange(300)}), train)
    candidates = sample_candidates(validation, pairs, 300, n_negatives=50, seed=2)

    def keys(frame):
        return set(zip(frame.user_id, frame.item_id))

    final, final_items, selection = final_training_data(train, validation, items, candidates,
                                                        "train_and_validation")
    assert keys(final) == keys(train) | keys(validation)
    assert not keys(final) & keys(test)
    assert selection.empty, "validation is trained on: nothing is left to select with"
    assert (final_items.cold == ~final_items.item_id.isin(final.item_id)).all()
    assert final_items.cold.sum() < items.cold.sum()
    held_out, same_items, same_candidates = final_training_data(train, validation, items,
                                                                candidates, "train")
    assert keys(held_out) == keys(train) and same_candidates is candidates
    pd.testing.assert_frame_equal(same_items, items)
    with pytest.raises(ConfigurationError, match="final_fit"):
        final_training_data(train, validation, items, candidates, "everything")


def test_the_selected_settings_file_round_trips_into_the_final_training(tables, tmp_path):
    from amr_pipeline.datasets.stores import SelectedParametersDataset
    from amr_pipeline.pipelines.training.nodes import resolve_settings
    from amr_pipeline.pipelines.tuning.nodes import select_parameters

    train, users, items, candidates, features = tables
    base = {model: _parameters(model, 9) for model in ("mf_bpr", "duif", "vbpr", "amr")}
    base["mf_eals"] = {"n_factors": 4, "iterations": 9, "c0": 1.0}
    selected = {"mf_bpr": {"learning_rate": 0.1, "regularization": 0.0, "epochs": 2,
                           "validation_score": 0.3},
                "duif": {"learning_rate": 0.01, "regularization": 1e-4, "initialise_users": False,
                         "epochs": 1, "validation_score": 0.1},
                "vbpr": {"learning_rate": 0.05, "regularization": 1e-6, "epochs": 0,
                         "validation_score": 0.3},
                "amr": {"learning_rate": 0.05, "regularization": 1e-6, "epsilon": 1.0,
                        "adversarial_weight": 0.1, "epochs": 3, "validation_score": 0.4},
                "mf_eals": {"c0": 64.0, "regularization": 1.0, "iterations": 4,
                            "validation_score": 0.2}}
    document, _ = select_parameters({"selection_metric": "ndcg_at_10"}, **selected)
    store = SelectedParametersDataset(str(tmp_path / "selected_parameters.yml"))
    assert store.load() == {}, "no tuning yet: nothing selected"
    assert resolve_settings(base, store.load(), True) == base
    store.save(document)
    settings = resolve_settings(base, store.load(), True)
    assert settings["amr"] == {**base["amr"], "learning_rate": 0.05, "regularization": 1e-6,
                               "epsilon": 1.0, "adversarial_weight": 0.1, "epochs": 3}
    assert settings["mf_eals"]["c0"] == 64.0 and settings["mf_eals"]["iterations"] == 4
    assert resolve_settings(base, store.load(), False) == base, "pinned: the file is ignored"
    trained = train_model(train, users, items, settings["mf_bpr"], candidates)
    assert trained["history"].epoch.max() == 2
    reference = train_model(train, users, items, {**base["mf_bpr"], "learning_rate": 0.1,
                                                  "regularization": 0.0, "epochs": 2}, candidates)
    pd.testing.assert_frame_equal(trained["user_factors"], reference["user_factors"])
    (tmp_path / "selected_parameters.yml").write_text("training: [not, a, mapping]")
    with pytest.raises(Exception, match="run `kedro run --pipeline=tuning`"):
        store.load()
