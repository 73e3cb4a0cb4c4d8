"""Thin nodes over :mod:`amr_pipeline.recsys.tuning`: one node per model, each setting an
MLflow child run under the ``kedro run`` (nested runs, validation curve as metric history)."""

from __future__ import annotations

import logging

import pandas as pd

from amr_pipeline.item_features import feature_matrix
from amr_pipeline.pipelines import log_child_run, mlflow_metrics
from amr_pipeline.recsys import metrics, tuning
from amr_pipeline.reporting import figures, intervals, tables

logger = logging.getLogger(__name__)

_CURVES = (("loss", "train.loss"), ("hr_at_10", "validation.hr_at_10"),
           ("ndcg_at_10", "validation.ndcg_at_10"))


def log_trial(model: str, trial: tuning.Trial) -> None:
    """One MLflow child run per setting under the active run (nothing when MLflow is off)."""
    name = f"{trial.stage} " + " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in trial.setting.items())
    histories = {key: trial.history[["epoch", column]].dropna().to_numpy().tolist()
                 for column, key in _CURVES if column in trial.history}
    log_child_run(name, {"model": model, "stage": trial.stage}, {"model": model, **trial.setting},
                  {"validation.selected_score": trial.score, "best_epoch": trial.best_epoch},
                  histories, failed=trial.diverged)


def _tuner(model, train, users, items, validation_candidates, parameters, item_features=None):
    features = None if item_features is None else feature_matrix(item_features, items)
    return tuning.BPRTuner(train, len(users), len(items), parameters, validation_candidates,
                           features, on_trial=lambda trial: log_trial(model, trial))


def selected_setting(trials: list[tuning.Trial], base: dict) -> dict:
    """The best trial's values plus ``epochs`` = its selected epoch (for the final fit)."""
    best = tuning.best_trial(trials)
    values = {k: (bool(v) if k == "initialise_users" else float(v))
              for k, v in best.setting.items()}
    length = "iterations" if "iterations" in base else "epochs"
    return {**values, length: int(best.best_epoch), "validation_score": float(best.score)}


def tune_bpr_model(train, users, items, validation_candidates, parameters: dict, tuning_params:
                   dict, model: str, item_features=None, initial_model=None):
    """MF-BPR / DUIF / VBPR over learning rate x β (DUIF also from MF-BPR's p_u)."""
    tuner = _tuner(model, train, users, items, validation_candidates,
                   {**parameters, "epochs": tuning_params["epochs"][model],
                    "eval_every": tuning_params["eval_every"]}, item_features)
    initial = initial_model if model == "vbpr" else None
    users_from = initial_model if model == "duif" else None
    trials = tuning.tune_bpr(tuner, tuning_params["grids"], initial=initial,
                             initial_users=users_from,
                             max_extensions=tuning_params["max_extensions"])
    best = tuning.best_trial(trials)
    return (tuning.trials_table(trials).assign(model=model), best.model,
            selected_setting(trials, parameters))


def tune_amr(train, users, items, validation_candidates, test_candidates, item_features,
             parameters: dict, tuning_params: dict, vbpr_model, vbpr_setting: dict):
    """AMR from the tuned VBPR: ε at λ = 1, then λ at the best ε (VBPR's η and β). Each
    setting's selected model is also ranked on the test candidates, for Figures 6-7, with the
    per-user bootstrap interval of its validation and test HR@10 and NDCG@10 (one run per
    setting: replicating the grid would multiply tuning time)."""
    tuner = _tuner("amr", train, users, items, validation_candidates,
                   {**parameters, "epochs": tuning_params["epochs"]["amr"],
                    "eval_every": tuning_params["eval_every"]}, item_features)
    trials = tuning.tune_amr(tuner, tuning_params["grids"], vbpr_setting, vbpr_model,
                             max_extensions=tuning_params["max_extensions"])
    table = tuning.trials_table(trials).assign(model="amr")
    grouped = metrics.grouped_candidates(test_candidates)
    validation = metrics.grouped_candidates(validation_candidates)
    for row, trial in enumerate(trials):
        if trial.model is None:
            continue
        for curve, candidates in (("test", grouped), ("validation", validation)):
            ranks = metrics.rank_candidates(trial.model, tuner.features, candidates)
            per_user = tables.per_user_metrics(ranks, (10,))
            for metric in ("hr_at_10", "ndcg_at_10"):
                mean, low, high = intervals.bootstrap_interval(
                    per_user[metric].to_numpy(), seed=tuning_params.get("bootstrap_seed", 0))
                if curve == "test":
                    table.loc[row, f"test_{metric}"] = mean
                table.loc[row, [f"{curve}_{metric}_ci_low", f"{curve}_{metric}_ci_high"]] = (
                    low, high)
    return table, selected_setting(trials, parameters)


def tune_mf_eals(train, users, items, validation_candidates, parameters: dict,
                 tuning_params: dict):
    """MF-eALS over c0 x L2."""
    trials = tuning.tune_eals(
        train, len(users), len(items), {**parameters, "eval_every": tuning_params["eval_every"]},
        validation_candidates, tuning_params["eals_grids"],
        max_extensions=tuning_params["max_extensions"],
        on_trial=lambda trial: log_trial("mf_eals", trial))
    return tuning.trials_table(trials).assign(model="mf_eals"), selected_setting(trials,
                                                                                 parameters)


def select_parameters(tuning_params: dict, **selected: dict):
    """The selected settings file (``training.<model>`` overrides, validation scores kept
    apart), every trial in one table, and the best scores as MLflow metrics."""
    training, scores = {}, {}
    for model, setting in selected.items():
        setting = dict(setting)
        scores[model] = setting.pop("validation_score")
        training[model] = setting
    document = {
        "selected_by": f"validation {tuning_params.get('selection_metric', 'ndcg_at_10')}",
        "training": training,
        "validation": scores,
    }
    return document, mlflow_metrics({f"{m}.validation_score": v for m, v in scores.items()})


def all_trials(*tables: pd.DataFrame) -> pd.DataFrame:
    """Every model's trials in one table (model, stage, setting, scores)."""
    frame = pd.concat(tables, ignore_index=True)
    first = ["model", "stage"]
    return frame[first + [c for c in frame.columns if c not in first]]


def hyper_parameter_figures(amr_trials: pd.DataFrame):
    """Figures 6 and 7 (RQ3): AMR's HR@10 / NDCG@10 against ε (λ = 1) and against λ (best ε)."""
    epsilon = amr_trials[amr_trials["stage"] == "amr.epsilon"]
    best_epsilon = epsilon.loc[epsilon["score"].idxmax(), "epsilon"]
    weight = amr_trials[amr_trials["epsilon"] == best_epsilon]
    return (figures.hyper_parameter_figure(epsilon, "epsilon", "ε (λ = 1)"),
            figures.hyper_parameter_figure(weight, "adversarial_weight",
                                           f"λ (ε = {best_epsilon:g})"))
