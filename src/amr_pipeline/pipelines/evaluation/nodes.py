"""Thin nodes over :mod:`amr_pipeline.recsys.metrics`."""

from __future__ import annotations

import logging

import pandas as pd

from amr_pipeline.distributed import executor
from amr_pipeline.pipelines import mlflow_metrics
from amr_pipeline.pipelines.training.nodes import feature_matrix
from amr_pipeline.recsys import metrics, robustness
from amr_pipeline.recsys.models import FactorModel

logger = logging.getLogger(__name__)


def load_model(
    user_factors: pd.DataFrame,
    item_factors: pd.DataFrame,
    feature_projection: pd.DataFrame | None,
    item_features,
    items: pd.DataFrame,
):
    """A :class:`FactorModel` and the feature matrix it scores with (None for ID-only models)."""
    model = FactorModel.from_frames(user_factors, item_factors, feature_projection)
    features = None
    if model.uses_features:
        features = feature_matrix(item_features, items)
    return model, features


def evaluate_model(
    test_candidates: pd.DataFrame,
    items: pd.DataFrame,
    user_factors: pd.DataFrame,
    item_factors: pd.DataFrame,
    parameters: dict,
    feature_projection: pd.DataFrame | None = None,
    item_features=None,
) -> tuple[pd.DataFrame, dict]:
    """Rank every user's test item among its candidates (ties count against it) and return
    the ranks and HR@N/NDCG@N overall and over cold and warm test items, as MLflow metrics."""
    model, features = load_model(user_factors, item_factors, feature_projection, item_features,
                                 items)
    cold = items.sort_values("item_id")["cold"].to_numpy(bool)
    ranks = metrics.rank_candidates(model, features, test_candidates, cold_items=cold)
    cutoffs = tuple(parameters["cutoffs"])
    summary = metrics.summarise(ranks, cutoffs)
    for subset, mask in (("cold", ranks["cold"]), ("warm", ~ranks["cold"])):
        if mask.any():
            summary.update({f"{subset}.{k}": v
                            for k, v in metrics.summarise(ranks[mask], cutoffs).items()})
    logger.info("Test HR@10 %.4f, NDCG@10 %.4f over %d users.",
                summary.get("hr_at_10", float("nan")), summary.get("ndcg_at_10", float("nan")),
                len(ranks))
    return ranks, mlflow_metrics(summary)


def evaluate_robustness(
    test_candidates: pd.DataFrame,
    train: pd.DataFrame,
    items: pd.DataFrame,
    user_factors: pd.DataFrame,
    item_factors: pd.DataFrame,
    feature_projection: pd.DataFrame,
    item_features,
    parameters: dict,
    model_name: str,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Re-rank the test candidates with every item's (scaled) features perturbed by ||Δ_i|| = ε
    under each attack (paper 4.3.2), plus the certified worst case; returns the table, the
    per-user ranks and MLflow metrics ``robust.<attack>.eps_<ε>.<metric>``. The grid runs in
    this process or on Ray (``parameters["executor"]``: ``local``, ``ray``), with the same
    results."""
    model, features = load_model(user_factors, item_factors, feature_projection, item_features,
                                 items)
    cold = items.sort_values("item_id")["cold"].to_numpy(bool)
    table, per_user = robustness.evaluate_attacks(
        model,
        features,
        test_candidates,
        train,
        attacks=parameters["attacks"],
        epsilons=parameters["epsilons"],
        cutoffs=parameters["cutoffs"],
        seed=parameters["seed"],
        pgd_steps=parameters["pgd_steps"],
        pgd_step_size=parameters.get("pgd_step_size"),
        cold_items=cold,
        executor=executor(parameters.get("executor", "local"), "robustness.executor"),
        perturb_cold_items=parameters.get("perturb_cold_items", False),
    )
    table.insert(0, "model", model_name)
    per_user.insert(0, "model", model_name)
    metric_columns = [c for c in table.columns if c.startswith(("hr_at_", "ndcg_at_"))]
    attacked = table[table["attack"] != "none"].itertuples(index=False)
    logged = {f"robust.{row.attack}.eps_{row.epsilon:g}.{column}": getattr(row, column)
              for row in attacked for column in metric_columns}
    return table, per_user, mlflow_metrics(logged)
