"""Seconds per epoch of Cornac 3.0.1's VBPR and AMR against ours, on identical data, interleaved.

Cornac's AMR is not the paper's AMR: it trains with Adam, and its Δ is the raw gradient of the
log-likelihood with respect to the feature rows (no ε, no normalisation to ``ε Γ / ||Γ||``),
computed through a dense gradient of the whole feature matrix. Its VBPR adds item and visual
biases and keeps separate user vectors for ``q_i`` (k) and ``E c_i`` (k2; both set to K here).
The comparison is therefore of speed only, never of accuracy.

Both get the same training pairs and the same random features (default: 3,000 users x 20
items = 60,000 pairs over 5,000 items, D = 2048, K = 64, batch 512). Ours is
:class:`~amr_pipeline.recsys.train.BPRTrainer` (a warm-up epoch traces the graph, then one
timed epoch per round); Cornac is one ``fit`` with ``n_epochs=1`` per round (its set-up, also
timed alone with ``n_epochs=0`` in the same child after an untimed warm-up fit, is included
and printed). Every round runs every contestant
once, so drift on a shared machine hits all alike; medians and ranges are printed. Each Cornac
fit runs in a child process that never imports TensorFlow (PyTorch's Triton crashes on import
in a process that has loaded TensorFlow); only the fit is timed, not the child's start. PyTorch's
thread count is pinned with ``torch.set_num_threads`` and both settings are run: 1 thread and
PyTorch's default. TensorFlow (ours) keeps its default.

Cornac and PyTorch are not dependencies of the project: ``pip install -e ".[peers]"``.

    python benchmarks/peers.py
    python benchmarks/peers.py --rounds 5 --users 1000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scale import machine_line

CORNAC_VERSION = "3.0.1"


def identical_data(n_users, per_user, n_items, dims, seed):
    """``per_user`` distinct items for every user (popularity-skewed) and random features."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.6
    popularity /= popularity.sum()
    items = np.stack([rng.choice(n_items, size=per_user, replace=False, p=popularity)
                      for _ in range(n_users)])
    train = pd.DataFrame({"user_id": np.repeat(np.arange(n_users), per_user),
                          "item_id": items.ravel()})
    features = rng.random((n_items, dims), dtype=np.float32)
    return train, features


def cornac_dataset(train, features, seed):
    """The same pairs as a Cornac ``Dataset`` with the features as its ``ImageModality``."""
    from cornac.data import Dataset, ImageModality

    triples = list(zip(train["user_id"].astype(str), train["item_id"].astype(str),
                       np.ones(len(train)), strict=True))
    dataset = Dataset.from_uir(triples, seed=seed)
    image = ImageModality(features=features, ids=[str(i) for i in range(len(features))])
    image.build(id_map=dataset.iid_map)
    dataset.add_modalities(item_image=image)
    return dataset


def cornac_model(name, epochs, args):
    import cornac

    common = {"n_epochs": epochs, "batch_size": args.batch_size, "learning_rate": 0.001,
              "verbose": False, "seed": args.seed}
    if name == "vbpr":
        return cornac.models.VBPR(k=args.factors, k2=args.factors, **common)
    return cornac.models.AMR(k=args.factors, **common)


def cornac_seconds(name, dataset, epochs, args):
    model = cornac_model(name, epochs, args)
    with contextlib.redirect_stdout(io.StringIO()):  # "Optimization finished!"
        began, began_cpu = time.perf_counter(), time.process_time()
        model.fit(dataset)
        return time.perf_counter() - began, time.process_time() - began_cpu


def cornac_worker(args) -> None:
    """Child process: an untimed warm-up fit with ``n_epochs=0`` (PyTorch's lazy start-up),
    then a timed one (Cornac's set-up) and a timed 1-epoch fit; prints seconds as JSON."""
    import torch

    torch.set_num_threads(args.threads)
    saved = np.load(args.worker)
    train = pd.DataFrame({"user_id": saved["users"], "item_id": saved["items"]})
    dataset = cornac_dataset(train, saved["features"], args.seed)
    cornac_seconds(args.model, dataset, 0, args)
    setup, _ = cornac_seconds(args.model, dataset, 0, args)
    seconds, cpu = cornac_seconds(args.model, dataset, 1, args)
    print(json.dumps({"setup": setup, "seconds": seconds, "cpu": cpu,
                      "threads": torch.get_num_threads(),
                      "items": dataset.num_items}))


def run_cornac(data, name, threads, args) -> dict:
    command = [sys.executable, __file__, "--worker", str(data), "--model", name,
               "--threads", str(threads), "--factors", str(args.factors),
               "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"Cornac {name} ({threads} threads) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def spread(values):
    values = np.asarray(values, float)
    return f"{np.median(values):7.2f} [{values.min():.2f}-{values.max():.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--dims", type=int, default=2048)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # child: saved data (.npz)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        cornac_worker(args)
        return
    print(machine_line())
    try:
        import cornac
        import torch
    except ImportError as error:
        sys.exit(f"benchmarks/peers.py needs Cornac {CORNAC_VERSION} and PyTorch, which are "
                 f"not dependencies of the project ({error}): pip install -e \".[peers]\"")
    if cornac.__version__ != CORNAC_VERSION:
        print(f"warning: Cornac {cornac.__version__}, not {CORNAC_VERSION}")
    default_threads = torch.get_num_threads()
    from amr_pipeline.recsys.train import BPRTrainer, TrainConfig  # after torch: see above
    thread_settings = sorted({1, default_threads})
    print(f"Cornac {cornac.__version__}, PyTorch {torch.__version__} (default "
          f"{default_threads} threads; run with {thread_settings}); TensorFlow default threads")
    print("Cornac's AMR is not the paper's (Adam; an unnormalised Δ, the raw feature gradient, "
          "through a dense gradient of the feature matrix): speed only, not accuracy.")

    train, features = identical_data(args.users, args.per_user, args.items, args.dims,
                                     args.seed)
    folder = tempfile.TemporaryDirectory()
    data = Path(folder.name) / "data.npz"
    np.savez(data, users=train["user_id"].to_numpy(), items=train["item_id"].to_numpy(),
             features=features)
    with_pair = train["item_id"].nunique()
    print(f"data: {args.users:,} users x {args.per_user} items = {len(train):,} pairs over "
          f"{args.items:,} items ({with_pair:,} with a pair), D={args.dims}, "
          f"K={args.factors}, batch {args.batch_size}; {args.rounds} interleaved rounds")

    ours = {}
    for name, extra in (("vbpr", {}), ("amr", {"adversary": "gradient", "epsilon": 0.1})):
        config = TrainConfig.from_params({"model": name, "n_factors": args.factors,
                                          "batch_size": args.batch_size, "seed": args.seed,
                                          **extra})
        ours[name] = BPRTrainer(config, train, args.users, args.items, features)
        ours[name].run_epoch(1)  # warm-up: traces the graph
    seconds, cpu, setup = {}, {}, {}
    for round_ in range(args.rounds):
        for name, trainer in ours.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            trainer.run_epoch(2 + round_)
            seconds.setdefault(("ours", name), []).append(time.perf_counter() - began)
            cpu.setdefault(("ours", name), []).append(time.process_time() - began_cpu)
        for threads in thread_settings:
            for name in ours:
                result = run_cornac(data, name, threads, args)
                seconds.setdefault((f"cornac {threads}", name), []).append(result["seconds"])
                cpu.setdefault((f"cornac {threads}", name), []).append(result["cpu"])
                setup.setdefault((name, threads), []).append(result["setup"])
        print(f"round {round_ + 1}: " + ", ".join(
            f"{who} {name} {values[-1]:.2f} s" for (who, name), values in seconds.items()))
    folder.cleanup()

    print("\nseconds per epoch, median [range] of the rounds; Cornac's include its set-up")
    print(f"{'':34s} {'VBPR':>20s} {'AMR':>20s}")
    print(f"{'ours (TensorFlow, default threads)':34s} {spread(seconds['ours', 'vbpr']):>20s} "
          f"{spread(seconds['ours', 'amr']):>20s}")
    print(f"{'  CPU seconds':34s} {spread(cpu['ours', 'vbpr']):>20s} "
          f"{spread(cpu['ours', 'amr']):>20s}")
    for threads in thread_settings:
        label = f"Cornac {cornac.__version__}, torch {threads} thread" + ("s" * (threads > 1))
        print(f"{label:34s} {spread(seconds[f'cornac {threads}', 'vbpr']):>20s} "
              f"{spread(seconds[f'cornac {threads}', 'amr']):>20s}")
        print(f"{'  CPU seconds':34s} {spread(cpu[f'cornac {threads}', 'vbpr']):>20s} "
              f"{spread(cpu[f'cornac {threads}', 'amr']):>20s}")
        print(f"{'  of which set-up (n_epochs=0)':34s} {spread(setup['vbpr', threads]):>20s} "
              f"{spread(setup['amr', threads]):>20s}")
        ratios = [np.median(seconds[f"cornac {threads}", name]) / np.median(seconds["ours", name])
                  for name in ("vbpr", "amr")]
        print(f"{'  Cornac / ours (medians)':34s} {ratios[0]:19.1f}x {ratios[1]:19.1f}x")
    print("Speed only: Cornac's AMR is not the paper's AMR (Adam, unnormalised Δ).")


if __name__ == "__main__":
    main()
