"""Training memory and speed at Amazon Women scale: features in TensorFlow against out of core.

Writes random features once (299,555 items x D = 2048 float32 by default, 2.29 GiB) as the
parquet file and as the memory-mapped Arrow IPC file the catalog uses, and random training
pairs; then, each mode in a fresh process, loads the features as the catalog and the training
node do, builds the trainer, trains a warm-up epoch and ``--epochs`` timed ones per model, and
prints peak memory (resident, and its anonymous part, i.e. without the page cache of the mapped
file), load time, seconds per epoch and a digest of the final weights:

- ``tensorflow`` (the baseline, the trainer before): parquet loaded, the dense matrix built,
  copied into TensorFlow and gathered there batch by batch (``feature_gather: graph``);
- ``host``: parquet loaded, no dense copy; each group of batches' rows gathered on the host
  (``feature_gather: host``);
- ``memory_mapped``: the ``.arrow`` file mapped, each group's rows gathered from it (the
  catalog's default).

The digests must agree: every mode trains the same weights.

    python benchmarks/training_memory.py
    python benchmarks/training_memory.py --items 50000 --pairs 100000 --epochs 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scale import add_scale_arguments, machine_line

MODES = ("tensorflow", "host", "memory_mapped")


def _memory_status() -> dict[str, float]:
    """VmHWM (peak resident), RssAnon and RssFile of this process, in GiB."""
    status = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "RssAnon", "RssFile"):
            status[key] = int(value.split()[0]) / 1024**2
    return status


class _AnonymousPeak:
    """Samples RssAnon every 10 ms (the kernel keeps a peak only for the whole RSS)."""

    def __init__(self):
        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _memory_status()["RssAnon"])

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _memory_status()["RssAnon"])


def _child(arguments) -> None:
    """One mode in a fresh process; prints a JSON line of its figures."""
    sampler = _AnonymousPeak()
    from amr_pipeline.datasets.features import FeatureMatrixDataset
    from amr_pipeline.item_features import feature_matrix
    from amr_pipeline.recsys.train import BPRTrainer, TrainConfig

    work = Path(arguments.work)
    train = pd.read_parquet(work / "train.parquet")
    items = pd.DataFrame({"item_id": np.arange(arguments.items)})
    began = time.perf_counter()
    suffix = ".arrow" if arguments.mode == "memory_mapped" else ".parquet"
    features = feature_matrix(FeatureMatrixDataset(str(work / f"item_features{suffix}")).load(),
                              items)
    if arguments.mode == "tensorflow":
        features = np.asarray(features)  # the dense matrix the training node used to build
    load_seconds = time.perf_counter() - began
    gather = "graph" if arguments.mode == "tensorflow" else "host"
    figures = {"mode": arguments.mode, "load_seconds": load_seconds}
    digest = hashlib.sha256()
    for model in arguments.models:
        config = TrainConfig.from_params({
            "model": model, "n_factors": arguments.factors, "batch_size": 512,
            "feature_gather": gather, "feature_chunk_batches": arguments.chunk,
            **({"adversary": "gradient", "epsilon": 0.1} if model == "amr" else {}),
        })
        trainer = BPRTrainer(config, train, arguments.users, arguments.items, features)
        trainer.run_epoch(1)
        began, cpu = time.perf_counter(), time.process_time()
        for epoch in range(2, arguments.epochs + 2):
            trainer.run_epoch(epoch)
        figures[f"{model}_seconds"] = (time.perf_counter() - began) / arguments.epochs
        figures[f"{model}_cpu_seconds"] = (time.process_time() - cpu) / arguments.epochs
        for value in trainer.state().values():
            digest.update(value.tobytes())
        del trainer
    status = _memory_status()
    figures.update(peak_rss_gib=status["VmHWM"], peak_anonymous_gib=sampler.stop(),
                   weights=digest.hexdigest()[:16])
    print(json.dumps(figures))


def _prepare(arguments, work: Path) -> int:
    from amr_pipeline.datasets.features import FeatureMatrixDataset
    from amr_pipeline.item_features import ItemFeatures

    rng = np.random.default_rng(0)
    popularity = 1.0 / np.arange(1, arguments.items + 1) ** 0.6
    every = np.arange(min(arguments.users, arguments.pairs))
    pairs = pd.DataFrame({
        "user_id": np.r_[every, rng.integers(arguments.users, size=arguments.pairs - len(every))],
        "item_id": rng.choice(arguments.items, size=arguments.pairs,
                              p=popularity / popularity.sum()),
    }).drop_duplicates(ignore_index=True)
    pairs.to_parquet(work / "train.parquet")
    step = 16384
    starts = range(0, arguments.items, step)

    def chunks(seed):
        chunk_rng = np.random.default_rng(seed)  # the same values in both files
        for first in starts:
            ids = np.arange(first, min(first + step, arguments.items))
            yield ItemFeatures(ids, chunk_rng.random((len(ids), arguments.dims), np.float32))

    FeatureMatrixDataset(str(work / "item_features.arrow")).save(chunks(1))
    FeatureMatrixDataset(str(work / "item_features.parquet")).save(chunks(1))
    return len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_scale_arguments(parser)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after a warm-up one")
    parser.add_argument("--models", nargs="+", default=["vbpr", "amr"],
                        choices=["duif", "vbpr", "amr"])
    parser.add_argument("--chunk", type=int, default=16, help="feature_chunk_batches")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.mode:
        _child(arguments)
        return
    print(machine_line())
    work = Path(tempfile.mkdtemp(prefix="training_memory_"))
    try:
        pairs = _prepare(arguments, work)
        results = []
        for mode in MODES:
            command = [sys.executable, __file__, *sys.argv[1:], "--mode", mode,
                       "--work", str(work)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
        size = arguments.items * arguments.dims * 4 / 1024**3
        print(f"{arguments.users:,} users, {arguments.items:,} items x {arguments.dims} float32 "
              f"({size:.2f} GiB), {pairs:,} pairs, K={arguments.factors}, batch 512, "
              f"{arguments.chunk} batches per gathered group, {arguments.epochs} timed epochs")
        header = f"{'':<14} {'peak RSS':>9} {'anonymous':>10} {'load s':>7}"
        for model in arguments.models:
            header += f" {model + ' s/epoch':>13} {'(CPU s)':>8}"
        print(header + f" {'weights':>17}")
        baseline = results[0]
        for row in results:
            line = (f"{row['mode']:<14} {row['peak_rss_gib']:8.2f}G "
                    f"{row['peak_anonymous_gib']:9.2f}G {row['load_seconds']:7.1f}")
            for model in arguments.models:
                ratio = row[f"{model}_seconds"] / baseline[f"{model}_seconds"]
                line += (f" {row[f'{model}_seconds']:6.2f} {ratio:5.2f}x"
                         f" {row[f'{model}_cpu_seconds']:8.2f}")
            print(line + f" {row['weights']:>17}")
        same = len({row["weights"] for row in results}) == 1
        print(f"same weights in every mode: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
