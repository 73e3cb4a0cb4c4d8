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
from amr_pipeline.log_levels import logger_level

__all__ = ["INFERENCE_PRECISIONS", "OVERFLOW_FIXES", "OpenVinoFeatures", "cosine_per_item",
           "has_vnni", "load_model", "model_identity", "native_bf16", "openvino_model",
           "logger_level", "precision_name", "quantize", "resolve_overflow_fix", "save_model"]


def openvino_model(forward) -> ov.Model:
    """OpenVINO model of a ``tf.function`` with a fixed input signature (any batch size)."""
    return ov.convert_model(forward.get_concrete_function())


INFERENCE_PRECISIONS = ("f32", "bf16", "f16")


class OpenVinoFeatures:
    """An OpenVINO model compiled for the CPU, as a function uint8 images -> float32 rows.

    ``inference_precision`` is set explicitly: OpenVINO's CPU plugin otherwise runs float
    layers in bf16 on CPUs with native bf16 (AVX-512 BF16, AMX), so a "float32" model would
    not be float32 there. ``f32`` (the default) keeps float layers in float32 everywhere; an
    int8 model then runs its quantised layers in int8 and the rest in float32. The precision
    the plugin actually uses is read back into :attr:`inference_precision` (a CPU without bf16
    runs a ``bf16`` request in f32).
    """

    def __init__(self, model: ov.Model, inference_precision: str = "f32") -> None:
        if inference_precision not in INFERENCE_PRECISIONS:
            raise ConfigurationError(
                f"inference_precision must be one of {INFERENCE_PRECISIONS}, got "
                f"{inference_precision!r}."
            )
        self.model = model
        compiled = ov.Core().compile_model(
            model, "CPU",
            {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": inference_precision},
        )
        self.inference_precision = precision_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        self._request = compiled.create_infer_request()

    def __call__(self, images) -> np.ndarray:
        output = self._request.infer([np.ascontiguousarray(images, np.uint8)])[0]
        return np.array(output, np.float32)


def precision_name(element_type) -> str:
    """``f32``/``bf16``/``f16`` for an OpenVINO element type (as a property reads back)."""
    return element_type if isinstance(element_type, str) else element_type.to_string()


def native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin has native bf16 here (AVX-512 BF16 or AMX)."""
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
"""``/proc/cpuinfo`` flags of the int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX)."""

OVERFLOW_FIXES = ("auto", "enable", "disable")


def has_vnni(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether the CPU has VNNI int8 dot products (a flag of :data:`VNNI_FLAGS` in ``cpuinfo``).

    OpenVINO does not report VNNI (its ``INT8`` capability is there on AVX2 too), so the Linux
    CPU flags are read; where they cannot be read the answer is False, the safe side (7-bit
    weights, see :func:`quantize`).
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & VNNI_FLAGS)


def resolve_overflow_fix(setting: str = "auto") -> str:
    """``enable`` or ``disable``: ``auto`` is ``disable`` with VNNI, ``enable`` without it.

    Without VNNI, OpenVINO's int8 convolutions multiply uint8 activations by int8 weights in
    pairs summed into 16 bits (``vpmaddubsw``), which saturates with full 8-bit weights; the
    overflow fix quantises weights to 7 bits so it cannot. VNNI sums into 32 bits, so full
    8-bit weights are safe there and more accurate.
    """
    if setting not in OVERFLOW_FIXES:
        raise ConfigurationError(
            f"int8_overflow_fix must be one of {OVERFLOW_FIXES}, got {setting!r}."
        )
    if setting == "auto":
        return "disable" if has_vnni() else "enable"
    return setting


def quantize(model: ov.Model, calibration_images: np.ndarray,
             overflow_fix: str = "auto") -> ov.Model:
    """int8 version of ``model``, activation ranges calibrated on ``calibration_images``.

    NNCF's post-training recipe (per-channel weights, fast bias correction) with two choices
    that keep every item's features close to float32: activation ranges span the extreme
    values of all calibration images (NNCF's default averages per-image extremes, which
    clips the rare item whose activations run higher: 1 in 256 benchmark images fell to a
    cosine of 0.998 that way, against 0.9998 with the full range), and the weights' overflow
    fix chosen per CPU (``overflow_fix``, see :func:`resolve_overflow_fix`: 7-bit weights on
    every layer without VNNI, full 8-bit weights with it). Deterministic for the same model,
    images and setting.
    """
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    fix = OverflowFix.ENABLE if resolve_overflow_fix(overflow_fix) == "enable" else (
        OverflowFix.DISABLE)
    batches = [calibration_images[index:index + 1] for index in range(len(calibration_images))]
    with logger_level("nncf", logging.ERROR):
        return nncf.quantize(
            model,
            nncf.Dataset(batches),
            subset_size=len(batches),
            advanced_parameters=AdvancedQuantizationParameters(
                overflow_fix=fix,
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
