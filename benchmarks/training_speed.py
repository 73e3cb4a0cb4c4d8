"""Seconds per training epoch of MF-BPR, VBPR and AMR on random data, and scoring time.

Default sizes are Amazon Women's (paper Table 1): 83,337 users, 299,555 items, ~620,000
training pairs, D = 2048 ResNet-50 features, K = 64, batch 512. Also times AMR at the size on
which Cornac 3.0.1's AMR needs 74 s per epoch (3,000 users, 5,000 items, 60,000 pairs).

    python benchmarks/training_speed.py                 # full size (needs ~8 GB of memory)
    python benchmarks/training_speed.py --users 5000 --items 20000 --pairs 40000
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import time

import numpy as np
import pandas as pd

from scale import add_scale_arguments, machine_line

from amr_pipeline.recsys.metrics import rank_candidates
from amr_pipeline.recsys.train import BPRTrainer, TrainConfig

CORNAC_SECONDS = 74.0


def random_data(n_users, n_items, n_pairs, dims, seed):
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.6
    items = rng.choice(n_items, size=n_pairs, p=popularity / popularity.sum())
    every = np.arange(min(n_users, n_pairs))
    users = np.concatenate([every, rng.integers(n_users, size=n_pairs - len(every))])
    train = pd.DataFrame({"user_id": users, "item_id": items}).drop_duplicates(ignore_index=True)
    features = rng.random((n_items, dims), dtype=np.float32)
    return train, features


def epoch_seconds(config, train, n_users, n_items, features, epochs):
    """Wall and CPU seconds per epoch, after a first epoch that also traces the graph."""
    trainer = BPRTrainer(config, train, n_users, n_items, features)
    trainer.run_epoch(1)
    wall, cpu = time.perf_counter(), time.process_time()
    for epoch in range(2, epochs + 2):
        trainer.run_epoch(epoch)
    seconds = (time.perf_counter() - wall) / epochs, (time.process_time() - cpu) / epochs
    del trainer
    gc.collect()
    return seconds


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
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after a warm-up one")
    parser.add_argument("--skip-cornac", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine_line())

    train, features = random_data(args.users, args.items, args.pairs, args.dims, args.seed)
    print(f"load average before start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"data: {args.users:,} users, {args.items:,} items, {len(train):,} training pairs, "
          f"D={args.dims}, K={args.factors}, batch {args.batch_size}")
    common = {"n_factors": args.factors, "batch_size": args.batch_size, "seed": args.seed}
    timings, cpu_timings = {}, {}
    for name, extra in (
        ("mf_bpr", {"model": "mf_bpr"}),
        ("vbpr", {"model": "vbpr"}),
        ("amr", {"model": "amr", "adversary": "gradient", "epsilon": 0.1}),
    ):
        config = TrainConfig.from_params({**common, **extra})
        timings[name], cpu_timings[name] = epoch_seconds(
            config, train, args.users, args.items, features, args.epochs
        )
        print(f"{name:7s} {timings[name]:7.2f} s/epoch  ({cpu_timings[name]:.2f} CPU s/epoch)")
    print(f"AMR / VBPR epoch time: {timings['amr'] / timings['vbpr']:.2f} wall, "
          f"{cpu_timings['amr'] / cpu_timings['vbpr']:.2f} CPU")
    del features

    if not args.skip_cornac:
        small, small_features = random_data(3_000, 5_000, 60_000, args.dims, args.seed)
        config = TrainConfig.from_params({**common, "model": "amr"})
        seconds, _ = epoch_seconds(config, small, 3_000, 5_000, small_features, args.epochs)
        print(f"AMR at Cornac size (3,000 x 5,000, {len(small):,} pairs, D={args.dims}): "
              f"{seconds:.2f} s/epoch vs Cornac 3.0.1 {CORNAC_SECONDS:.0f} s "
              f"({CORNAC_SECONDS / seconds:.0f}x faster)")

    seconds = scoring_seconds(args.users, args.items, args.candidates, args.factors, args.seed)
    print(f"scoring {args.users:,} users x {args.candidates:,} candidates: {seconds:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
