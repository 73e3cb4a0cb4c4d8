"""The features node: ResNet-50 extraction or a precomputed-feature import, with its metrics."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from amr_pipeline.pipelines.features.nodes import build_item_features
from amr_pipeline.readers.features import RawFeatures
from amr_pipeline.vision.feature_cache import FeatureCache
from amr_pipeline.vision.images import ImageFolder

PARAMETERS = {
    "weights": "random", "seed": 3, "image_size": 32, "batch_size": 4, "precision": "int8",
    "engine": "openvino", "calibration_images": 6, "validation_images": 4, "min_cosine": 0.999,
    "audit_every": 1, "on_missing_image": "drop", "int8_overflow_fix": "enable",
}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for index in range(10):
        field = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
        image = Image.fromarray(field).resize((40, 40), Image.Resampling.BICUBIC)
        image.save(root / f"{index}.png")
    items = pd.DataFrame({"item_id": np.arange(11), "item_raw_id": [f"r{i}" for i in range(11)],
                          "image": [f"{i}.png" for i in range(10)] + ["gone.png"]})
    return items, root


def _values(metrics: dict) -> dict:
    assert all(entry["step"] == 0 for entry in metrics.values())
    return {name: entry["value"] for name, entry in metrics.items()}


def test_extraction_reports_int8_check_and_counts_as_metrics(catalogue, tmp_path):
    items, root = catalogue
    cache = FeatureCache(tmp_path / "cache")
    features, metrics = build_item_features(items, ImageFolder(root), cache, PARAMETERS)
    assert features.item_ids.tolist() == list(range(10)) and features.features.shape == (10, 2048)
    values = _values(metrics)
    assert values["items"] == 11 and values["left_out"] == 1
    assert values["computed"] == 10 and values["from_cache"] == 0
    assert values["int8"] == 1.0 and values["int8_min_cosine"] >= 0.999
    assert values["int8_validation_images"] == 4 and values["images_per_second"] > 0
    assert values["int8_audited_images"] == 10, "audit_every: 1 compares every batch"
    assert values["int8_weight_bits"] == 7, "int8_overflow_fix: enable reaches the quantiser"
    assert 0.99 < values["int8_audit_min_cosine"] <= values["int8_audit_mean_cosine"] <= 1

    again = _values(build_item_features(items, ImageFolder(root), cache, PARAMETERS)[1])
    assert again["computed"] == 0 and again["from_cache"] == 10

    strict = _values(build_item_features(items, ImageFolder(root), None,
                                         {**PARAMETERS, "min_cosine": 1.0})[1])
    assert strict["int8"] == 0.0 and strict["int8_min_cosine"] < 1.0, "the fallback is visible"


def test_precomputed_features_are_mapped_and_counted(catalogue):
    items, _ = catalogue
    raw = RawFeatures(np.array(["r1", "r0", "r5"]), np.eye(3, 4, dtype=np.float32), "x.npy")
    features, metrics = build_item_features(items, raw, None, PARAMETERS)
    assert features.item_ids.tolist() == [0, 1, 5]
    np.testing.assert_array_equal(features.features[0], raw.features[1])
    assert _values(metrics) == {"items": 11, "imported": 3, "left_out": 8}
