"""Seconds per training epoch of MF-BPR, VBPR and AMR on random data, each against the
arithmetic floor measured in the same run, and scoring time.

Default sizes are Amazon Women's (paper Table 1): 83,337 users, 299,555 items, ~620,000
training pairs, D = 2048 ResNet-50 features, K = 64, batch 512. The models' epochs are
interleaved over ``--rounds`` rounds (one epoch each per round, after an untimed warm-up epoch
that also traces the graph), and each round also times an fp32 matmul and a memory copy, so
drift on a shared machine hits every figure alike; medians and ranges are printed.

The floor of a visual model's epoch is the larger of

* FLOP: per batch, ``E c_i`` for the batch's distinct items (2 x distinct x D x K FLOP) and
  the gradient of ``E`` (as much again); AMR adds the Gram matrix ``E Eᵀ`` and its gradient
  (2 x 2 x K² x D) and K-sized work per item (its Δ lives in K-space, so no D-sized term),
  all over the fp32 rate of a 2048-square matmul (the faster of NumPy and TensorFlow);
* bytes: the feature rows gathered (read and written once), the sparse Adagrad rows (var,
  accumulator and gradient read, var and accumulator written) and the dense Adagrad of ``E``,
  over the bandwidth of a 256 MiB ``np.copyto`` (bytes read plus written per second).

The distinct items per batch are counted from the sampler's batches of the timed epochs.
Comparison with Cornac on identical data is ``benchmarks/peers.py``.

    python benchmarks/training_speed.py                 # full size (needs ~8 GB of memory)
    python benchmarks/training_speed.py --users 3000 --items 5000 --pairs 60000
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

import numpy as np
import pandas as pd

from scale import add_scale_arguments, machine_line

from amr_pipeline.recsys.metrics import rank_candidates
from amr_pipeline.recsys.train import BPRTrainer, TrainConfig

def random_data(n_users, n_items, n_pairs, dims, seed):
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.6
    items = rng.choice(n_items, size=n_pairs, p=popularity / popularity.sum())
    every = np.arange(min(n_users, n_pairs))
    users = np.concatenate([every, rng.integers(n_users, size=n_pairs - len(every))])
    train = pd.DataFrame({"user_id": users, "item_id": items}).drop_duplicates(ignore_index=True)
    features = rng.random((n_items, dims), dtype=np.float32)
    return train, features


def distinct_per_batch(trainer, epochs, batch_size):
    """Distinct items of every batch of ``epochs`` (the sampler's own batches)."""
    counts = []
    for epoch in epochs:
        _, positives, negatives = trainer.sampler.epoch(trainer.config.seed, epoch)
        for start in range(0, len(positives), batch_size):
            stop = start + batch_size
            counts.append(len(np.unique(np.concatenate([positives[start:stop],
                                                         negatives[start:stop]]))))
    return np.array(counts, np.int64)


def matmul_flops(size=2048, repeats=5):
    """fp32 FLOP per second of a ``size``-square matmul, best of ``repeats``, for NumPy and
    TensorFlow; and ``"cpu"``: FLOP per CPU second of the faster one's best repeat (what a
    share of a loaded machine does not change)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    ta, tb = tf.constant(a), tf.constant(b)
    tf.matmul(ta, tb).numpy()
    np.matmul(a, b)
    best = {}
    for name, call in (("numpy", lambda: np.matmul(a, b)),
                       ("tensorflow", lambda: tf.matmul(ta, tb).numpy())):
        times = []
        for _ in range(repeats):
            began, began_cpu = time.perf_counter(), time.process_time()
            call()
            times.append((time.perf_counter() - began, time.process_time() - began_cpu))
        wall, cpu = min(times)
        best[name] = 2 * size**3 / wall
        best[name + " cpu"] = 2 * size**3 / max(cpu, 1e-9)
    faster = max(("numpy", "tensorflow"), key=best.get)
    best["cpu"] = best[faster + " cpu"]
    return best


def copy_bandwidth(mib=256, repeats=5):
    """Bytes read plus written per second by ``np.copyto`` of ``mib`` MiB: best of ``repeats``."""
    source = np.ones(mib * 2**20 // 4, np.float32)
    target = np.empty_like(source)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - began)
    return 2 * source.nbytes / min(times)


def floor_terms(model, distinct, users_per_batch, dims, factors):
    """(FLOP, bytes) of one epoch of ``model`` whose batches touch ``distinct`` items each."""
    items = int(distinct.sum())
    batches = len(distinct)
    flop = 4.0 * items * dims * factors  # E c_i forward and the gradient of E
    if model == "amr":
        flop += batches * 4.0 * factors**2 * dims  # E Eᵀ and its gradient
        flop += 6.0 * items * factors**2  # K-space Δ: a (E Eᵀ), norms, weights (E Eᵀ)
    moved = 2.0 * items * dims * 4  # feature rows gathered: read and written
    moved += 5.0 * (items + users_per_batch * batches) * factors * 4  # sparse Adagrad rows
    moved += 5.0 * batches * factors * dims * 4  # dense Adagrad of E
    return flop, moved


def spread(values):
    values = np.asarray(values, float)
    return f"{np.median(values):.2f} [{values.min():.2f}-{values.max():.2f}]"


def scoring_seconds(n_users, n_items, n_candidates, factors, seed):
    from amr_pipeline.recsys.models import FactorModel

    rng = np.random.default_rng(seed)
    model = FactorModel(
        rng.standard_normal((n_users, factors), dtype=np.float32),
        rng.standard_normal((n_items, factors), dtype=np.float32),
    )
    candidates = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(n_users), n_candidates),
            "item_id": rng.integers(n_items, size=n_users * n_candidates),
            "is_test": np.tile(np.arange(n_candidates) == 0, n_users),
        }
    )
    began = time.perf_counter()
    rank_candidates(model, None, candidates)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds: one timed epoch of each model per round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine_line())

    train, features = random_data(args.users, args.items, args.pairs, args.dims, args.seed)
    print(f"data: {args.users:,} users, {args.items:,} items, {len(train):,} training pairs, "
          f"D={args.dims}, K={args.factors}, batch {args.batch_size}; {args.rounds} rounds")
    common = {"n_factors": args.factors, "batch_size": args.batch_size, "seed": args.seed}
    trainers = {}
    for name, extra in (
        ("mf_bpr", {"model": "mf_bpr"}),
        ("vbpr", {"model": "vbpr"}),
        ("amr", {"model": "amr", "adversary": "gradient", "epsilon": 0.1}),
    ):
        config = TrainConfig.from_params({**common, **extra})
        trainers[name] = BPRTrainer(config, train, args.users, args.items, features)
        trainers[name].run_epoch(1)  # warm-up: traces the graph
    wall = {name: [] for name in trainers}
    cpu = {name: [] for name in trainers}
    flops, cpu_flops, bandwidth = [], [], []
    for round_ in range(args.rounds):
        for name, trainer in trainers.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            trainer.run_epoch(2 + round_)
            wall[name].append(time.perf_counter() - began)
            cpu[name].append(time.process_time() - began_cpu)
        rates = matmul_flops()
        flops.append(max(rates["numpy"], rates["tensorflow"]))
        cpu_flops.append(rates["cpu"])
        bandwidth.append(copy_bandwidth())
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {wall[n][-1]:.2f} s" for n in wall)
              + f"; matmul {rates['numpy'] / 1e9:.0f} GFLOP/s (NumPy), "
              f"{rates['tensorflow'] / 1e9:.0f} (TensorFlow), {rates['cpu'] / 1e9:.0f} per CPU s; copy {bandwidth[-1] / 1e9:.1f} GB/s")
    distinct = distinct_per_batch(trainers["vbpr"], range(2, 2 + args.rounds), args.batch_size)
    rate, bytes_rate = float(np.median(flops)), float(np.median(bandwidth))
    print(f"fp32 matmul (2048 square, best per round): {spread(np.array(flops) / 1e9)} GFLOP/s; "
          f"copy: {spread(np.array(bandwidth) / 1e9)} GB/s (read + written)")
    cpu_rate = float(np.median(cpu_flops))
    print(f"fp32 matmul per CPU second: {spread(np.array(cpu_flops) / 1e9)} GFLOP")
    print(f"distinct items per batch: mean {distinct.mean():.0f} "
          f"[{distinct.min()}-{distinct.max()}] of {2 * args.batch_size} occurrences")
    print(f"{'model':7s} {'s/epoch [range]':>20s} {'CPU s/epoch':>20s} {'FLOP floor':>11s} "
          f"{'byte floor':>11s} {'x floor':>8s} {'CPU x FLOP floor':>17s}")
    for name in trainers:
        line = f"{name:7s} {spread(wall[name]):>20s} {spread(cpu[name]):>20s}"
        if name != "mf_bpr":
            flop, moved = (total / args.rounds for total in floor_terms(
                name, distinct, args.batch_size, args.dims, args.factors))
            floor = max(flop / rate, moved / bytes_rate)
            line += (f" {flop / rate:9.3f} s {moved / bytes_rate:9.3f} s "
                     f"{np.median(wall[name]) / floor:7.2f}x "
                     f"{np.median(cpu[name]) / (flop / cpu_rate):16.2f}x")
        print(line)
    print(f"AMR / VBPR epoch time: {np.median(wall['amr']) / np.median(wall['vbpr']):.2f} wall, "
          f"{np.median(cpu['amr']) / np.median(cpu['vbpr']):.2f} CPU")
    del trainers, features
    gc.collect()

    seconds = scoring_seconds(args.users, args.items, args.candidates, args.factors, args.seed)
    print(f"scoring {args.users:,} users x {args.candidates:,} candidates: {seconds:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
