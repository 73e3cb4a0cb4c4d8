"""Seconds per tuning setting: one compiled trainer reset across the grid (what the tuning
pipeline does) against a new ``train_bpr`` per setting, and validation scoring with the dense
user-block product against gathering each candidate's vector.

Default sizes are the demo's (3,226 users, 5,234 items, 4,254 training pairs, D = 2048, 2,321
validation users x 1,000 candidates); random data.

    python benchmarks/tuning_speed.py
    python benchmarks/tuning_speed.py --settings 8 --epochs 20
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import pandas as pd

from scale import add_scale_arguments, machine_line

from amr_pipeline.recsys import metrics, tuning
from amr_pipeline.recsys.data import sample_candidates
from amr_pipeline.recsys.models import FactorModel
from amr_pipeline.recsys.train import train_bpr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.set_defaults(users=3226, items=5234, pairs=4254)  # the demo's sizes
    parser.add_argument("--validation-users", type=int, default=2321)
    parser.add_argument("--settings", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--eval-every", type=int, default=5)
    arguments = parser.parse_args()
    print(machine_line())

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"user_id": rng.integers(0, arguments.users, arguments.pairs),
                          "item_id": rng.integers(0, arguments.items // 2, arguments.pairs)}
                         ).drop_duplicates(ignore_index=True)
    held_out = pd.DataFrame({"user_id": np.arange(arguments.validation_users),
                             "item_id": rng.integers(0, arguments.items,
                                                     arguments.validation_users)})
    candidates = sample_candidates(held_out, pd.concat([train, held_out]), arguments.items,
                                   n_negatives=arguments.candidates - 1, seed=1)
    features = rng.random((arguments.items, arguments.dims), dtype=np.float32)
    base = {"model": "vbpr", "n_factors": arguments.factors, "epochs": arguments.epochs,
            "eval_every": arguments.eval_every}
    grid = list(itertools.islice(itertools.product(tuning.PAPER_GRIDS["learning_rate"],
                                                   tuning.PAPER_GRIDS["regularization"]),
                                 arguments.settings))
    print(f"VBPR, {len(train):,} pairs, {arguments.items:,} items, D = {arguments.dims}, "
          f"{len(grid)} settings x {arguments.epochs} epochs, validation every "
          f"{arguments.eval_every} ({arguments.validation_users:,} users x "
          f"{arguments.candidates:,} candidates)")

    began = time.perf_counter()
    for rate, penalty in grid:
        train_bpr(train, arguments.users, arguments.items, features=features, progress=False,
                  validation_candidates=candidates,
                  params={**base, "learning_rate": rate, "regularization": penalty})
    fresh = (time.perf_counter() - began) / len(grid)

    began = time.perf_counter()
    tuner = tuning.BPRTuner(train, arguments.users, arguments.items, base, candidates, features)
    for rate, penalty in grid:
        tuner.evaluate({"learning_rate": rate, "regularization": penalty})
    reused = (time.perf_counter() - began) / len(grid)
    print(f"{'new train_bpr per setting (baseline)':45s} {fresh:7.2f} s per setting")
    print(f"{'one trainer reset across the grid (ours)':45s} {reused:7.2f} s per setting "
          f"({fresh / reused:.2f}x)")

    model = FactorModel(rng.standard_normal((arguments.users, arguments.factors)),
                        rng.standard_normal((arguments.items, arguments.factors)))
    grouped = metrics.grouped_candidates(candidates)
    timings = {}
    for dense in (False, True):
        began = time.perf_counter()
        for _ in range(5):
            ranks = metrics.rank_candidates(model, None, grouped, dense=dense)
        timings[dense] = ((time.perf_counter() - began) / 5, ranks)
    same = (timings[True][1]["rank"] == timings[False][1]["rank"]).mean()
    print(f"{'validation ranking, gathered vectors (baseline)':45s} {timings[False][0]:7.3f} s")
    print(f"{'validation ranking, dense user blocks (ours)':45s} {timings[True][0]:7.3f} s "
          f"({timings[False][0] / timings[True][0]:.2f}x; {same:.1%} of ranks identical)")


if __name__ == "__main__":
    main()
