"""Thin nodes over :mod:`amr_pipeline.vision` and :mod:`amr_pipeline.readers.features`."""

from __future__ import annotations

import pandas as pd

from amr_pipeline.pipelines import mlflow_metrics
from amr_pipeline.item_features import ItemFeatures
from amr_pipeline.readers.features import RawFeatures, map_features_to_items
from amr_pipeline.vision.network import build_resnet50
from amr_pipeline.vision.resnet import extract_item_features


def build_item_features(
    items: pd.DataFrame, image_source, feature_cache, parameters: dict
) -> tuple[ItemFeatures, dict]:
    """Features for every item of ``items``: extracted from its image with ResNet-50 (resuming
    from ``feature_cache``), or looked up by raw id when the environment's ``image_source`` is a
    precomputed feature file (Amazon ``.b``, ``.npy``). Also returns the run's figures as MLflow
    metrics (items, cached/computed counts, images/s, whether int8 was used and its check)."""
    if isinstance(image_source, RawFeatures):
        features, report = map_features_to_items(
            items, image_source, parameters["on_missing_image"]
        )
        summary = {"items": len(items), "imported": len(features.item_ids),
                   "left_out": len(report)}
    else:
        features, _, summary = extract_item_features(
            items,
            image_source,
            feature_cache,
            weights=parameters["weights"],
            seed=parameters["seed"],
            image_size=parameters["image_size"],
            batch_size=parameters["batch_size"],
            precision=parameters["precision"],
            engine=parameters["engine"],
            calibration_images=parameters["calibration_images"],
            validation_images=parameters["validation_images"],
            min_cosine=parameters["min_cosine"],
            audit_every=parameters["audit_every"],
            on_missing_image=parameters["on_missing_image"],
            int8_overflow_fix=parameters["int8_overflow_fix"],
            max_image_pixels=parameters.get("max_image_pixels"),
        )
    return features, mlflow_metrics(summary)


def feature_network(parameters: dict):
    """The float32 Keras ResNet-50 of the feature settings (weights, seed, image size): the
    network the features come from, for what back-propagates through it (Figure 1)."""
    return build_resnet50(parameters["weights"], parameters["seed"], parameters["image_size"])
