"""Thin nodes over :mod:`amr_pipeline.recsys`: fit a model, return its factor tables."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.item_features import feature_matrix
from amr_pipeline.models_table import TUNED_MODELS
from amr_pipeline.recsys import eals
from amr_pipeline.recsys.models import FactorModel, popularity_model
from amr_pipeline.recsys.replicates import check_replicates, replicate_seed, train_replicates
from amr_pipeline.recsys.stored import history_metrics

logger = logging.getLogger(__name__)


FINAL_FITS = ("train_and_validation", "train")


def resolve_settings(training: dict, selected: dict, use_selected: bool) -> dict[str, dict]:
    """Each model's training parameters: ``parameters_training.yml``, with the values the
    tuning pipeline selected on validation (``selected_parameters``) on top unless
    ``tuning.use_selected`` is false (then the file's values are pinned as they are)."""
    chosen = (selected or {}).get("training", {}) if use_selected else {}
    if use_selected and not chosen:
        logger.info("No tuned settings yet (run `kedro run --pipeline=tuning`): training with "
                    "parameters_training.yml.")
    settings = {}
    for model in TUNED_MODELS:
        settings[model] = {**training[model], **chosen.get(model, {})}
        if chosen.get(model):
            logger.info("%s: tuned settings %s", model, chosen[model])
    return settings


def final_training_data(train: pd.DataFrame, validation: pd.DataFrame, items: pd.DataFrame,
                        validation_candidates: pd.DataFrame, final_fit: str):
    """What the final models train on. ``train_and_validation`` (the paper's final models):
    the validation pairs join training, so no validation selection is left (the tuned
    ``epochs`` are trained and the last kept) and ``cold`` is re-marked against the larger
    set; ``train``: validation stays held out and selects the epoch. Test pairs never train."""
    if final_fit not in FINAL_FITS:
        raise ConfigurationError(
            f"final_fit must be one of {FINAL_FITS}, got {final_fit!r}: fix it in "
            "parameters_training.yml"
        )
    if final_fit == "train":
        return train, items, validation_candidates
    pairs = (pd.concat([train, validation], ignore_index=True)
             .sort_values(["user_id", "item_id"]).reset_index(drop=True))
    marked = items.assign(cold=~items["item_id"].isin(pairs["item_id"]))
    return pairs, marked, validation_candidates.iloc[:0]


def continued_settings(settings: dict, overrides: dict) -> dict:
    """A model's ``settings`` trained on from another model's tables (always initialised from
    them) for ``overrides["epochs"]`` epochs, evaluated every ``overrides["eval_every"]`` and
    keeping the last epoch (``selection_metric: last``: the evaluations are only recorded),
    with one checkpoint at the end."""
    return {**settings, "epochs": overrides["epochs"], "eval_every": overrides["eval_every"],
            "checkpoint_every": max(1, int(overrides["epochs"])), "selection_metric": "last",
            "initialise_users": True}


def model_frames(model: FactorModel) -> dict[str, pd.DataFrame]:
    """Factor tables as the catalog stores them."""
    return model.to_frames()


def train_model(
    train: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    parameters: dict,
    validation_candidates: pd.DataFrame | None = None,
    item_features=None,
    initial_user_factors: pd.DataFrame | None = None,
    initial_item_factors: pd.DataFrame | None = None,
    initial_feature_projection: pd.DataFrame | None = None,
    checkpoint=None,
    replicates: int = 1,
    initial_replicates: dict | None = None,
) -> dict:
    """Train MF-BPR, DUIF, VBPR or AMR (``parameters["model"]``) ``replicates`` times with
    different seeds (:mod:`amr_pipeline.recsys.replicates`); return replicate 0's factor tables
    of the best validation epoch, its training history and MLflow metric history, and the
    other replicates' tables and histories (``{k: tables}``).

    ``initial_*`` tables chain the paper's initialisation: VBPR starts from MF-BPR's p_u, q_i,
    AMR from VBPR (Algorithm 1, line 1), DUIF optionally from MF-BPR's p_u
    (``initialise_users``); replicate ``k`` starts from ``initial_replicates[k]``.
    """
    parameters = dict(parameters)
    initialise_users = parameters.pop("initialise_users", True)
    if validation_candidates is not None and validation_candidates.empty:
        validation_candidates = None  # final fit on train + validation: nothing held out
    initials = [None] * replicates
    if initial_user_factors is not None and initialise_users:
        starts = [{"user_factors": initial_user_factors, "item_factors": initial_item_factors,
                   "feature_projection": initial_feature_projection}]
        starts += [_replicate_tables(initial_replicates, k, starts[0])
                   for k in range(1, replicates)]
        initials = [_initial_model(start["user_factors"], start["item_factors"],
                                   start["feature_projection"], len(items))
                    for start in starts]
    features = None if item_features is None else feature_matrix(item_features, items)
    results = train_replicates(
        train,
        len(users),
        len(items),
        params=parameters,
        replicates=replicates,
        features=features,
        initials=initials,
        validation_candidates=validation_candidates,
        checkpoint=checkpoint,
    )
    result = results[0]
    logger.info(
        "%s: best epoch %d of %d by validation %s (%d replicates).",
        parameters["model"], result.best_epoch, parameters["epochs"],
        parameters.get("selection_metric", "ndcg_at_10"), replicates,
    )
    return _fitted(results)


def _fitted(results) -> dict:
    """The node outputs of fitted replicates: replicate 0's factor tables, training history
    and MLflow metric history; the others' tables and histories (``{k: tables}``)."""
    return {
        **model_frames(results[0].model),
        "history": results[0].history,
        "history_metrics": history_metrics(results[0].history),
        "replicates": {k: {**model_frames(other.model), "training_history": other.history}
                       for k, other in enumerate(results) if k},
    }


def _replicate_tables(stored: dict | None, replicate: int, like: dict) -> dict:
    """Replicate ``k``'s tables of the model a model starts from (only the tables it uses)."""
    tables = (stored or {}).get(replicate)
    if tables is None:
        raise ConfigurationError(
            f"replicate {replicate} of the model this one starts from is missing: run the "
            "pipeline from that model with the same `replicates`"
        )
    return {name: (tables.get(name) if frame is not None else None)
            for name, frame in like.items()}


def _initial_model(user_factors, item_factors, feature_projection, n_items):
    """The starting point from another model's tables (cold items keep q_i = 0)."""
    if item_factors is None:  # DUIF starts from MF-BPR's p_u only
        item_factors = user_factors.iloc[:0].rename(columns={"user_id": "item_id"})
    start = FactorModel.from_frames(user_factors, item_factors, feature_projection)
    items = np.zeros((n_items, start.n_factors), np.float32)
    items[: len(start.item_factors)] = start.item_factors
    return FactorModel(start.user_factors, items, start.feature_projection, start.feature_scale)


def fit_popularity(train: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame) -> dict:
    """POP: items ranked by training popularity (one factor column)."""
    return model_frames(popularity_model(train, len(users), len(items)))


def fit_eals(
    train: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    validation_candidates: pd.DataFrame,
    parameters: dict,
    replicates: int = 1,
) -> dict:
    """MF-eALS (He et al., SIGIR'16): element-wise ALS with popularity-weighted missing data;
    the best iteration on the validation candidates is kept. Replicate ``k`` starts from the
    seed ``seed + 1000 k`` (:func:`~amr_pipeline.recsys.replicates.replicate_seed`)."""
    if validation_candidates is not None and validation_candidates.empty:
        validation_candidates = None
    results = [
        eals.train_eals(train, len(users), len(items), validation_candidates=validation_candidates,
                        **{**parameters,
                           "seed": replicate_seed(parameters.get("seed", 0), replicate)})
        for replicate in range(check_replicates(replicates))
    ]
    return _fitted(results)
