"""Top-N for every user at Amazon Women scale against the obvious baseline, in one run.

Random data of the paper's Amazon Women size (83,337 users x 299,555 items, K = 64; item
vectors ``q_i + E c_i`` precomputed, as the recommend pipeline stores them), no seen items:

- :func:`amr_pipeline.recsys.recommend.top_n` for **all** users (blocks of users, scored one
  cache-sized tile of items at a time; each tile keeps only the items above a per-user
  threshold, then an exact sort of those candidates), with one worker (BLAS threads as they
  are) and with ``--workers`` threads (default: all cores; BLAS at one thread), checked to
  give the same arrays bit for bit;
- the products alone, the same tiles without the selection, timed on ``--product-users``
  users and extrapolated to all of them: the floor under top_n;
- the baseline: per user, the full product ``p_u · V`` and ``np.argsort`` of the catalogue,
  timed on ``--baseline-users`` users and extrapolated to all of them.

The baseline's lists are checked against top_n's for the sampled users.

    python benchmarks/recommend_speed.py
    python benchmarks/recommend_speed.py --users 20000 --items 100000
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from scale import add_scale_arguments, machine_line

from amr_pipeline.recsys import recommend
from amr_pipeline.recsys.recommend import default_workers, top_n


def products_alone(users: np.ndarray, items: np.ndarray) -> float:
    """Seconds for the score products of ``users`` in top_n's blocks and tiles, no selection."""
    vectors_t = np.ascontiguousarray(items.T)
    rows = recommend.ROWS
    width = min(len(items), recommend.TILE_SCORES // rows)
    tiles = -(-len(items) // width)
    bounds = [tile * len(items) // tiles for tile in range(tiles + 1)]
    scores = np.empty(rows * width, np.float32)
    start = time.perf_counter()
    for first in range(0, len(users), rows):
        block = users[first:first + rows]
        for low, high in zip(bounds, bounds[1:]):
            np.matmul(block, vectors_t[:, low:high],
                      out=scores[:len(block) * (high - low)].reshape(len(block), high - low))
    return time.perf_counter() - start


def count(workers: int) -> str:
    return f"{workers} worker{'s' if workers > 1 else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)  # Amazon Women: 83,337 users, 299,555 items, K = 64
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--baseline-users", type=int, default=200)
    parser.add_argument("--product-users", type=int, default=8960)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="top_n's threads for the second all-users run (default: all cores)")
    arguments = parser.parse_args()
    print(machine_line())
    rng = np.random.default_rng(arguments.seed)
    users = rng.standard_normal((arguments.users, arguments.factors), np.float32)
    items = rng.standard_normal((arguments.items, arguments.factors), np.float32)
    print(f"{arguments.users:,} users x {arguments.items:,} items, K = {arguments.factors}, "
          f"top {arguments.top_k}; {os.cpu_count()} CPUs")

    timings = {}
    for workers in dict.fromkeys((1, arguments.workers)):
        start = time.perf_counter()
        result = top_n(users, items, arguments.top_k, workers=workers)
        timings[workers] = time.perf_counter() - start
        print(f"top_n, all users, {count(workers)}: {timings[workers]:,.1f} s "
              f"({1e6 * timings[workers] / arguments.users:,.0f} us per user)")
        if workers == 1:
            single = result
    if arguments.workers != 1:
        identical = all(a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))
                        for a, b in zip(single, result))
        print(f"1 and {count(arguments.workers)}: {'identical' if identical else 'DIFFERENT'} "
              "arrays (user, rank, item, score bits)")

    sampled = users[:min(arguments.product_users, arguments.users)]
    per_user = products_alone(sampled, items) / len(sampled)
    print(f"products alone, {len(sampled):,} users: {1e6 * per_user:,.0f} us per user, "
          f"{per_user * arguments.users:,.1f} s extrapolated to all users")

    sample = rng.choice(arguments.users, arguments.baseline_users, replace=False)
    start = time.perf_counter()
    lists = []
    for user in sample:
        scores = items @ users[user]
        lists.append(np.argsort(-scores, kind="stable")[:arguments.top_k])
    per_user = (time.perf_counter() - start) / len(sample)
    baseline = per_user * arguments.users
    print(f"baseline (product + argsort per user), {len(sample)} users: "
          f"{1e6 * per_user:,.0f} us per user, {baseline:,.1f} s extrapolated to all users")
    print("speed-up: " + ", ".join(f"{baseline / seconds:,.1f}x ({count(workers)})"
                                   for workers, seconds in reversed(timings.items())))
    got = result.item.reshape(arguments.users, -1)[sample]
    agree = np.mean([np.array_equal(a, b) for a, b in zip(got, lists)])
    print(f"identical top-{arguments.top_k} lists on the sampled users: {agree:.1%}")


if __name__ == "__main__":
    main()
