"""Thin nodes over :mod:`amr_pipeline.recsys.metrics`."""

from __future__ import annotations

import logging

import pandas as pd

from amr_pipeline.pipelines.training.nodes import feature_matrix
from amr_pipeline.recsys import metrics
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
    return ranks, {key: {"value": float(value), "step": 0} for key, value in summary.items()}
