"""Item image features from ResNet-50 (paper 4.1.3: the extractor shared by DUIF, VBPR and AMR).

``extract_item_features`` reads every item's image with Pillow, fits it to a centred square of
``image_size`` pixels, applies ResNet-50's own preprocessing (caffe-style BGR mean subtraction)
and returns the 2048-d global-average-pooled output of ``keras.applications.ResNet50`` with
``include_top=False``. Images are decoded by a parallel ``tf.data`` map while the previous batch
runs through the network.

Inference runs a compiled form of the Keras model: every BatchNormalization (inference mode) is
folded into the convolution before it, so each layer is one fused conv + bias (+ add) + ReLU.
That graph runs on TensorFlow (float32, bfloat16) or OpenVINO (float32, and by default int8,
see :mod:`amr_pipeline.vision.quantization`); float32 equals ``model.predict`` up to rounding
(``benchmarks/feature_extraction.py`` measures speed and agreement of every mode).

This module is the extraction loop; its parts live beside it:
:mod:`~amr_pipeline.vision.images` (the image folder, decoding),
:mod:`~amr_pipeline.vision.network` (the Keras network and its compiled form) and
:mod:`~amr_pipeline.vision.feature_cache` (the per-image cache on disk).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from amr_pipeline.errors import ConfigurationError, RawDataError
from amr_pipeline.item_features import ItemFeatures
from amr_pipeline.readers.features import check_on_missing, format_problems
from amr_pipeline.vision import quantization
from amr_pipeline.vision.feature_cache import FeatureCache
from amr_pipeline.vision.images import (
    ImageFolder,
    TooManyPixelsError,
    check_max_image_pixels,
    load_image,
)
from amr_pipeline.vision.network import MIN_IMAGE_SIZE, ResNet50Features, weights_identity

logger = logging.getLogger(__name__)

__all__ = [
    "ENGINES",
    "FEATURE_PRECISIONS",
    "Extractor",
    "FeatureExtraction",
    "build_extractor",
    "check_mode",
    "extract_item_features",
]

FEATURE_PRECISIONS = ("int8", "float32", "bfloat16")
ENGINES = ("openvino", "tensorflow")


# --------------------------------------------------------------------------- extraction


def _decoded_batches(folder: ImageFolder, names: list[str], image_size: int, batch_size: int,
                     failures: dict[int, str], max_image_pixels: int | None = None
                     ) -> tf.data.Dataset:
    """Batches of ``(images, ok)``; a file that cannot be decoded (or is over
    ``max_image_pixels``, never decoded) gives a blank image, ok=False."""
    blank = np.zeros((image_size, image_size, 3), np.uint8)

    def decode(index):
        index = int(index)
        try:
            return load_image(folder.path(names[index]), image_size, max_image_pixels), True
        except TooManyPixelsError as error:
            failures[index] = error.reason
        except Exception as error:
            failures[index] = f"unreadable ({type(error).__name__}: {error})"
        return blank, False

    def decode_op(index):
        image, ok = tf.numpy_function(decode, [index], (tf.uint8, tf.bool), stateful=True)
        image.set_shape((image_size, image_size, 3))
        ok.set_shape(())
        return image, ok

    return (
        tf.data.Dataset.range(len(names))
        .map(decode_op, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(2)
    )


@dataclass(frozen=True)
class Extractor:
    """A built feature network: ``forward(uint8 images (n, s, s, 3)) -> float32 (n, D)``.

    ``tag`` is the precision part of the feature-cache key: ``float32``, ``bfloat16`` or
    ``int8-<hash of the quantised model>``; ``check`` holds the int8-against-float32 cosine
    figures when int8 was checked (whether it passed or not); ``reference`` is the float32
    network an int8 extractor is audited against.
    """

    forward: Callable[[np.ndarray], np.ndarray]
    tag: str
    description: str
    check: dict[str, float] = field(default_factory=dict)
    reference: Callable[[np.ndarray], np.ndarray] | None = None

    def __call__(self, images) -> np.ndarray:
        return self.forward(images)


def check_mode(precision: str, engine: str) -> None:
    """Raise :class:`ConfigurationError` for an unknown or unsupported precision/engine pair."""
    if precision not in FEATURE_PRECISIONS:
        raise ConfigurationError(
            f"precision must be one of {FEATURE_PRECISIONS}, got {precision!r}."
        )
    if engine not in ENGINES:
        raise ConfigurationError(f"engine must be one of {ENGINES}, got {engine!r}.")
    if precision == "int8" and engine != "openvino":
        raise ConfigurationError(
            "precision int8 runs on the openvino engine: set engine: openvino, or choose "
            "precision float32 or bfloat16 for engine: tensorflow."
        )
    if precision == "bfloat16" and engine != "tensorflow":
        raise ConfigurationError(
            "precision bfloat16 runs on the tensorflow engine: set engine: tensorflow, or "
            "choose precision int8 or float32 for engine: openvino."
        )


def build_extractor(
    weights: str = "imagenet",
    seed: int = 0,
    image_size: int = 224,
    precision: str = "int8",
    engine: str = "openvino",
    *,
    calibration: np.ndarray | None = None,
    validation: np.ndarray | None = None,
    model_path: str | Path | None = None,
    min_cosine: float = 0.999,
    overflow_fix: str = "auto",
) -> Extractor:
    """The ResNet-50 feature network in the requested precision and engine.

    ``engine="tensorflow"`` runs :class:`ResNet50Features` (float32 or bfloat16);
    ``engine="openvino"`` runs the same folded graph through OpenVINO, in float32 or in int8.

    int8: the network is quantised with ``calibration`` images (uint8, ``(n, s, s, 3)``), or
    read from ``model_path`` when a quantised model was saved there; a newly quantised model is
    saved there only once it has passed the check. The check compares int8 and float32 features
    of the ``validation`` images: when any cosine similarity is below ``min_cosine``, a warning
    says so and the float32 network is used instead (tag ``float32``). ``overflow_fix``
    (``auto``, ``enable``: 7-bit weights, ``disable``: 8-bit weights) is NNCF's weight
    overflow fix, see :func:`quantization.resolve_overflow_fix`; a model read from
    ``model_path`` must have been quantised with the same setting (the caller's key says so).
    """
    check_mode(precision, engine)
    overflow_fix = quantization.resolve_overflow_fix(overflow_fix)
    network = ResNet50Features(weights, seed, image_size,
                               "bfloat16" if precision == "bfloat16" else "float32")
    if engine == "tensorflow":
        return Extractor(network, precision, f"TensorFlow {precision}",
                         {"inference_precision_bits": 16.0 if precision == "bfloat16" else 32.0})
    full = quantization.OpenVinoFeatures(quantization.openvino_model(network._forward))
    float32 = Extractor(full, "float32",
                        f"OpenVINO float32 (inference precision {full.inference_precision})",
                        {"inference_precision_bits": _precision_bits(full.inference_precision)})
    if precision == "float32":
        return float32
    model_path = Path(model_path) if model_path is not None else None
    stored = model_path is not None and model_path.is_file()
    if validation is None or len(validation) == 0:
        validation = calibration
    if validation is None or len(validation) == 0 or not stored and len(calibration) == 0:
        logger.warning("No readable image to calibrate or check int8 with: using float32.")
        return float32
    if stored:
        model = quantization.load_model(model_path)
        origin = f"read from {model_path}"
    else:
        model = quantization.quantize(full.model, calibration, overflow_fix)
        origin = f"calibrated on {len(calibration)} item images"
    weight_bits = 7 if overflow_fix == "enable" else 8
    reduced = quantization.OpenVinoFeatures(model)
    cosine = quantization.cosine_per_item(reduced(validation), full(validation))
    check = {"int8_min_cosine": float(cosine.min()), "int8_mean_cosine": float(cosine.mean()),
             "int8_validation_images": float(len(validation)),
             "inference_precision_bits": _precision_bits(reduced.inference_precision),
             "int8_weight_bits": float(weight_bits)}
    if cosine.min() < min_cosine:
        logger.warning(
            "ResNet-50 int8 (%s) agrees with float32 only to a cosine of %.6f (mean %.6f) on "
            "%d validation images, below the bound min_cosine=%s: using float32 instead. "
            "Lower min_cosine only if that accuracy is acceptable.",
            origin, cosine.min(), cosine.mean(), len(validation), min_cosine,
        )
        return replace(float32, check=check)
    if not stored and model_path is not None:
        quantization.save_model(model, model_path)
    identity = (quantization.model_identity(model_path) if model_path is not None
                else f"unsaved-{uuid.uuid4().hex[:8]}")
    logger.info("ResNet-50 int8 (OpenVINO, %d-bit weights, overflow fix %s, %s): cosine with "
                "float32 on %d validation images min %.6f, mean %.6f (bound %s)", weight_bits,
                overflow_fix, origin, len(validation), cosine.min(), cosine.mean(), min_cosine)
    return Extractor(reduced, f"int8-{identity}",
                     f"OpenVINO int8 ({weight_bits}-bit weights, other layers in "
                     f"{reduced.inference_precision})", check, reference=full)


def _precision_bits(name: str) -> float:
    """32 for ``f32``, 16 for ``bf16``/``f16``: the float precision OpenVINO runs, as a metric."""
    return 32.0 if name == "f32" else 16.0


def _decode_sample(folder: ImageFolder, names: list[str], count: int, image_size: int,
                   seed: int, max_image_pixels: int | None = None) -> np.ndarray:
    """Up to ``count`` readable images, in a seeded random order (unreadable ones and those
    over ``max_image_pixels`` skipped)."""
    images = []
    for index in np.random.default_rng(int(seed)).permutation(len(names)):
        if len(images) == count:
            break
        try:
            images.append(load_image(folder.path(names[index]), image_size, max_image_pixels))
        except Exception:
            continue
    return np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)


class FeatureExtraction(NamedTuple):
    """What :func:`extract_item_features` returns."""

    features: ItemFeatures
    problems: pd.DataFrame
    """``item_id, image, reason`` of the items left out (empty when none)."""
    summary: dict[str, float]
    """Counts (``items``, ``from_cache``, ``computed``, ``left_out``), ``int8`` (1 when the
    computed features are int8), ``images_per_second`` and the int8 check's cosines."""


def extract_item_features(
    items: pd.DataFrame,
    images: ImageFolder | str | Path,
    cache: FeatureCache | None = None,
    *,
    weights: str = "imagenet",
    seed: int = 0,
    image_size: int = 224,
    batch_size: int = 8,
    precision: str = "int8",
    engine: str = "openvino",
    calibration_images: int = 128,
    validation_images: int = 32,
    min_cosine: float = 0.999,
    audit_every: int = 32,
    on_missing_image: str = "fail",
    shard_size: int = 1024,
    int8_overflow_fix: str = "auto",
    max_image_pixels: int | None = None,
) -> FeatureExtraction:
    """ResNet-50 features of every item image (2048-d, float32), resuming from ``cache``.

    Args:
        items: table with ``item_id`` (int) and ``image`` (file name relative to ``images``).
        images: the image folder.
        cache: feature store; rows found there (same file name, size, mtime, weights,
            image size and precision) are not recomputed, new rows are flushed every
            ``shard_size`` images, so an interrupted run resumes where it stopped. It also
            keeps the int8 network, so a resumed run uses the same quantisation.
        weights, seed, image_size: see :func:`build_resnet50`; ``seed`` also draws the
            calibration and validation images.
        batch_size: images per forward pass (on a 2-core CPU: 8 at 224 px, 32 at 64 px).
        precision, engine: ``int8`` (``openvino``), ``float32`` (``openvino`` or
            ``tensorflow``) or ``bfloat16`` (``tensorflow``); see :func:`build_extractor`.
        calibration_images, validation_images, min_cosine: int8 is calibrated on that many
            item images and used only if, on that many others, every feature has a cosine
            similarity of at least ``min_cosine`` with float32; otherwise float32 is used.
        audit_every: int8 only: every ``audit_every``-th batch is also run in float32 and
            compared (0: never), so the agreement is measured across the whole run, not only
            on the validation sample; a warning names the share of audited items below
            ``min_cosine``. Costs about 6% at 32.
        int8_overflow_fix: ``auto`` (full 8-bit weights on CPUs with VNNI, 7-bit without),
            ``enable`` (7-bit) or ``disable`` (8-bit); see
            :func:`quantization.resolve_overflow_fix`. Part of the stored int8 network's
            name, so a network quantised with one setting is never reused for the other.
        on_missing_image: missing and unreadable/corrupt image files are collected into one
            report. ``"fail"`` raises :class:`RawDataError` listing them (features of the
            readable ones are cached first); ``"drop"`` logs the list and leaves those items out.
        max_image_pixels: an image whose header declares more pixels (None: Pillow's
            ``Image.MAX_IMAGE_PIXELS``) is never decoded: it goes into that report as
            "unreadable: too many pixels".

    Returns:
        :class:`FeatureExtraction`: the features of the readable items in table order, the
        items left out, and a summary of the run (for MLflow).
    """
    check_on_missing(on_missing_image, "on_missing_image")
    max_image_pixels = check_max_image_pixels(max_image_pixels)
    check_mode(precision, engine)
    overflow_fix = quantization.resolve_overflow_fix(int8_overflow_fix)
    if int(batch_size) < 1:
        raise ConfigurationError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if int(image_size) < MIN_IMAGE_SIZE:
        raise ConfigurationError(f"image_size must be at least {MIN_IMAGE_SIZE}, got {image_size}.")
    if int(calibration_images) < 1 or int(validation_images) < 1:
        raise ConfigurationError("calibration_images and validation_images must be at least 1, "
                                 f"got {calibration_images!r} and {validation_images!r}.")
    if int(audit_every) < 0:
        raise ConfigurationError(f"audit_every must be 0 (off) or more, got {audit_every!r}.")
    if not 0.0 < float(min_cosine) <= 1.0:
        raise ConfigurationError(f"min_cosine must be in (0, 1], got {min_cosine!r}.")
    missing_columns = {"item_id", "image"} - set(items.columns)
    if missing_columns:
        raise ConfigurationError(f"items table lacks column(s) {sorted(missing_columns)}.")
    folder = images if isinstance(images, ImageFolder) else ImageFolder(Path(images))
    item_ids = items["item_id"].to_numpy(np.int64)
    names = [None if pd.isna(name) else str(name) for name in items["image"]]
    weights_id = weights_identity(weights, seed)

    problems: dict[int, str] = {}
    files: dict[int, tuple[int, int]] = {}
    for index, name in enumerate(names):
        status = folder.stat(name) if name else None
        if status is None:
            problems[index] = "missing file" if name else "no image file name"
        else:
            files[index] = (status.st_size, status.st_mtime_ns)
    model_path = (cache.model_path(f"resnet50-int8-{weights_id}-{int(image_size)}px-"
                                   f"overflow-fix-{overflow_fix}")
                  if cache is not None and precision == "int8" else None)

    def keys(tag: str) -> dict[int, str]:
        return {index: FeatureCache.key(names[index], size, mtime, weights_id, int(image_size),
                                        tag) for index, (size, mtime) in files.items()}

    def cached(tag: str | None) -> dict[int, np.ndarray]:
        if cache is None or tag is None or not files:
            return {}
        candidates = np.fromiter(files, np.int64)
        found, rows = cache.lookup(list(keys(tag).values()))
        return dict(zip(candidates[found].tolist(), rows if rows is not None else []))

    stored = model_path is not None and model_path.is_file()
    tag = precision
    if precision == "int8":
        tag = f"int8-{quantization.model_identity(model_path)}" if stored else None
    rows = cached(tag)
    todo = [index for index in files if index not in rows]
    summary = {"from_cache": float(len(rows)), "computed": 0.0}
    logger.info("Item image features: %d items, %d from cache, %d to compute (%s, %dpx, %s, %s)",
                len(items), len(rows), len(todo), weights_id, image_size, precision, engine)
    if todo:
        sample = {}
        if precision == "int8":
            count = int(validation_images) + (0 if stored else int(calibration_images))
            decoded = _decode_sample(folder, [names[i] for i in todo], count, int(image_size),
                                     seed, max_image_pixels)
            split = 0 if stored else min(int(calibration_images), len(decoded))
            sample = {"calibration": decoded[:split], "validation": decoded[split:],
                      "model_path": model_path, "min_cosine": float(min_cosine),
                      "overflow_fix": overflow_fix}
        extractor = build_extractor(weights, seed, int(image_size), precision, engine, **sample)
        if extractor.tag != tag:
            rows = cached(extractor.tag)
            todo = [index for index in files if index not in rows]
        logger.info("Computing %d item features with ResNet-50, %s", len(todo),
                    extractor.description)
        todo_keys = keys(extractor.tag)
        summary.update(extractor.check, from_cache=float(len(rows)),
                       int8=float(extractor.tag.startswith("int8")))
        start = time.perf_counter()
        computed, audit = _compute(extractor, folder, [names[i] for i in todo], todo,
                                   [todo_keys[i] for i in todo], cache, int(image_size),
                                   int(batch_size), int(shard_size), int(audit_every), problems,
                                   max_image_pixels)
        rows.update(computed)
        summary["computed"] = float(len(computed))
        summary["images_per_second"] = len(todo) / max(time.perf_counter() - start, 1e-9)
        if len(audit):
            summary.update(int8_audited_images=float(len(audit)),
                           int8_audit_min_cosine=float(audit.min()),
                           int8_audit_mean_cosine=float(audit.mean()))
            below = int((audit < float(min_cosine)).sum())
            log = logger.warning if below else logger.info
            log("int8 audit: %d of %d audited items below min_cosine=%s (min %.6f, mean %.6f)%s",
                below, len(audit), min_cosine, audit.min(), audit.mean(),
                "; if that matters, re-run with precision: float32" if below else "")

    report = pd.DataFrame(
        {"item_id": item_ids[sorted(problems)].astype(np.int64),
         "image": pd.Series([names[i] for i in sorted(problems)], dtype="str"),
         "reason": pd.Series([problems[i] for i in sorted(problems)], dtype="str")}
    )
    if problems:
        lines = [f"item {i}: {n} ({r})" for i, n, r in report.itertuples(index=False)]
        message = (f"{len(problems)} of {len(items)} item images are missing or unreadable "
                   f"under {folder.root}:\n{format_problems(lines)}")
        if on_missing_image == "fail":
            raise RawDataError(
                message + "\nFix: restore or replace these files"
                + (", shrink the images over max_image_pixels (or raise that limit)"
                   if any("too many pixels" in reason for reason in problems.values()) else "")
                + ", or set on_missing_image: drop to leave these items out."
            )
        logger.warning("%s\nDropping these items.", message)
    keep = sorted(rows)
    features = (np.stack([rows[i] for i in keep]).astype(np.float32, copy=False) if keep
                else np.zeros((0, 0), np.float32))
    summary.update(items=float(len(items)), left_out=float(len(problems)))
    return FeatureExtraction(ItemFeatures(item_ids[keep], features), report, summary)


def _compute(extractor, folder, names, indices, keys, cache, image_size, batch_size,
             shard_size, audit_every, problems, max_image_pixels=None
             ) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Run ``extractor`` over ``names``; record decode failures in ``problems``.

    Returns the rows and, when ``extractor.reference`` is set, the cosine similarity with it of
    every item of every ``audit_every``-th batch (the middle one of each run of batches).
    """
    failures: dict[int, str] = {}
    audit: list[np.ndarray] = []
    computed: dict[int, np.ndarray] = {}
    pending_keys: list[str] = []
    pending_rows: list[np.ndarray] = []

    def flush():
        if cache is not None and pending_keys:
            cache.store(pending_keys, np.stack(pending_rows))
        pending_keys.clear()
        pending_rows.clear()

    start = 0
    try:
        with tqdm(total=len(names), unit="img", desc="ResNet-50 features", mininterval=1) as bar:
            batches = _decoded_batches(folder, names, image_size, batch_size, failures,
                                       max_image_pixels)
            for number, (batch, ok) in enumerate(batches):
                ok, pixels = ok.numpy(), batch.numpy()
                output = extractor(pixels) if ok.any() else None
                if (output is not None and extractor.reference is not None and audit_every
                        and number % audit_every == audit_every // 2):
                    reference = extractor.reference(pixels[ok])
                    audit.append(quantization.cosine_per_item(output[ok], reference))
                for offset in np.flatnonzero(ok):
                    position = start + int(offset)
                    computed[indices[position]] = output[offset]
                    pending_keys.append(keys[position])
                    pending_rows.append(output[offset])
                start += len(ok)
                bar.update(len(ok))
                if len(pending_keys) >= shard_size:
                    flush()
    finally:
        flush()
    for position, reason in failures.items():
        problems[indices[position]] = reason
    return computed, (np.concatenate(audit) if audit else np.zeros(0))
