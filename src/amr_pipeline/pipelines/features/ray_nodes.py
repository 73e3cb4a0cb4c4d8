"""The features pipeline's three steps, run locally or on Ray (``features.executor``).

``local`` (the demo default): the first two steps pass, the third extracts every feature in
this process (:func:`nodes.build_item_features`). ``ray``: :mod:`amr_pipeline.vision.ray_features`
builds and stores the network on the driver, computes the missing Parquet parts of
``item_feature_parts`` on Ray and compacts them into ``item_features``; only the driver logs
to MLflow.
"""

from __future__ import annotations

import pandas as pd

from amr_pipeline.distributed import check_executor
from amr_pipeline.pipelines import mlflow_metrics
from amr_pipeline.readers.features import RawFeatures
from amr_pipeline.vision import ray_features

from .nodes import build_item_features

RAY_DEFAULTS = {"workers": 1, "cpus_per_worker": 1.0, "decode_cpus": 0.5, "part_size": 4096}


def _on_ray(image_source, parameters: dict) -> bool:
    executor = check_executor(parameters.get("executor", "local"), "features.executor")
    return executor == "ray" and not isinstance(image_source, RawFeatures)


def _ray_parameters(parameters: dict) -> dict:
    settings = dict(RAY_DEFAULTS)
    unknown = sorted(set(parameters.get("ray") or {}) - set(RAY_DEFAULTS))
    if unknown:
        from amr_pipeline.errors import ConfigurationError

        raise ConfigurationError(f"features.ray: unknown keys {unknown}; the known ones are "
                                 f"{sorted(RAY_DEFAULTS)}.")
    settings.update(parameters.get("ray") or {})
    return settings


def prepare_feature_network(items: pd.DataFrame, image_source, feature_cache,
                            parameters: dict) -> dict:
    """On Ray: calibrate and check the int8 network once, here, and store it in the feature
    cache; returns its description. Locally: ``{"executor": "local"}``."""
    if not _on_ray(image_source, parameters):
        return {"executor": "local"}
    _ray_parameters(parameters)
    network = ray_features.prepare_network(
        items, image_source, feature_cache,
        weights=parameters["weights"], seed=parameters["seed"],
        image_size=parameters["image_size"], precision=parameters["precision"],
        engine=parameters["engine"], calibration_images=parameters["calibration_images"],
        validation_images=parameters["validation_images"], min_cosine=parameters["min_cosine"],
        int8_overflow_fix=parameters.get("int8_overflow_fix", "auto"),
        max_image_pixels=parameters.get("max_image_pixels"),
    )
    return {"executor": "ray", **network}


def extract_feature_parts(items: pd.DataFrame, image_source, feature_network: dict,
                          written_parts: dict, parameters: dict) -> tuple[dict, pd.DataFrame]:
    """On Ray: the parts not in ``written_parts`` as lazy tables (written one by one while Ray
    computes the next) and the plan of every part. Locally: nothing."""
    if feature_network.get("executor") != "ray":
        return {}, _empty_plan()
    settings = _ray_parameters(parameters)
    return ray_features.extract_parts(
        items, image_source, ray_features.check_network(feature_network), set(written_parts),
        batch_size=parameters["batch_size"], part_size=settings["part_size"],
        workers=settings["workers"], cpus_per_worker=settings["cpus_per_worker"],
        decode_cpus=settings["decode_cpus"], audit_every=parameters["audit_every"],
        max_image_pixels=parameters.get("max_image_pixels"),
    )


def build_item_features_from_parts(items: pd.DataFrame, image_source, feature_cache,
                                   item_feature_parts: dict, feature_parts_plan: pd.DataFrame,
                                   feature_network: dict, parameters: dict):
    """On Ray: the feature matrix compacted from the parts of this run's plan (streamed to
    ``item_features`` part by part) and the run's figures as MLflow metrics. Locally: the
    features extracted in this process, as :func:`nodes.build_item_features` does."""
    if feature_network.get("executor") != "ray":
        return build_item_features(items, image_source, feature_cache, parameters)
    chunks, summary = ray_features.compact_parts(
        item_feature_parts, feature_parts_plan, feature_network,
        images_root=str(getattr(image_source, "root", "")),
        on_missing_image=parameters["on_missing_image"], min_cosine=parameters["min_cosine"],
    )
    return chunks, mlflow_metrics(summary)


def _empty_plan() -> pd.DataFrame:
    return pd.DataFrame({"part": pd.Series(dtype="str"), "start": pd.Series(dtype="int64"),
                         "stop": pd.Series(dtype="int64"), "items": pd.Series(dtype="int64"),
                         "computed": pd.Series(dtype="bool")})
