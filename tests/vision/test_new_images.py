"""An existing item's image fed back as a new image gets its stored feature vector back:
the new-image step runs the very network the features step used (int8 when it kept one,
float32 otherwise)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.vision.feature_cache import FeatureCache
from amr_pipeline.vision.images import ImageFolder
from amr_pipeline.vision.new_images import extract_new_features, image_names, stored_int8_path
from amr_pipeline.vision.quantization import cosine_per_item
from amr_pipeline.vision.resnet import extract_item_features

DEMO_IMAGES = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "demo" / "images"
FEATURES = {"weights": "random", "seed": 7, "image_size": 64, "batch_size": 32,
            "engine": "openvino", "calibration_images": 6, "validation_images": 2,
            "int8_overflow_fix": "auto", "max_image_pixels": 89478485}


@pytest.mark.parametrize("precision", ["int8", "float32"])
def test_an_items_image_fed_back_gives_its_feature_vector(precision, tmp_path):
    names = sorted(p.name for p in DEMO_IMAGES.iterdir())[:8]
    items = pd.DataFrame({"item_id": np.arange(len(names)), "image": names})
    cache = FeatureCache(tmp_path / "cache")
    parameters = {**FEATURES, "precision": precision,
                  # int8: a bound it passes on these images, so the network is kept
                  "min_cosine": 0.9}
    stored = extract_item_features(items, DEMO_IMAGES, cache, audit_every=0,
                                   **{k: v for k, v in parameters.items()
                                      if k != "batch_size"}).features.features
    assert stored_int8_path(cache, parameters).is_file() == (precision == "int8")
    new = tmp_path / "new_images"
    new.mkdir()
    for index, name in enumerate(names[:3]):
        shutil.copy(DEMO_IMAGES / name, new / f"upload-{index}{Path(name).suffix}")
    (new / "broken.jpg").write_bytes(b"not an image")
    (new / "readme.txt").write_text("ignored")
    found = image_names(ImageFolder(new))
    assert found == ["broken.jpg", "upload-0.jpg", "upload-1.jpg", "upload-2.jpg"]
    kept, features = extract_new_features(ImageFolder(new), found, cache, parameters)
    assert kept == found[1:]
    assert cosine_per_item(features, stored[:3]).min() >= 0.999
    if precision == "float32":  # the same float32 network: the same vectors
        np.testing.assert_allclose(features, stored[:3], rtol=1e-5, atol=1e-6)


def test_an_absent_folder_has_no_images(tmp_path):
    assert image_names(ImageFolder(tmp_path / "absent")) == []
