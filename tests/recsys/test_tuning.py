"""The tuning protocol (paper 4.1.4): the grids visited, boundary extension, selection."""

import numpy as np
import pytest

from amr_pipeline.recsys import tuning
from amr_pipeline.recsys.tuning import PAPER_GRIDS, Trial, extend_boundary, grid_search

from . import planted_data


def _recorder(score):
    visited = []

    def evaluate(setting):
        visited.append(dict(setting))
        return Trial("test", dict(setting), score(setting), 1, None)

    return visited, evaluate


def test_the_grids_are_the_papers():
    assert PAPER_GRIDS["learning_rate"] == (0.005, 0.01, 0.05, 0.1)
    assert PAPER_GRIDS["regularization"] == (0.0, 1e-6, 1e-4, 1e-2, 1.0)
    assert PAPER_GRIDS["epsilon"] == (0.01, 0.1, 1.0, 10.0)
    assert PAPER_GRIDS["adversarial_weight"] == (0.01, 0.1, 1.0, 10.0)


def test_an_interior_optimum_visits_exactly_the_grid():
    grid = {"learning_rate": PAPER_GRIDS["learning_rate"],
            "regularization": PAPER_GRIDS["regularization"]}
    visited, evaluate = _recorder(lambda s: -abs(np.log10(s["learning_rate"] / 0.01))
                                  - abs(s["regularization"] - 1e-4))
    trials = grid_search(evaluate, grid)
    pairs = {(s["learning_rate"], s["regularization"]) for s in visited}
    assert len(visited) == 20 and pairs == {(a, b) for a in grid["learning_rate"]
                                            for b in grid["regularization"]}
    assert tuning.best_trial(trials).setting == {"learning_rate": 0.01, "regularization": 1e-4}


def test_a_boundary_optimum_is_extended_one_step_at_a_time():
    grid = {"epsilon": PAPER_GRIDS["epsilon"]}
    # the score keeps rising with ε up to 1000: the edge 10 is extended to 100, then 1000
    visited, evaluate = _recorder(lambda s: min(s["epsilon"], 1000.0))
    grid_search(evaluate, grid, {"adversarial_weight": 1.0}, max_extensions=2)
    assert [s["epsilon"] for s in visited] == [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
    assert all(s["adversarial_weight"] == 1.0 for s in visited)
    # a peak at 100 stops after one step outwards
    visited, evaluate = _recorder(lambda s: -abs(np.log10(s["epsilon"] / 100)))
    grid_search(evaluate, grid, max_extensions=5)
    assert [s["epsilon"] for s in visited] == [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
    # lower edges: 0.005 -> 0.0025; an L2 optimum at 0 cannot go lower
    assert extend_boundary(PAPER_GRIDS["learning_rate"], 0.005) == 0.0025
    assert extend_boundary(PAPER_GRIDS["learning_rate"], 0.1) == 0.2
    assert extend_boundary(PAPER_GRIDS["regularization"], 0.0) is None
    assert extend_boundary(PAPER_GRIDS["regularization"], 1e-4) is None


def test_amr_tunes_epsilon_at_lambda_one_then_lambda_at_the_best_epsilon():
    train, candidates, features = planted_data(n_users=40, n_items=200, n_groups=4,
                                               n_candidates=50)
    tuner = tuning.BPRTuner(train, 40, 200, {"model": "amr", "n_factors": 8, "epochs": 2,
                                             "eval_every": 1}, candidates, features)
    vbpr = tuning.BPRTuner(train, 40, 200, {"model": "vbpr", "n_factors": 8, "epochs": 2},
                           candidates, features).evaluate({"learning_rate": 0.05,
                                                           "regularization": 0.0})
    trials = tuning.tune_amr(tuner, PAPER_GRIDS, {"learning_rate": 0.05, "regularization": 0.0},
                             vbpr.model, max_extensions=0)
    first = [t.setting for t in trials if t.stage == "amr.epsilon"]
    assert [s["epsilon"] for s in first] == list(PAPER_GRIDS["epsilon"])
    assert all(s["adversarial_weight"] == 1.0 and s["learning_rate"] == 0.05 for s in first)
    best_epsilon = tuning.best_trial([t for t in trials if t.stage == "amr.epsilon"]
                                     ).setting["epsilon"]
    second = [t.setting for t in trials if t.stage == "amr.adversarial_weight"]
    assert sorted(s["adversarial_weight"] for s in second) == [0.01, 0.1, 10.0], (
        "λ = 1 at the best ε was already run in the ε stage")
    assert all(s["epsilon"] == best_epsilon for s in second)
    assert all(t.history.epoch.iloc[0] == 0 for t in trials), "epoch 0 evaluated"


def test_a_diverging_setting_scores_minus_infinity_instead_of_failing():
    train, candidates, features = planted_data(n_users=40, n_items=200, n_groups=4,
                                               n_candidates=50)
    tuner = tuning.BPRTuner(train, 40, 200, {"model": "mf_bpr", "n_factors": 8, "epochs": 3},
                            candidates)
    trial = tuner.evaluate({"learning_rate": 1e30, "regularization": 0.0})
    assert trial.diverged and trial.score == -np.inf
    good = tuner.evaluate({"learning_rate": 0.05, "regularization": 0.0})
    assert tuning.best_trial([trial, good]) is good
    with pytest.raises(Exception, match="diverged"):
        tuning.best_trial([trial])
