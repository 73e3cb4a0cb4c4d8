"""ResNet-50 through OpenVINO: float32, or int8 after post-training quantisation.

The network handed to OpenVINO is the folded-BatchNorm graph of :class:`ResNet50Features`
(uint8 images in, 2048-d float32 ``c_i`` out, ResNet-50's preprocessing included). int8 comes
from NNCF's post-training quantisation: per-channel int8 weights and int8 activations whose
ranges are calibrated on item images of the run itself (see :func:`quantize`). Before any int8
feature is kept, :func:`cosine_per_item` checks int8 against float32 on other item images.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path

import numpy as np
import openvino as ov

from amr_pipeline.errors import ConfigurationError

__all__ = ["OpenVinoFeatures", "cosine_per_item", "load_model", "model_identity",
           "openvino_model", "quantize", "save_model"]


def openvino_model(forward) -> ov.Model:
    """OpenVINO model of a ``tf.function`` with a fixed input signature (any batch size)."""
    return ov.convert_model(forward.get_concrete_function())


class OpenVinoFeatures:
    """An OpenVINO model compiled for the CPU, as a function uint8 images -> float32 rows."""

    def __init__(self, model: ov.Model) -> None:
        self.model = model
        compiled = ov.Core().compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        self._request = compiled.create_infer_request()

    def __call__(self, images) -> np.ndarray:
        output = self._request.infer([np.ascontiguousarray(images, np.uint8)])[0]
        return np.array(output, np.float32)


def quantize(model: ov.Model, calibration_images: np.ndarray) -> ov.Model:
    """int8 version of ``model``, activation ranges calibrated on ``calibration_images``.

    NNCF's post-training recipe (per-channel weights, fast bias correction) with two choices
    that keep every item's features close to float32: activation ranges span the extreme
    values of all calibration images (NNCF's default averages per-image extremes, which
    clips the rare item whose activations run higher: 1 in 256 benchmark images fell to a
    cosine of 0.998 that way, against 0.9998 with the full range), and the overflow fix on
    every layer (7-bit weights, so the 16-bit partial sums of CPUs without VNNI never
    saturate). Deterministic for the same model and images.
    """
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    nncf.set_log_level(logging.ERROR)
    batches = [calibration_images[index:index + 1] for index in range(len(calibration_images))]
    return nncf.quantize(
        model,
        nncf.Dataset(batches),
        subset_size=len(batches),
        advanced_parameters=AdvancedQuantizationParameters(
            overflow_fix=OverflowFix.ENABLE,
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
        ),
    )


def cosine_per_item(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``features`` with the same row of ``reference``."""
    features = np.asarray(features, np.float64)
    reference = np.asarray(reference, np.float64)
    norms = np.linalg.norm(features, axis=1) * np.linalg.norm(reference, axis=1)
    return (features * reference).sum(1) / np.maximum(norms, np.finfo(np.float64).tiny)


def model_identity(path: Path) -> str:
    """Short hash of a saved model's weights file (part of the feature-cache key)."""
    digest = hashlib.sha256()
    with Path(path).with_suffix(".bin").open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def save_model(model: ov.Model, path: Path) -> None:
    """Write ``path`` (.xml) and its .bin whole or not at all: the .xml appears last."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.stem}-{uuid.uuid4().hex}.xml"
    try:
        ov.save_model(model, temporary, compress_to_fp16=False)
        os.replace(temporary.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(temporary, path)
    finally:
        for leftover in (temporary, temporary.with_suffix(".bin")):
            leftover.unlink(missing_ok=True)


def load_model(path: Path) -> ov.Model:
    """Read a model written by :func:`save_model`; a damaged one is a ConfigurationError."""
    try:
        return ov.Core().read_model(Path(path))
    except Exception as error:
        raise ConfigurationError(
            f"{path}: the stored int8 ResNet-50 cannot be read ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}). Fix: delete it "
            f"(and {Path(path).with_suffix('.bin').name}); the next run calibrates a new one."
        ) from error
