"""One evaluation template per model, under the model's namespace."""

from __future__ import annotations

from functools import partial

from kedro.pipeline import Node, Pipeline

from .nodes import evaluate_model, evaluate_robustness


def evaluation_pipeline(model: str, *, visual: bool, replicated: bool = True) -> Pipeline:
    """Rank the stored test candidates, and the full catalogue, with ``<model>``'s factor
    tables and those of its replicates (``replicated``: the model has ``<model>.replicates``)."""
    inputs = {
        "test_candidates": "test_candidates",
        "items": "final_items",
        "train": "final_train",
        "user_factors": f"{model}.user_factors",
        "item_factors": f"{model}.item_factors",
        "parameters": "params:evaluation",
    }
    if visual:
        inputs["feature_projection"] = f"{model}.feature_projection"
        inputs["item_features"] = "item_features"
    if replicated:
        inputs["replicates"] = f"{model}.replicates"
    return Pipeline(
        [
            Node(
                partial(evaluate_model, model_name=model),
                inputs,
                [f"{model}.ranks", f"{model}.replicate_ranks", f"{model}.metrics"],
                name=f"evaluate_{model}",
                namespace=model,
            )
        ],
        tags=["evaluation", model],
    )


def robustness_pipeline(model: str) -> Pipeline:
    """Attack ``<model>``'s image features at test time (Table 3, Figures 4-5)."""
    return Pipeline(
        [
            Node(
                partial(evaluate_robustness, model_name=model),
                {
                    "test_candidates": "test_candidates",
                    "train": "final_train",
                    "items": "final_items",
                    "user_factors": f"{model}.user_factors",
                    "item_factors": f"{model}.item_factors",
                    "feature_projection": f"{model}.feature_projection",
                    "item_features": "item_features",
                    "parameters": "params:robustness",
                    "replicates": f"{model}.replicates",
                },
                [f"{model}.robustness", f"{model}.robustness_ranks", f"{model}.robustness_metrics"],
                name=f"attack_{model}",
                namespace=model,
            )
        ],
        tags=["evaluation", "robustness", model],
    )
