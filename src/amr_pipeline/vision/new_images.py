"""Features of new item images with the very network the training features came from.

The features step keeps its int8 network in the feature cache (``models/resnet50-int8-...``)
only once it passed the int8-against-float32 check; when it is there, it is the network the
training features came from, and new images go through it unchanged (no new calibration, no
new check). Otherwise the training features are float32 (``precision: float32``, or int8
refused by the check) and new images go through the same float32 network (the same weights,
image size and engine). Decoding is the features step's (:func:`load_image`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from amr_pipeline.vision import quantization
from amr_pipeline.vision.feature_cache import FeatureCache
from amr_pipeline.vision.images import (
    IMAGE_SUFFIXES,
    ImageFolder,
    check_max_image_pixels,
    load_image,
)
from amr_pipeline.vision.network import weights_identity
from amr_pipeline.vision.resnet import Extractor, build_extractor, check_mode

logger = logging.getLogger(__name__)


def image_names(folder: ImageFolder | None) -> list[str]:
    """The image files directly in ``folder`` (by suffix, hidden files skipped), sorted; none
    when the folder is absent."""
    root = None if folder is None else Path(folder.root)
    if root is None or not root.is_dir():
        return []
    return sorted(path.name for path in root.iterdir()
                  if path.is_file() and not path.name.startswith(".")
                  and path.suffix.lower() in IMAGE_SUFFIXES)


def stored_int8_path(cache: FeatureCache, parameters: dict) -> Path:
    """Where the features step keeps its int8 network for these feature ``parameters``."""
    weights_id = weights_identity(parameters["weights"], parameters["seed"])
    overflow_fix = quantization.resolve_overflow_fix(parameters.get("int8_overflow_fix", "auto"))
    return cache.model_path(f"resnet50-int8-{weights_id}-{int(parameters['image_size'])}px-"
                            f"overflow-fix-{overflow_fix}")


def training_extractor(cache: FeatureCache, parameters: dict) -> Extractor:
    """The network the training features were computed with (see the module docstring)."""
    precision, engine = parameters["precision"], parameters["engine"]
    check_mode(precision, engine)
    if precision == "int8":
        path = stored_int8_path(cache, parameters)
        if path.is_file():
            network = quantization.OpenVinoFeatures(quantization.load_model(path))
            logger.info("New images: the stored int8 ResNet-50 %s", path)
            return Extractor(network, f"int8-{quantization.model_identity(path)}",
                             f"stored OpenVINO int8 ({path.name})")
        logger.info("New images: no stored int8 network in %s, so the training features are "
                    "float32: using the float32 network", path.parent)
        precision = "float32"
    return build_extractor(parameters["weights"], parameters["seed"],
                           int(parameters["image_size"]), precision, engine)


def extract_new_features(folder: ImageFolder, names: list[str], cache: FeatureCache,
                         parameters: dict) -> tuple[list[str], np.ndarray]:
    """``(names kept, float32 features)`` of the images ``names`` in ``folder``; unreadable
    images are left out with a warning."""
    size = int(parameters["image_size"])
    limit = check_max_image_pixels(parameters.get("max_image_pixels"))
    kept, images = [], []
    for name in names:
        try:
            images.append(load_image(folder.path(name), size, limit))
            kept.append(name)
        except Exception as error:  # noqa: BLE001 - one bad upload must not stop the others
            logger.warning("New image %s left out: unreadable (%s: %s)", name,
                           type(error).__name__, error)
    if not kept:
        return [], np.zeros((0, 0), np.float32)
    extractor = training_extractor(cache, parameters)
    batch = int(parameters.get("batch_size", 32))
    pixels = np.stack(images)
    features = np.concatenate([extractor(pixels[start:start + batch])
                               for start in range(0, len(pixels), batch)])
    logger.info("New images: %d features with %s", len(kept), extractor.description)
    return kept, features.astype(np.float32, copy=False)
