"""Models as the catalog stores them, for every pipeline that reads them back.

- :func:`load_model`: a :class:`~amr_pipeline.recsys.models.FactorModel` from its factor
  tables, with the features c_i it scores with (:func:`~amr_pipeline.item_features.feature_matrix`).
- :func:`history_metrics`: a training history as MLflow metric history (step = epoch).
"""

from __future__ import annotations

import pandas as pd

from amr_pipeline.item_features import feature_matrix
from amr_pipeline.recsys.models import FactorModel


def load_model(
    user_factors: pd.DataFrame,
    item_factors: pd.DataFrame,
    feature_projection: pd.DataFrame | None,
    item_features,
    items: pd.DataFrame,
    features=None,
):
    """A :class:`FactorModel` and the feature matrix it scores with (None for ID-only models;
    ``features`` when already built)."""
    model = FactorModel.from_frames(user_factors, item_factors, feature_projection)
    if not model.uses_features:
        return model, None
    return model, features if features is not None else feature_matrix(item_features, items)


def history_metrics(history: pd.DataFrame) -> dict:
    """Training curves as MLflow metric history (step = epoch)."""
    curves = {}
    for column, key in (("loss", "train.loss"), ("hr_at_10", "validation.hr_at_10"),
                        ("ndcg_at_10", "validation.ndcg_at_10")):
        values = history[["epoch", column]].dropna()
        if len(values):
            curves[key] = [{"value": float(v), "step": int(s)} for s, v in values.to_numpy()]
    return curves
