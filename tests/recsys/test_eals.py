"""MF-eALS (He et al., SIGIR'16): weights, loss and monotone element-wise updates."""

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.eals import eals_loss, missing_weights, train_eals
from amr_pipeline.recsys.models import FactorModel

from . import planted_data


def _brute_force_loss(model, train, weights, regularization, positive_weight):
    """Σ over every (u, i) cell of its weight times the squared error, plus L2."""
    p, q = model.user_factors.astype(np.float64), model.item_factors.astype(np.float64)
    observed = np.zeros((len(p), len(q)))
    observed[train.user_id, train.item_id] = 1.0
    cell_weights = np.where(observed > 0, positive_weight, weights[None, :])
    error = (observed - p @ q.T) ** 2
    return (cell_weights * error).sum() + regularization * ((p**2).sum() + (q**2).sum())


def _tiny_train():
    return pd.DataFrame(
        {"user_id": [0, 0, 1, 2, 2, 2, 3, 4], "item_id": [0, 1, 1, 0, 2, 3, 3, 1]}
    )


def test_missing_weights_follow_popularity_and_sum_to_c0():
    weights = missing_weights(np.array([4, 1, 0, 9]), c0=10.0, alpha=0.5)
    np.testing.assert_allclose(weights, 10.0 * np.array([2, 1, 0, 3]) / 6)
    np.testing.assert_allclose(missing_weights(np.array([3, 3]), c0=2.0, alpha=0.0), [1.0, 1.0])


def test_fast_loss_matches_brute_force_on_a_tiny_matrix():
    train = _tiny_train()
    rng = np.random.default_rng(0)
    model = FactorModel(rng.normal(size=(5, 3)), rng.normal(size=(6, 3)))
    weights = missing_weights(np.bincount(train.item_id, minlength=6), c0=4.0, alpha=0.75)
    fast = eals_loss(model, train.user_id.to_numpy(), train.item_id.to_numpy(), weights, 0.1, 2.0)
    assert fast == pytest.approx(_brute_force_loss(model, train, weights, 0.1, 2.0), rel=1e-9)


def test_each_iteration_lowers_the_loss():
    train = _tiny_train()
    result = train_eals(train, 5, 6, n_factors=3, iterations=8, c0=4.0, alpha=0.75,
                        regularization=0.1, positive_weight=2.0, init_stddev=0.5, progress=False)
    losses = result.history.loss.to_numpy()
    assert len(losses) == 9, "iteration 0 (the random start) and 8 iterations"
    assert np.all(np.diff(losses) <= 1e-9 * losses[:-1])
    assert losses[-1] < 0.5 * losses[0]
    weights = missing_weights(np.bincount(train.item_id, minlength=6), c0=4.0, alpha=0.75)
    final = _brute_force_loss(result.model, train, weights, 0.1, 2.0)
    assert final == pytest.approx(losses[-1], rel=1e-5)
    assert not result.model.item_factors[[4, 5]].any()  # never in training: cold, kept at zero


def test_last_solved_coordinate_is_an_exact_minimum():
    train = _tiny_train()
    result = train_eals(train, 5, 6, n_factors=2, iterations=3, c0=4.0, alpha=0.75,
                        regularization=0.1, progress=False)
    weights = missing_weights(np.bincount(train.item_id, minlength=6), c0=4.0, alpha=0.75)
    base = _brute_force_loss(result.model, train, weights, 0.1, 1.0)
    for item in range(4):
        for step in (1e-3, -1e-3):
            moved = FactorModel(result.model.user_factors, result.model.item_factors.copy())
            moved.item_factors[item, 1] += step  # the item sweep solves f = K - 1 last
            assert _brute_force_loss(moved, train, weights, 0.1, 1.0) > base


def test_planted_structure_is_learned():
    train, candidates, _ = planted_data()
    result = train_eals(train, 240, 1300, n_factors=16, iterations=10, c0=64.0,
                        validation_candidates=candidates, eval_every=5, progress=False)
    assert result.history.epoch.tolist() == [0, 5, 10]
    assert result.history.hr_at_10.max() > 0.2  # chance: 0.01
    assert result.history.hr_at_10.iloc[0] < 0.1, "the random start is near chance"
    assert result.best_epoch > 0


def test_bad_parameters_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="c0"):
        train_eals(_tiny_train(), 5, 6, c0=0.0, progress=False)
    with pytest.raises(ConfigurationError, match="n_users"):
        train_eals(_tiny_train(), 2, 6, progress=False)
