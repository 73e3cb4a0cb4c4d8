"""Factor tables, scoring, POP and the parquet-ready frame format."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.metrics import rank_candidates, summarise
from amr_pipeline.recsys.models import FactorModel, feature_scale, popularity_model

from . import planted_data


def _visual_model(seed=0, users=6, items=9, dims=5, factors=3):
    rng = np.random.default_rng(seed)
    item_factors = rng.normal(size=(items, factors))
    item_factors[-2:] = 0.0
    return FactorModel(
        rng.normal(size=(users, factors)), item_factors, rng.normal(size=(dims, factors)), 4.0
    ), rng.normal(size=(items, dims)).astype(np.float32)


def test_item_vectors_add_projected_scaled_features():
    model, features = _visual_model()
    expected = model.item_factors + (features / 4.0) @ model.feature_projection
    np.testing.assert_allclose(model.item_vectors(features), expected, rtol=1e-5, atol=1e-6)
    users, items = np.array([0, 3, 5]), np.array([1, 8, 7])
    np.testing.assert_allclose(
        model.score(users, items, features),
        np.sum(model.user_factors[users] * expected[items], axis=1),
        rtol=1e-5,
    )


def test_cold_items_score_from_their_features_only():
    model, features = _visual_model()
    cold = model.item_vectors(features)[-2:]
    np.testing.assert_allclose(cold, (features[-2:] / 4.0) @ model.feature_projection, rtol=1e-5)


def test_visual_model_requires_features():
    model, _ = _visual_model()
    with pytest.raises(ConfigurationError, match="features"):
        model.item_vectors(None)


def test_feature_scale_is_the_global_max_abs():
    features = np.array([[0.5, -3.0], [2.0, 1.0]], np.float32)
    assert feature_scale(features, "max_abs") == 3.0
    assert feature_scale(features, None) == 1.0
    with pytest.raises(ConfigurationError, match="feature_scaling"):
        feature_scale(features, "standard")


def test_frames_round_trip_exactly():
    model, _ = _visual_model()
    frames = model.to_frames()
    assert list(frames["user_factors"].columns) == ["user_id", "f0", "f1", "f2"]
    assert list(frames["item_factors"].columns) == ["item_id", "f0", "f1", "f2"]
    assert list(frames["feature_projection"].columns) == [
        "feature", "f0", "f1", "f2", "feature_scale"
    ]
    assert frames["user_factors"]["f0"].dtype == np.float32
    assert len(frames["feature_projection"]) == 5
    shuffled = {name: frame.sample(frac=1.0, random_state=0) for name, frame in frames.items()}
    restored = FactorModel.from_frames(**shuffled)
    np.testing.assert_array_equal(restored.user_factors, model.user_factors)
    np.testing.assert_array_equal(restored.item_factors, model.item_factors)
    np.testing.assert_array_equal(restored.feature_projection, model.feature_projection)
    assert restored.feature_scale == model.feature_scale


def test_frames_without_projection_round_trip():
    model = FactorModel(np.ones((2, 2)), np.arange(6).reshape(3, 2))
    frames = model.to_frames()
    assert "feature_projection" not in frames
    restored = FactorModel.from_frames(frames["user_factors"], frames["item_factors"])
    assert restored.feature_projection is None
    np.testing.assert_array_equal(restored.item_factors, model.item_factors)


def test_bad_frames_are_rejected():
    with pytest.raises(ConfigurationError, match="user_id"):
        FactorModel.from_frames(
            pd.DataFrame({"f0": [1.0]}), pd.DataFrame({"item_id": [0], "f0": [1.0]})
        )
    with pytest.raises(ConfigurationError, match="K columns"):
        FactorModel(np.ones((2, 2)), np.ones((3, 3)))


def test_reloaded_frames_reproduce_ranks_without_tensorflow(tmp_path):
    train, candidates, features = planted_data(n_users=20, n_items=120, n_groups=4, n_candidates=50)
    rng = np.random.default_rng(3)
    model = FactorModel(
        rng.normal(size=(20, 4)), rng.normal(size=(120, 4)), rng.normal(size=(16, 4)), 7.5
    )
    for name, frame in model.to_frames().items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
    candidates.to_parquet(tmp_path / "candidates.parquet")
    np.save(tmp_path / "features.npy", features)
    expected = rank_candidates(model, features, candidates)["rank"].to_numpy()
    np.save(tmp_path / "expected.npy", expected)
    script = f"""
import sys, numpy as np, pandas as pd
from amr_pipeline.recsys.models import FactorModel
from amr_pipeline.recsys.metrics import rank_candidates
d = {str(tmp_path)!r}
frames = {{n: pd.read_parquet(f"{{d}}/{{n}}.parquet")
          for n in ("user_factors", "item_factors", "feature_projection")}}
model = FactorModel.from_frames(**frames)
features = np.load(f"{{d}}/features.npy")
ranks = rank_candidates(model, features, pd.read_parquet(f"{{d}}/candidates.parquet"))
assert (ranks["rank"].to_numpy() == np.load(f"{{d}}/expected.npy")).all()
assert "tensorflow" not in sys.modules
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", script], check=True, env=env)


def test_popularity_ranks_by_training_count():
    train = pd.DataFrame({"user_id": [0, 1, 2, 0, 1, 0], "item_id": [3, 3, 3, 1, 1, 0]})
    model = popularity_model(train, n_users=3, n_items=5)
    assert model.n_factors == 1
    np.testing.assert_array_equal(model.item_factors[:, 0], [1, 2, 0, 3, 0])
    candidates = pd.DataFrame(
        {"user_id": [2, 2, 2, 2], "item_id": [1, 3, 4, 0], "is_test": [True, False, False, False]}
    )
    assert rank_candidates(model, None, candidates)["rank"].tolist() == [1]


def test_popularity_beats_chance_on_skewed_data():
    rng = np.random.default_rng(0)
    popular = rng.choice(1000, size=4000, p=np.r_[np.full(20, 0.04), np.full(980, 0.2 / 980)])
    train = pd.DataFrame({"user_id": rng.integers(50, size=4000), "item_id": popular})
    model = popularity_model(train, 50, 1000)
    candidates = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(50), 100),
            "item_id": np.concatenate([np.r_[u % 20, 100 + np.arange(99)] for u in range(50)]),
            "is_test": np.tile(np.arange(100) == 0, 50),
        }
    )
    assert summarise(rank_candidates(model, None, candidates), (10,))["hr_at_10"] > 0.9
