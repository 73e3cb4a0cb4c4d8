"""Wiring of the features pipeline."""

from kedro.pipeline import Node, Pipeline

from .nodes import build_item_features


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                build_item_features,
                ["items", "image_source", "feature_cache", "params:features"],
                ["item_features", "feature_metrics"],
                name="extract_item_features",
            )
        ],
        tags="features",
    )
