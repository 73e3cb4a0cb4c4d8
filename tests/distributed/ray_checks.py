"""Checks that need a running Ray; run by ``test_on_ray.py`` in a private network namespace
(``python -m pytest tests/distributed/ray_checks.py`` alone would expose Ray's ports)."""

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.distributed import RayExecutor
from amr_pipeline.recsys import robustness
from amr_pipeline.recsys.models import FactorModel
from tests.recsys import planted_data


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def test_robustness_grid_on_ray_equals_the_local_grid(monkeypatch):
    """Many user blocks, gradient partitions and item chunks: every figure identical."""
    train, candidates, features = planted_data(n_users=120, n_items=700, n_groups=20, n_candidates=200, seed=3)
    rng = np.random.default_rng(5)
    model = FactorModel(rng.standard_normal((120, 8)).astype(np.float32),
                        rng.standard_normal((700, 8)).astype(np.float32),
                        0.3 * rng.standard_normal((16, 8)).astype(np.float32), feature_scale=4.0)
    monkeypatch.setattr(robustness, "_TASK_ENTRIES", 2000)
    monkeypatch.setattr(robustness, "_GATHER_FLOATS", 4000)
    monkeypatch.setattr(robustness, "_PAIR_PARTITION", 300)
    monkeypatch.setattr(robustness, "_ITEM_CHUNK", 128)
    cold = np.zeros(700, bool)
    cold[::7] = True
    arguments = dict(epsilons=[0.05, 0.5, 2.0], seed=11, pgd_steps=2, cold_items=cold)
    local = robustness.evaluate_attacks(model, features, candidates, train, **arguments)
    on_ray = robustness.evaluate_attacks(model, features, candidates, train,
                                         executor=RayExecutor(in_flight=3), **arguments)
    assert (local[0]["hr_at_10"] < local[0]["hr_at_10"].iloc[0]).any()  # attacks bite
    pd.testing.assert_frame_equal(local[0], on_ray[0], check_exact=True)
    pd.testing.assert_frame_equal(local[1], on_ray[1], check_exact=True)
