"""Wiring of the features pipeline: network, parts (Ray only), feature matrix."""

from kedro.pipeline import Node, Pipeline

from .nodes import feature_network
from .ray_nodes import (
    build_item_features_from_parts,
    extract_feature_parts,
    prepare_feature_network,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                prepare_feature_network,
                ["items", "image_source", "feature_cache", "params:features"],
                "feature_network",
                name="prepare_feature_network",
            ),
            Node(
                extract_feature_parts,
                ["items", "image_source", "feature_network", "item_feature_parts_written",
                 "params:features"],
                ["item_feature_parts", "feature_parts_plan"],
                name="extract_feature_parts",
            ),
            Node(
                build_item_features_from_parts,
                ["items", "image_source", "feature_cache", "item_feature_parts",
                 "feature_parts_plan", "feature_network", "params:features"],
                ["item_features", "feature_metrics"],
                name="extract_item_features",
            ),
        ],
        tags="features",
    )


def network_pipeline() -> Pipeline:
    """The float32 Keras ResNet-50 the features come from, as the dataset
    ``feature_extractor_network`` (held in memory)."""
    return Pipeline([Node(feature_network, "params:features", "feature_extractor_network",
                          name="build_feature_network")], tags="features")
