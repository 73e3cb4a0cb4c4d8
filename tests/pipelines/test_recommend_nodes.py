"""The recommend pipeline's nodes on small stored factor tables: every user's top-N against a
brute-force ranking, the MLflow model's predict, unknown users, no new images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.pipelines.recommend.nodes import (
    UnknownUserError,
    predict,
    prepare_recommender,
    rank_new_images,
    recommend_all,
)
from amr_pipeline.recsys.models import FactorModel
from amr_pipeline.vision.images import ImageFolder

N_USERS, N_ITEMS, K, D = 40, 60, 4, 6
PARAMETERS = {"model": "amr", "top_k": 7, "top_users": 3, "exclude_seen": True,
              "unknown_users": "error"}


@pytest.fixture(scope="module")
def stored():
    rng = np.random.default_rng(3)
    model = FactorModel(rng.normal(size=(N_USERS, K)), rng.normal(size=(N_ITEMS, K)),
                        rng.normal(size=(D, K)), feature_scale=3.0)
    model.item_factors[50:] = 0  # cold items
    features = rng.normal(size=(N_ITEMS, D)).astype(np.float32)
    users = pd.DataFrame({"user_id": np.arange(N_USERS),
                          "user_raw_id": [f"u{i}" for i in range(N_USERS)]})
    items = pd.DataFrame({"item_id": np.arange(N_ITEMS),
                          "item_raw_id": [f"i{i}" for i in range(N_ITEMS)],
                          "cold": np.arange(N_ITEMS) >= 50})
    pairs = {(int(u), int(i)) for u, i in zip(rng.integers(0, N_USERS, 200),
                                               rng.integers(0, 50, 200))}
    train = pd.DataFrame(sorted(pairs), columns=["user_id", "item_id"])
    tables = {f"amr__{name}": frame for name, frame in model.to_frames().items()}
    ids_only = FactorModel(rng.normal(size=(N_USERS, K)), rng.normal(size=(N_ITEMS, K)))
    tables.update({f"mf_bpr__{name}": frame for name, frame in ids_only.to_frames().items()})
    from amr_pipeline.item_features import ItemFeatures

    served = prepare_recommender(users, items, train, ItemFeatures(np.arange(N_ITEMS), features),
                                 PARAMETERS, **tables)
    return model, features, train, served


def test_every_user_gets_the_brute_force_top_n_without_training_items(stored):
    model, features, train, (user_vectors, item_vectors, seen, _) = stored
    recommendations = recommend_all(user_vectors, item_vectors, seen, PARAMETERS)
    assert list(recommendations.columns) == ["user_raw_id", "rank", "item_raw_id", "score", "cold"]
    assert (recommendations.groupby("user_raw_id").size() == PARAMETERS["top_k"]).all()
    assert recommendations["user_raw_id"].nunique() == N_USERS
    scores = model.user_factors @ model.item_vectors(features).T
    trained = set(map(tuple, train.to_numpy()))
    for user in range(N_USERS):
        ranked = sorted((i for i in range(N_ITEMS) if (user, i) not in trained),
                        key=lambda i: (-scores[user, i], i))[:PARAMETERS["top_k"]]
        rows = recommendations[recommendations["user_raw_id"] == f"u{user}"]
        assert rows["rank"].tolist() == list(range(1, PARAMETERS["top_k"] + 1))
        assert rows["item_raw_id"].tolist() == [f"i{i}" for i in ranked]
        np.testing.assert_allclose(rows["score"], scores[user, ranked], rtol=1e-5)
        assert rows["cold"].tolist() == [i >= 50 for i in ranked]


def test_recommend_workers_give_the_same_frame(stored, monkeypatch):
    """``recommend.workers`` (null: all cores) changes nothing in the recommendations."""
    from amr_pipeline.recsys import recommend as recommend_module

    monkeypatch.setattr(recommend_module, "TILE_SCORES", 64)  # blocks of 4 users
    monkeypatch.setattr(recommend_module, "ROWS", 4)
    _, _, _, (user_vectors, item_vectors, seen, _) = stored
    one = recommend_all(user_vectors, item_vectors, seen, {**PARAMETERS, "workers": 1})
    for workers in (2, None):
        pd.testing.assert_frame_equal(
            recommend_all(user_vectors, item_vectors, seen, {**PARAMETERS, "workers": workers}),
            one, check_exact=True)
    with pytest.raises(ConfigurationError, match="workers"):
        recommend_all(user_vectors, item_vectors, seen, {**PARAMETERS, "workers": 0})


def test_predict_for_a_few_users_starts_no_threads(stored, monkeypatch):
    """A handful of users is one block: the served model leaves BLAS and threads alone."""
    from amr_pipeline.recsys import recommend as recommend_module

    def refuse(*args, **kwargs):
        raise AssertionError("no thread pool expected")

    monkeypatch.setattr(recommend_module, "ThreadPoolExecutor", refuse)
    monkeypatch.setattr(recommend_module, "threadpool_limits", refuse)
    _, _, _, (user_vectors, item_vectors, seen, _) = stored
    answer = predict(pd.DataFrame({"user_raw_id": ["u3", "u1", "u7"]}), user_vectors,
                     item_vectors, seen, 5, True)
    assert [len(items) for items in answer["item_raw_ids"]] == [5, 5, 5]


def test_predict_gives_the_same_lists_and_takes_request_parameters(stored):
    _, _, _, (user_vectors, item_vectors, seen, _) = stored
    recommendations = recommend_all(user_vectors, item_vectors, seen, PARAMETERS)
    request = pd.DataFrame({"user_raw_id": ["u5", "u0", "u5"]})
    answer = predict(request, user_vectors, item_vectors, seen, 7, True)
    assert answer["user_raw_id"].tolist() == ["u5", "u0", "u5"]
    for row in answer.itertuples(index=False):
        expected = recommendations[recommendations["user_raw_id"] == row.user_raw_id]
        assert row.item_raw_ids == expected["item_raw_id"].tolist()
        np.testing.assert_allclose(row.scores, expected["score"], rtol=1e-6)
    shorter = predict(request, user_vectors, item_vectors, seen, 3, False)
    assert all(len(items) == 3 for items in shorter["item_raw_ids"])


def test_unknown_users_raise_naming_them_or_get_popular_items(stored):
    _, _, train, (user_vectors, item_vectors, seen, _) = stored
    request = pd.DataFrame({"user_raw_id": ["u1", "nobody"]})
    with pytest.raises(UnknownUserError, match="'nobody'"):
        predict(request, user_vectors, item_vectors, seen, 5, True)
    answer = predict(request, user_vectors, item_vectors, seen, 5, True, "popular")
    counts = train["item_id"].value_counts()
    popular = sorted(counts.index, key=lambda i: (-counts[i], i))[:5]
    assert answer["item_raw_ids"][1] == [f"i{i}" for i in popular]
    assert answer["scores"][1] == [float(counts[i]) for i in popular]


@pytest.mark.parametrize("top_k, problem", [(0, "positive integer"), (-3, "positive integer"),
                                            (True, "positive integer"), ("5", "positive integer"),
                                            (N_ITEMS + 1, "at most that many")])
def test_a_top_k_outside_one_to_the_catalogue_is_refused_naming_it(stored, top_k, problem):
    _, _, _, (user_vectors, item_vectors, seen, _) = stored
    request = pd.DataFrame({"user_raw_id": ["u1"]})
    with pytest.raises(ConfigurationError, match=problem):
        predict(request, user_vectors, item_vectors, seen, top_k, True)
    with pytest.raises(ConfigurationError, match=problem):
        recommend_all(user_vectors, item_vectors, seen, {**PARAMETERS, "top_k": top_k})
    whole = predict(request, user_vectors, item_vectors, seen, N_ITEMS, False)
    assert len(whole["item_raw_ids"][0]) == N_ITEMS


def test_the_executor_is_checked_and_names_its_parameter(stored):
    _, _, _, (user_vectors, item_vectors, seen, _) = stored
    with pytest.raises(ConfigurationError, match="recommend.executor must be one of"):
        recommend_all(user_vectors, item_vectors, seen, {**PARAMETERS, "executor": "spark"})
    with pytest.raises(ConfigurationError, match="recommend.executor: ray, but this process"):
        recommend_all(user_vectors, item_vectors, seen, {**PARAMETERS, "executor": "ray"})


def test_a_model_the_pipeline_does_not_train_is_refused(stored):
    with pytest.raises(ConfigurationError, match="vbpr"):
        prepare_recommender(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), None,
                            {**PARAMETERS, "model": "vbpr"},
                            amr__user_factors=pd.DataFrame())


def test_no_new_images_gives_empty_frames(stored, tmp_path):
    _, _, _, (user_vectors, item_vectors, seen, projection) = stored
    recommendations = recommend_all(user_vectors, item_vectors, seen, PARAMETERS)
    for folder in (tmp_path / "absent", tmp_path):
        ranked, placed = rank_new_images(ImageFolder(folder), None, projection, user_vectors,
                                         recommendations, {}, PARAMETERS)
        assert ranked.empty and list(ranked.columns) == ["image", "rank", "user_raw_id", "score"]
        assert placed.empty and list(placed.columns) == ["user_raw_id", "image", "rank_in_top_n"]


def test_new_images_are_scored_with_zero_q_and_the_feature_scale(stored, tmp_path, monkeypatch):
    model, _, _, (user_vectors, item_vectors, seen, projection) = stored
    recommendations = recommend_all(user_vectors, item_vectors, seen, PARAMETERS)
    for name in ("a.jpg", "b.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    new = np.random.default_rng(9).normal(size=(2, D)).astype(np.float32) * 5
    from amr_pipeline.vision import new_images

    def fake(folder, names, cache, parameters):
        assert names == ["a.jpg", "b.png"]
        return names, new
    monkeypatch.setattr(new_images, "extract_new_features", fake)
    ranked, placed = rank_new_images(ImageFolder(tmp_path), None, projection, user_vectors,
                                     recommendations, {}, PARAMETERS)
    scores = model.user_factors @ (new @ (model.feature_projection / 3.0)).T  # users x images
    for image, column in (("a.jpg", 0), ("b.png", 1)):
        best = sorted(range(N_USERS), key=lambda u: (-scores[u, column], u))[:3]
        rows = ranked[ranked["image"] == image]
        assert rows["user_raw_id"].tolist() == [f"u{u}" for u in best]
        assert rows["rank"].tolist() == [1, 2, 3]
        np.testing.assert_allclose(rows["score"], scores[best, column], rtol=1e-5)
    expected = set()
    for user in range(N_USERS):
        top = recommendations.loc[recommendations["user_raw_id"] == f"u{user}", "score"]
        for image, column in (("a.jpg", 0), ("b.png", 1)):
            rank = int((top.to_numpy() >= scores[user, column]).sum()) + 1
            if rank <= PARAMETERS["top_k"]:
                expected.add((f"u{user}", image, rank))
    assert set(placed.itertuples(index=False, name=None)) == expected
    assert expected  # some users get a new image in their top-N
