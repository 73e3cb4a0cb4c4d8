"""Images per second of the ResNet-50 item feature extractor against plain ``model.predict``.

Writes ``--images`` synthetic 224 x 224 JPEGs (smooth colour fields with shapes) to a temporary
folder, then times, on the same images and weights:

- the project's extractor (``extract_item_features``: parallel decode + the folded-BN graph) in
  each ``--modes`` ``engine:precision`` (the first is the default mode). Each network is built
  beforehand; int8 is calibrated on ``--calibration-images`` other generated images and checked
  against float32 as in a pipeline run, and that one-off setup time is printed apart.
  ``openvino:int8:enable`` / ``openvino:int8:disable`` set the weights' overflow fix (7-bit /
  8-bit weights; plain ``openvino:int8`` is ``auto``, chosen per CPU), and ``openvino:bf16``
  runs OpenVINO with bf16 inference precision, a speed reference only: it is not float32 and
  no pipeline setting selects it;
- the baseline: decode one by one with the same ``load_image``, then fp32
  ``model.predict(batch_size=32)`` of the Keras model (also shown without the decoding).

Each is timed in every one of ``--rounds`` interleaved rounds (the machine may be shared) and
the best round is reported, with CPU milliseconds per image. Features are compared per item
with the baseline's (max absolute difference, min/mean cosine similarity).

    python benchmarks/feature_extraction.py --images 256
    python benchmarks/feature_extraction.py --weights path/to/resnet50_..._notop.h5
"""

from __future__ import annotations

import argparse
import inspect
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from keras.applications import resnet50 as keras_resnet50
from PIL import Image, ImageDraw, ImageFilter

from scale import machine_line

from amr_pipeline.vision import quantization, resnet
from amr_pipeline.vision.images import load_image
from amr_pipeline.vision.network import ResNet50Features


def write_images(folder: Path, count: int, size: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    names = []
    for index in range(count):
        field = rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8)
        image = Image.fromarray(field).resize((size, size), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            box = sorted(rng.integers(0, size, 2)), sorted(rng.integers(0, size, 2))
            shape = [box[0][0], box[1][0], box[0][1] + 8, box[1][1] + 8]
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(shape, fill=colour)
        image = image.filter(ImageFilter.GaussianBlur(1))
        name = f"item{index:05d}.jpg"
        image.save(folder / name, quality=90)
        names.append(name)
    return names


def compare(features: np.ndarray, reference: np.ndarray) -> str:
    cosine = quantization.cosine_per_item(features, reference)
    return (f"max |diff| {np.abs(features - reference).max():.3g} "
            f"(max |feature| {np.abs(reference).max():.3g}), "
            f"cosine min {cosine.min():.6f} mean {cosine.mean():.6f}")


def parse_mode(mode: str) -> tuple[str, str, str]:
    """``engine``, ``precision`` and int8 overflow fix (``auto`` unless given) of a mode."""
    engine, precision, *rest = mode.split(":")
    if precision == "bf16" and engine != "openvino":
        raise SystemExit(f"{mode}: bf16 is an OpenVINO speed reference (openvino:bf16)")
    return engine, precision, rest[0] if rest else "auto"


def bf16_extractor(float32: resnet.Extractor) -> resnet.Extractor:
    """The float32 OpenVINO network compiled with bf16 inference precision (not float32)."""
    compiled = quantization.OpenVinoFeatures(float32.forward.model, "bf16")
    return resnet.Extractor(compiled, "openvino-bf16",
                            f"OpenVINO, inference precision {compiled.inference_precision} "
                            f"(speed reference, not float32)")


def main() -> None:
    defaults = inspect.signature(resnet.extract_item_features).parameters
    default_mode = f"{defaults['engine'].default}:{defaults['precision'].default}"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--weights", default="random", help="imagenet, random or a weights file")
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"].default)
    other_fix = "enable" if quantization.resolve_overflow_fix() == "disable" else "disable"
    parser.add_argument("--modes", nargs="+", metavar="ENGINE:PRECISION[:OVERFLOW_FIX]",
                        default=[default_mode, f"openvino:int8:{other_fix}", "openvino:float32",
                                 "openvino:bf16", "tensorflow:float32", "tensorflow:bfloat16"])
    parser.add_argument("--calibration-images", type=int,
                        default=defaults["calibration_images"].default)
    parser.add_argument("--validation-images", type=int,
                        default=defaults["validation_images"].default)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    size = args.image_size
    print(f"{args.images} images of {size}x{size}, weights={args.weights}, "
          f"batch size {args.batch_size}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"CPU: VNNI {'yes' if quantization.has_vnni() else 'no'} (int8_overflow_fix auto = "
          f"{quantization.resolve_overflow_fix()}), native bf16 "
          f"{'yes' if quantization.native_bf16() else 'no'}")

    real_builder = resnet.build_extractor
    extractors, setup_seconds = {}, {}
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        sample = folder / "sample"
        sample.mkdir()
        count = args.calibration_images + args.validation_images
        pixels = np.stack([load_image(sample / name, size)
                           for name in write_images(sample, count, size, seed=1)])
        for mode in args.modes:
            engine, precision, overflow_fix = parse_mode(mode)
            start = time.perf_counter()
            if precision == "bf16":
                extractors[mode] = bf16_extractor(real_builder(args.weights, 0, size, "float32",
                                                               engine))
            else:
                extractors[mode] = real_builder(
                    args.weights, 0, size, precision, engine,
                    calibration=pixels[:args.calibration_images],
                    validation=pixels[args.calibration_images:], overflow_fix=overflow_fix)
            setup_seconds[mode] = time.perf_counter() - start
        model = ResNet50Features(args.weights, 0, size).model
        speeds = {name: [] for name in ["decode + predict", "predict only", *args.modes]}
        cpu_ms = {name: [] for name in speeds}
        names = write_images(folder, args.images, size, seed=0)
        items = pd.DataFrame({"item_id": np.arange(len(names)), "image": names})
        model.predict(np.zeros((2, size, size, 3), np.float32), verbose=0)
        features = {}
        for _ in range(args.rounds):
            start, cpu = time.perf_counter(), time.process_time()
            pixels = np.stack([load_image(folder / name, size) for name in names])
            decoded = time.perf_counter()
            inputs = keras_resnet50.preprocess_input(pixels.astype(np.float32))
            reference = model.predict(inputs, batch_size=32, verbose=0)
            finished = time.perf_counter()
            speeds["decode + predict"].append(args.images / (finished - start))
            speeds["predict only"].append(args.images / (finished - decoded))
            cpu_ms["decode + predict"].append((time.process_time() - cpu) / args.images * 1e3)
            for mode, extractor in extractors.items():
                engine, precision, _ = parse_mode(mode)
                precision = "float32" if precision == "bf16" else precision
                resnet.build_extractor = lambda *_, extractor=extractor, **__: extractor
                settings = dict(weights=args.weights, seed=0, image_size=size,
                                batch_size=args.batch_size, precision=precision, engine=engine)
                resnet.extract_item_features(items.head(args.batch_size), folder, **settings)
                start, cpu = time.perf_counter(), time.process_time()
                features[mode] = resnet.extract_item_features(items, folder, **settings)[0]
                speeds[mode].append(args.images / (time.perf_counter() - start))
                cpu_ms[mode].append((time.process_time() - cpu) / args.images * 1e3)
        resnet.build_extractor = real_builder

    print(f"images/s, best of {args.rounds} interleaved rounds [all rounds]; CPU ms per image "
          f"(all threads, lower is better; robust to other load); load average now "
          f"{os.getloadavg()[0]:.1f}")
    baseline = max(speeds["decode + predict"])
    for name in ["decode + predict", "predict only"]:
        cpu = f"  CPU {min(cpu_ms[name]):.0f} ms/img" if cpu_ms[name] else ""
        print(f"{'baseline fp32 model.predict, ' + name:46s} {max(speeds[name]):6.1f} "
              f"{[round(v, 1) for v in speeds[name]]}{cpu}")
    for index, mode in enumerate(args.modes):
        label = f"extractor {mode}" + (" (default mode)" if index == 0 else "")
        used = extractors[mode].description
        best = max(speeds[mode])
        print(f"{label:46s} {best:6.1f} {[round(v, 1) for v in speeds[mode]]}  "
              f"CPU {min(cpu_ms[mode]):.0f} ms/img  x{best / baseline:.2f}\n"
              f"{'':46s} ran {used}; one-off setup {setup_seconds[mode]:.1f} s\n"
              f"{'':46s} vs baseline: {compare(features[mode].features, reference)}")


if __name__ == "__main__":
    main()
