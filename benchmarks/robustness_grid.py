"""Seconds for the whole robustness grid (paper 4.3.2): every attack x 5 ε x 2 models.

Random VBPR-shaped models at Amazon Women's size (paper Table 1): 83,337 users, 299,555
items, ~620,000 training pairs, D = 2048 features, K = 64, 1,000 candidates per user.

    python benchmarks/robustness_grid.py                  # full size (~12 GB of memory)
    python benchmarks/robustness_grid.py --users 8000 --items 30000 --pairs 60000
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from collections import defaultdict

import numpy as np
import pandas as pd

from scale import add_scale_arguments, machine_line

from amr_pipeline.recsys.models import FactorModel
from amr_pipeline.recsys.robustness import ATTACKS, evaluate_attacks


class StageTimes(logging.Handler):
    """Collects the ``robustness <stage>: <seconds> s`` records of ``evaluate_attacks``."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seconds = defaultdict(float)

    def emit(self, record):
        if record.msg.startswith("robustness "):
            stage, seconds = record.args
            self.seconds[stage] += seconds


def random_setup(args):
    rng = np.random.default_rng(args.seed)
    popularity = 1.0 / np.arange(1, args.items + 1) ** 0.6
    items = rng.choice(args.items, size=args.pairs, p=popularity / popularity.sum())
    users = np.r_[np.arange(args.users), rng.integers(args.users, size=args.pairs - args.users)]
    train = pd.DataFrame({"user_id": users, "item_id": items}).drop_duplicates(ignore_index=True)
    features = np.empty((args.items, args.dims), np.float32)
    for start in range(0, args.items, 16384):
        features[start : start + 16384] = rng.random(
            (min(16384, args.items - start), args.dims), dtype=np.float32
        )
    candidates = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(args.users), args.candidates),
            "item_id": rng.integers(args.items, size=args.users * args.candidates),
            "is_test": np.tile(np.arange(args.candidates) == 0, args.users),
        }
    )
    return train, features, candidates


def random_model(args, seed):
    rng = np.random.default_rng(seed)
    k = args.factors
    return FactorModel(
        rng.normal(0, 0.3, (args.users, k)).astype(np.float32),
        rng.normal(0, 0.3, (args.items, k)).astype(np.float32),
        rng.normal(0, 0.3 / np.sqrt(args.dims), (args.dims, k)).astype(np.float32),
        feature_scale=1.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2, 0.5])
    parser.add_argument("--pgd-steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine_line())

    began = time.perf_counter()
    train, features, candidates = random_setup(args)
    print(f"data: {args.users:,} users, {args.items:,} items, {len(train):,} training pairs, "
          f"D={args.dims}, K={args.factors}, {len(candidates):,} candidate rows "
          f"({time.perf_counter() - began:.1f} s to generate)")
    handler = StageTimes()
    logger = logging.getLogger("amr_pipeline.recsys.robustness")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    total = time.perf_counter()
    for name, seed in (("vbpr", 1), ("amr", 2)):
        began = time.perf_counter()
        table, per_user = evaluate_attacks(
            random_model(args, seed), features, candidates, train, ATTACKS, args.epsilons,
            seed=args.seed, pgd_steps=args.pgd_steps,
        )
        print(f"{name}: {time.perf_counter() - began:.1f} s")
        largest = args.epsilons[-1]
        drops = table[table["epsilon"] == largest].set_index("attack")["ndcg_at_10_drop"]
        last = per_user[per_user["epsilon"] == largest]
        change = (last["rank"] - last["clean_rank"]).groupby(last["attack"]).mean()
        for attack in ATTACKS:
            print(f"  ε={largest:g} {attack:10s} NDCG@10 drop {drops[attack]:+7.1%}, "
                  f"mean rank change {change[attack]:+8.1f}")
    print(f"grid ({len(ATTACKS)} attacks x {len(args.epsilons)} ε x 2 models, "
          f"pgd {args.pgd_steps} steps): {time.perf_counter() - total:.1f} s")
    for stage, seconds in handler.seconds.items():
        print(f"  {stage:28s} {seconds:7.1f} s (both models)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
