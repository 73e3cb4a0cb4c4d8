"""One evaluation template per model, under the model's namespace."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from .nodes import evaluate_model


def evaluation_pipeline(model: str, *, visual: bool) -> Pipeline:
    """Rank the stored test candidates with ``<model>``'s factor tables."""
    inputs = {
        "test_candidates": "test_candidates",
        "items": "items",
        "user_factors": f"{model}.user_factors",
        "item_factors": f"{model}.item_factors",
        "parameters": "params:evaluation",
    }
    if visual:
        inputs["feature_projection"] = f"{model}.feature_projection"
        inputs["item_features"] = "item_features"
    return Pipeline(
        [
            Node(
                evaluate_model,
                inputs,
                [f"{model}.ranks", f"{model}.metrics"],
                name=f"evaluate_{model}",
                namespace=model,
            )
        ],
        tags=["evaluation", model],
    )
