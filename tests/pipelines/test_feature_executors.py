"""The features pipeline's executor switch, without Ray: local runs as before; bad settings
are configuration errors that name the parameter."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.pipelines.features import ray_nodes
from amr_pipeline.pipelines.features.nodes import build_item_features
from amr_pipeline.vision.feature_cache import FeatureCache
from amr_pipeline.vision.images import ImageFolder

PARAMETERS = {"weights": "random", "seed": 7, "image_size": 32, "batch_size": 2,
              "precision": "float32", "engine": "openvino", "calibration_images": 2,
              "validation_images": 2, "min_cosine": 0.9, "audit_every": 0,
              "on_missing_image": "fail", "int8_overflow_fix": "auto", "executor": "local"}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            folder / f"{index}.png")
    return pd.DataFrame({"item_id": [0, 1, 2], "image": ["0.png", "1.png", "2.png"]}), folder


def test_local_executor_runs_the_three_nodes_as_the_single_local_step(images, tmp_path):
    items, folder = images
    network = ray_nodes.prepare_feature_network(items, ImageFolder(folder), None, PARAMETERS)
    parts, plan = ray_nodes.extract_feature_parts(items, ImageFolder(folder), network, {},
                                                  PARAMETERS)
    assert network == {"executor": "local"} and parts == {} and plan.empty
    features, metrics = ray_nodes.build_item_features_from_parts(
        items, ImageFolder(folder), FeatureCache(tmp_path / "a"), {}, plan, network, PARAMETERS)
    expected, _ = build_item_features(items, ImageFolder(folder), FeatureCache(tmp_path / "b"),
                                      PARAMETERS)
    assert np.array_equal(features.features, expected.features)
    assert metrics["features.computed" if "features.computed" in metrics else "computed"]


@pytest.mark.parametrize("change, message", [
    ({"executor": "spark"}, r"features.executor must be one of \('local', 'ray'\)"),
    ({"executor": "ray", "engine": "tensorflow"}, r"set features.engine: openvino"),
    ({"executor": "ray", "ray": {"worker": 2}}, r"features.ray: unknown keys \['worker'\]"),
])
def test_bad_executor_settings_name_the_parameter(images, tmp_path, change, message):
    items, folder = images
    with pytest.raises(ConfigurationError, match=message):
        ray_nodes.prepare_feature_network(items, ImageFolder(folder), FeatureCache(tmp_path),
                                          {**PARAMETERS, **change})
