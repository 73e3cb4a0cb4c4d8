"""The paper's tuning protocol (4.1.4) on the validation interaction.

- MF-BPR, DUIF and VBPR: learning rate in [0.005, 0.01, 0.05, 0.1] x L2 (β) in
  [0, 1e-6, 1e-4, 1e-2, 1]; DUIF both from scratch and from MF-BPR's p_u (the better is kept).
- AMR: VBPR's optimal learning rate and β, λ = 1 and ε in [0.01, 0.1, 1, 10]; then λ in
  [0.01, 0.1, 1, 10] at the best ε.
- "If the optimal value was found in the boundary, we further extend the boundary": an
  optimum on the edge of a grid axis is followed by one more geometric step on that axis (the
  other axes at their optimum), repeated while the optimum stays on the edge
  (``max_extensions``).

Every setting is trained with the epoch selected on validation (epoch 0 included); its score is
that epoch's validation ``selection_metric``. One compiled trainer per model serves every
setting (:meth:`BPRTrainer.reset`). Kedro- and MLflow-free: ``on_trial`` receives each trial.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys import eals, metrics
from amr_pipeline.recsys.models import FactorModel
from amr_pipeline.recsys.train import BPRTrainer, TrainConfig, fit

logger = logging.getLogger(__name__)

PAPER_GRIDS = {
    "learning_rate": (0.005, 0.01, 0.05, 0.1),
    "regularization": (0.0, 1e-6, 1e-4, 1e-2, 1.0),
    "epsilon": (0.01, 0.1, 1.0, 10.0),
    "adversarial_weight": (0.01, 0.1, 1.0, 10.0),
}
_CATEGORICAL = ("initialise_users",)


@dataclass
class Trial:
    """One evaluated setting: its values, validation score, selected epoch and curves."""

    stage: str
    setting: dict
    score: float
    best_epoch: int
    history: pd.DataFrame
    model: FactorModel | None = field(default=None, repr=False)
    diverged: bool = False


def extend_boundary(values: Sequence[float], best: float) -> float | None:
    """The next grid value past ``best`` when it lies on an edge of ``values`` (one step of
    the grid's own ratio); None inside the grid, or at a lower edge of 0."""
    values = sorted(float(v) for v in values)
    if len(values) < 2:
        return None
    if best == values[-1] and values[-2] > 0:
        return float(f"{values[-1] * values[-1] / values[-2]:.6g}")
    if best == values[0] and values[0] > 0:
        return float(f"{values[0] * values[0] / values[1]:.6g}")
    return None


def grid_search(
    evaluate: Callable[[dict], Trial],
    grid: Mapping[str, Sequence],
    fixed: Mapping | None = None,
    *,
    max_extensions: int = 2,
) -> list[Trial]:
    """Every combination of ``grid`` (over ``fixed``), then boundary extensions; ``evaluate``
    is called once per distinct setting. Returns the trials in the order run."""
    fixed = dict(fixed or {})
    axes = list(grid)
    trials: dict[tuple, Trial] = {}

    def run(setting: dict) -> Trial:
        key = tuple(sorted(setting.items()))
        if key not in trials:
            trials[key] = evaluate(dict(setting))
        return trials[key]

    for combination in itertools.product(*(grid[axis] for axis in axes)):
        run({**fixed, **dict(zip(axes, combination))})
    for _ in range(int(max_extensions)):
        best = best_trial(list(trials.values()))
        extended = False
        for axis in axes:
            if axis in _CATEGORICAL:
                continue
            visited = sorted({t.setting[axis] for t in trials.values()})
            step = extend_boundary(visited, best.setting[axis])
            if step is not None:
                logger.info("%s: optimum %s=%g on the grid's edge; extending to %g.",
                            best.stage, axis, best.setting[axis], step)
                run({**best.setting, axis: step})
                extended = True
        if not extended:
            break
    return list(trials.values())


def best_trial(trials: Sequence[Trial]) -> Trial:
    """The highest validation score (the first one run among equals)."""
    usable = [t for t in trials if np.isfinite(t.score)]
    if not usable:
        raise ConfigurationError(
            f"every {trials[0].stage if trials else ''} setting diverged: lower the learning "
            "rates in tuning.grids"
        )
    return max(usable, key=lambda t: t.score)


class BPRTuner:
    """Trains one BPR-family model (MF-BPR, DUIF, VBPR, AMR) at many settings on the same data,
    reusing one compiled trainer; ``base`` holds the parameters the grid does not vary."""

    def __init__(self, train: pd.DataFrame, n_users: int, n_items: int, base: Mapping,
                 validation_candidates: pd.DataFrame, features: np.ndarray | None = None,
                 on_trial: Callable[[Trial], None] | None = None):
        self.train, self.n_users, self.n_items = train, int(n_users), int(n_items)
        self.base = {k: v for k, v in base.items() if k != "initialise_users"}
        self.features = features
        self.validation = metrics.grouped_candidates(validation_candidates)
        self.on_trial = on_trial
        self._trainer: BPRTrainer | None = None

    def evaluate(self, setting: Mapping, initial: FactorModel | None = None,
                 stage: str | None = None) -> Trial:
        """Train at ``setting`` (grid values over ``base``) from ``initial``; a setting whose
        loss diverges scores -inf."""
        values = {k: v for k, v in setting.items() if k not in _CATEGORICAL}
        config = TrainConfig.from_params({**self.base, **values})
        stage = stage or config.model
        if config.selection_metric == "last":
            raise ConfigurationError(f"{stage}: tuning selects an epoch on validation, so "
                                     "selection_metric must be hr_at_10 or ndcg_at_10, not last")
        if self._trainer is None:
            self._trainer = BPRTrainer(config, self.train, self.n_users, self.n_items,
                                       self.features, initial)
        else:
            self._trainer.reset(config, initial)
        try:
            result = fit(self._trainer, features=self.features,
                         validation_candidates=self.validation, progress=False)
        except ConfigurationError as error:
            if "loss became" not in str(error):
                raise
            logger.warning("%s at %s diverged: %s", stage, dict(setting), error)
            trial = Trial(stage, dict(setting), -np.inf, 0, pd.DataFrame(), None, True)
        else:
            score = float(result.history.set_index("epoch").loc[result.best_epoch,
                                                                 config.selection_metric])
            trial = Trial(stage, dict(setting), score, result.best_epoch, result.history,
                          result.model)
        logger.info("%s %s: validation %s %.4f at epoch %d", stage, _describe(setting),
                    config.selection_metric, trial.score, trial.best_epoch)
        if self.on_trial is not None:
            self.on_trial(trial)
        return trial


def tune_bpr(tuner: BPRTuner, grids: Mapping[str, Sequence], *, initial: FactorModel | None = None,
             initial_users: FactorModel | None = None, max_extensions: int = 2) -> list[Trial]:
    """Learning rate x β for MF-BPR, VBPR (``initial``: MF-BPR's tables) or DUIF (the grid run
    from scratch and from ``initial_users``' p_u, when given)."""
    grid = {"learning_rate": grids["learning_rate"], "regularization": grids["regularization"]}
    if initial_users is not None:
        grid["initialise_users"] = (False, True)

    def evaluate(setting):
        start = initial
        if setting.get("initialise_users"):
            start = users_only(initial_users, tuner.n_items)
        return tuner.evaluate(setting, start)

    return grid_search(evaluate, grid, max_extensions=max_extensions)


def tune_amr(tuner: BPRTuner, grids: Mapping[str, Sequence], vbpr_setting: Mapping,
             initial: FactorModel, *, max_extensions: int = 2) -> list[Trial]:
    """ε at λ = 1, then λ at the best ε; learning rate and β are VBPR's optimum."""
    fixed = {"learning_rate": vbpr_setting["learning_rate"],
             "regularization": vbpr_setting["regularization"]}

    def evaluate(setting):
        return tuner.evaluate(setting, initial.copy())

    epsilon_trials = grid_search(evaluate, {"epsilon": grids["epsilon"]},
                                 {**fixed, "adversarial_weight": 1.0},
                                 max_extensions=max_extensions)
    best_epsilon = best_trial(epsilon_trials).setting["epsilon"]
    cached = {tuple(sorted(t.setting.items())): t for t in epsilon_trials}

    def evaluate_weight(setting):
        key = tuple(sorted(setting.items()))
        return cached[key] if key in cached else evaluate(setting)

    weight_trials = grid_search(evaluate_weight, {"adversarial_weight": grids["adversarial_weight"]},
                                {**fixed, "epsilon": best_epsilon}, max_extensions=max_extensions)
    for trial in epsilon_trials:
        trial.stage = "amr.epsilon"
    seen = {id(t) for t in epsilon_trials}
    fresh = [t for t in weight_trials if id(t) not in seen]
    for trial in fresh:
        trial.stage = "amr.adversarial_weight"
    return epsilon_trials + fresh


def tune_eals(train: pd.DataFrame, n_users: int, n_items: int, base: Mapping,
              validation_candidates: pd.DataFrame, grids: Mapping[str, Sequence], *,
              max_extensions: int = 2, on_trial: Callable[[Trial], None] | None = None
              ) -> list[Trial]:
    """MF-eALS over c0 (missing-data weight) x L2."""
    grouped = metrics.grouped_candidates(validation_candidates)
    selection = base.get("selection_metric", "ndcg_at_10")

    def evaluate(setting):
        result = eals.train_eals(train, n_users, n_items, validation_candidates=grouped,
                                 progress=False, **{**base, **setting})
        score = float(result.history.set_index("epoch").loc[result.best_epoch, selection])
        trial = Trial("mf_eals", dict(setting), score, result.best_epoch, result.history,
                      result.model)
        logger.info("mf_eals %s: validation %s %.4f at iteration %d", _describe(setting),
                    selection, score, trial.best_epoch)
        if on_trial is not None:
            on_trial(trial)
        return trial

    return grid_search(evaluate, {"c0": grids["c0"], "regularization": grids["regularization"]},
                       max_extensions=max_extensions)


def users_only(model: FactorModel, n_items: int) -> FactorModel:
    """A starting point with ``model``'s p_u and no item tables (DUIF from MF-BPR users)."""
    items = np.zeros((n_items, model.n_factors), np.float32)
    return FactorModel(model.user_factors.copy(), items)


def trials_table(trials: Sequence[Trial]) -> pd.DataFrame:
    """One row per trial: stage, setting values, validation score, selected epoch."""
    rows = [{"stage": t.stage, **{k: float(v) for k, v in t.setting.items()},
             "score": t.score, "best_epoch": t.best_epoch, "diverged": t.diverged,
             **({f"validation_{m}": float(t.history.set_index("epoch").loc[t.best_epoch, m])
                 for m in ("hr_at_10", "ndcg_at_10")} if len(t.history) else {})}
            for t in trials]
    return pd.DataFrame(rows)


def _describe(setting: Mapping) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in setting.items())
