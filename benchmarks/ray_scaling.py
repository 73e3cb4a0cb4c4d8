"""Scaling out: Ray feature extraction against the local path.

``extraction``: writes ``--images`` synthetic 224 x 224 JPEGs, builds the int8 network once
(stored in a feature cache, as a pipeline run does) and times, on the same images:

- the local path (``extract_item_features``, the pipeline's ``features.executor: local``);
- Ray Data with 1 and 2 workers (``features.executor: ray``: decode tasks, an actor pool
  running the stored network, one Parquet part per item-id range), Ray started in-process.

It prints images/s side by side and checks that every mode's features equal the local ones
bit for bit. Ray listens on every interface, so run it in a private network namespace::

    unshare -n sh -c 'ip link set lo up && python benchmarks/ray_scaling.py extraction'

The memory and speed of training with the memory-mapped features are measured by
``benchmarks/training_memory.py``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import machine_line  # noqa: E402


# --------------------------------------------------------------------------- extraction


def extraction(arguments) -> None:
    import ray

    from feature_extraction import write_images

    from amr_pipeline.datasets.features import FeaturePartsDataset
    from amr_pipeline.pipelines.features import ray_nodes
    from amr_pipeline.vision.feature_cache import FeatureCache
    from amr_pipeline.vision.images import ImageFolder
    from amr_pipeline.vision.resnet import extract_item_features

    work = Path(tempfile.mkdtemp(prefix="ray_scaling_"))
    try:
        (work / "images").mkdir()
        names = write_images(work / "images", arguments.images, 224, seed=1)
        items = pd.DataFrame({"item_id": np.arange(len(names)), "image": names})
        images = ImageFolder(work / "images")
        parameters = {"weights": "random", "seed": 7, "image_size": 224,
                      "batch_size": arguments.batch_size, "precision": arguments.precision,
                      "engine": "openvino", "calibration_images": 128, "validation_images": 32,
                      "min_cosine": 0.999, "audit_every": 32, "on_missing_image": "fail",
                      "int8_overflow_fix": "auto", "executor": "ray"}
        ray.init(num_cpus=arguments.cpus, include_dashboard=False)
        start = time.perf_counter()
        network = ray_nodes.prepare_feature_network(items, images, FeatureCache(work / "cache"),
                                                    parameters)
        print(f"network built, checked and stored once: {time.perf_counter() - start:.1f} s "
              f"({network['description']})")

        rows = {}
        for round_number in range(arguments.rounds):
            # the local path reuses the stored network, in a fresh cache of its own each round
            local_cache = work / f"local_cache_{round_number}"
            shutil.copytree(work / "cache" / "models", local_cache / "models")
            local = extract_item_features(
                items, images, FeatureCache(local_cache),
                **{key: parameters[key] for key in (
                    "weights", "seed", "image_size", "batch_size", "precision", "engine",
                    "calibration_images", "validation_images", "min_cosine", "audit_every",
                    "int8_overflow_fix")})
            reference = local.features.features
            rows.setdefault("local (this process)", []).append(
                (local.summary["images_per_second"], True))
            for workers in (1, 2):
                # actors and decode tasks must fit: 1 x 1.5 or 2 x 0.75 CPUs, decode 0.5
                cpus = (arguments.cpus - 0.5) / workers
                settings = {"workers": workers, "cpus_per_worker": cpus, "decode_cpus": 0.5,
                            "part_size": arguments.part_size}
                store = FeaturePartsDataset(
                    path=str(work / f"parts_{workers}_{round_number}"),
                    dataset="amr_pipeline.datasets.features.FeaturePartDataset",
                    filename_suffix=".parquet")
                run = {**parameters, "ray": settings}
                started = time.perf_counter()
                parts, plan = ray_nodes.extract_feature_parts(items, images, network, {}, run)
                store.save(parts)
                wall = time.perf_counter() - started
                chunks, metrics = ray_nodes.build_item_features_from_parts(
                    items, images, None, store.load(), plan, network, run)
                features = np.concatenate([chunk.features for chunk in chunks])
                label = f"Ray Data, {workers} worker{'s' if workers > 1 else ''} x {cpus:g} CPU"
                rows.setdefault(label, []).append(
                    (len(items) / wall, bool(np.array_equal(features, reference))))
        print(f"\n{len(items)} images at 224 px, {arguments.precision}, batch "
              f"{arguments.batch_size}, {arguments.cpus} CPUs, best of {arguments.rounds} rounds "
              "(Ray: wall time of the whole extraction, actor start-up included)")
        baseline = max(speed for speed, _ in rows["local (this process)"])
        print(f"{'mode':<34} {'images/s':>9} {'vs local':>9}  features equal local")
        for label, results in rows.items():
            best = max(speed for speed, _ in results)
            equal = all(same for _, same in results)
            verdict = "bit for bit" if equal else "NO"
            print(f"{label:<34} {best:9.1f} {best / baseline:8.2f}x  {verdict}"
                  f"   (rounds: {', '.join(f'{speed:.1f}' for speed, _ in results)})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("extraction")
    run.add_argument("--images", type=int, default=256)
    run.add_argument("--batch-size", type=int, default=8)
    run.add_argument("--precision", default="int8", choices=["int8", "float32"])
    run.add_argument("--part-size", type=int, default=64)
    run.add_argument("--cpus", type=int, default=2)
    run.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()
    print(machine_line())
    {"extraction": extraction}[arguments.command](arguments)


if __name__ == "__main__":
    main()
