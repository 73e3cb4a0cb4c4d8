"""Scaling out: Ray feature extraction against the local path, and the memory of the features.

``extraction``: writes ``--images`` synthetic 224 x 224 JPEGs, builds the int8 network once
(stored in a feature cache, as a pipeline run does) and times, on the same images:

- the local path (``extract_item_features``, the pipeline's ``features.executor: local``);
- Ray Data with 1 and 2 workers (``features.executor: ray``: decode tasks, an actor pool
  running the stored network, one Parquet part per item-id range), Ray started in-process.

It prints images/s side by side and checks that every mode's features equal the local ones
bit for bit. Ray listens on every interface, so run it in a private network namespace::

    unshare -n sh -c 'ip link set lo up && python benchmarks/ray_scaling.py extraction'

``memory``: at Amazon Women scale (299,555 items x D = 2048, 620,000 training pairs) writes
random features once as today's parquet and as the memory-mapped Arrow IPC file, then, each in
a fresh process, measures peak memory (resident, and its anonymous part, i.e. not the page
cache of the mapped file) and seconds per epoch of gathering every batch's feature rows:

- ``in_memory``: today: parquet loaded, the dense matrix built, copied into TensorFlow, each
  batch gathered there;
- ``memory_mapped``: the Arrow file mapped, one chunk of rows gathered on the host per group of
  batches (the rows its positives and negatives touch), only that chunk given to TensorFlow.

    python benchmarks/ray_scaling.py memory
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import add_scale_arguments  # noqa: E402


# --------------------------------------------------------------------------- extraction


def extraction(arguments) -> None:
    import ray

    from feature_extraction import write_images

    from amr_pipeline.datasets.features import FeaturePartsDataset
    from amr_pipeline.pipelines.features import ray_nodes
    from amr_pipeline.vision.resnet import FeatureCache, ImageFolder, extract_item_features

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


def _memory_status() -> dict[str, float]:
    status = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "RssAnon", "RssFile"):
            status[key] = int(value.split()[0]) / 1024**2
    return status


def _memory_child(arguments) -> None:
    """One mode in a fresh process; prints a JSON line of its figures."""
    import tensorflow as tf

    from amr_pipeline.datasets.features import FeatureMatrixDataset
    from amr_pipeline.recsys.sampling import NegativeSampler, epoch_rng

    work = Path(arguments.work)
    train = pd.read_parquet(work / "train.parquet")
    users = train["user_id"].to_numpy(np.int64)
    positives = train["item_id"].to_numpy(np.int64)
    sampler = NegativeSampler(users, positives, arguments.items)
    negatives = sampler.negatives(users, epoch_rng(0, 1))
    order = np.random.default_rng(1).permutation(len(users))
    batch, group = 512, arguments.group
    peak_anonymous = 0.0
    checksum = 0.0
    start = time.perf_counter()
    if arguments.mode == "in_memory":
        loaded = FeatureMatrixDataset(str(work / "item_features.parquet")).load()
        matrix = np.zeros((arguments.items, loaded.features.shape[1]), np.float32)
        matrix[loaded.item_ids] = loaded.features
        del loaded
        table = tf.constant(matrix)
        load_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for first in range(0, len(order), batch):
            rows = order[first:first + batch]
            gathered = tf.gather(table, np.r_[positives[rows], negatives[rows]])
            checksum += float(tf.reduce_sum(gathered[:, 0]))
        peak_anonymous = max(peak_anonymous, _memory_status()["RssAnon"])
    else:
        loaded = FeatureMatrixDataset(str(work / "item_features.arrow")).load()
        features = loaded.features
        load_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for first in range(0, len(order), batch * group):
            rows = order[first:first + batch * group]
            touched, local = np.unique(np.r_[positives[rows], negatives[rows]],
                                       return_inverse=True)
            chunk = tf.constant(features.take(touched))      # this group's rows only
            local = local.reshape(2, -1)
            for offset in range(0, len(rows), batch):
                indices = np.r_[local[0, offset:offset + batch], local[1, offset:offset + batch]]
                gathered = tf.gather(chunk, indices)
                checksum += float(tf.reduce_sum(gathered[:, 0]))
            peak_anonymous = max(peak_anonymous, _memory_status()["RssAnon"])
    epoch = time.perf_counter() - start
    status = _memory_status()
    print(json.dumps({"mode": arguments.mode, "load_seconds": load_seconds,
                      "epoch_gather_seconds": epoch, "peak_rss_gib": status["VmHWM"],
                      "peak_anonymous_gib": peak_anonymous,
                      "rss_file_gib": status["RssFile"], "checksum": checksum}))


def memory(arguments) -> None:
    from amr_pipeline.datasets.features import FeatureMatrixDataset
    from amr_pipeline.readers.features import ItemFeatures

    work = Path(tempfile.mkdtemp(prefix="feature_memory_"))
    try:
        rng = np.random.default_rng(0)
        popularity = 1.0 / np.arange(1, arguments.items + 1) ** 0.6
        pairs = pd.DataFrame({
            "user_id": rng.integers(arguments.users, size=arguments.pairs),
            "item_id": rng.choice(arguments.items, size=arguments.pairs,
                                  p=popularity / popularity.sum()),
        }).drop_duplicates(ignore_index=True)
        pairs.to_parquet(work / "train.parquet")
        step = 16384

        def chunks():
            for first in range(0, arguments.items, step):
                ids = np.arange(first, min(first + step, arguments.items))
                yield ItemFeatures(ids, rng.random((len(ids), arguments.dims), np.float32))

        FeatureMatrixDataset(str(work / "item_features.arrow")).save(chunks())
        mapped = FeatureMatrixDataset(str(work / "item_features.arrow")).load()
        FeatureMatrixDataset(str(work / "item_features.parquet")).save(
            ItemFeatures(mapped.item_ids[s:s + step], mapped.features.take(
                np.arange(s, min(s + step, arguments.items))))
            for s in range(0, arguments.items, step))
        del mapped
        results = []
        for mode in ("in_memory", "memory_mapped"):
            command = [sys.executable, __file__, "memory-child", "--mode", mode, "--work",
                       str(work), "--items", str(arguments.items), "--group",
                       str(arguments.group)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
        print(f"\n{arguments.items:,} items x {arguments.dims} float32 "
              f"({arguments.items * arguments.dims * 4 / 1024**3:.2f} GiB), {len(pairs):,} pairs, "
              f"batch 512, {arguments.group} batches per gathered chunk")
        print(f"{'':<16} {'peak RSS':>9} {'anonymous':>10} {'load s':>7} {'epoch gather s':>15}")
        for row in results:
            print(f"{row['mode']:<16} {row['peak_rss_gib']:8.2f}G "
                  f"{row['peak_anonymous_gib']:9.2f}G "
                  f"{row['load_seconds']:7.1f} {row['epoch_gather_seconds']:15.1f}")
        same = abs(results[0]["checksum"] - results[1]["checksum"]) <= 1e-6 * abs(
            results[0]["checksum"])
        print(f"same rows gathered: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
    run = commands.add_parser("memory")
    add_scale_arguments(run)
    run.add_argument("--group", type=int, default=64)
    run = commands.add_parser("memory-child")
    run.add_argument("--mode", required=True)
    run.add_argument("--work", required=True)
    run.add_argument("--items", type=int, required=True)
    run.add_argument("--group", type=int, default=64)
    arguments = parser.parse_args()
    {"extraction": extraction, "memory": memory, "memory-child": _memory_child}[
        arguments.command](arguments)


if __name__ == "__main__":
    main()
