"""Where one training epoch of VBPR and AMR spends its time, in CPU seconds (steadier than wall
time on a shared machine), with the trainer's own pieces timed one after the other.

For each model: a normal epoch (host preparation on the background thread, overlapped), then an
epoch run piece by piece without the overlap: the sampler (negatives, shuffle), the host side
of every group (distinct items, slots, feature rows gathered into the row buffer), the compiled
group function (the ``tf.function`` step: forward, gradients, sparse Adagrad of the embedding
rows, dense Adagrad of ``E``). Inside the step, the two D-sized matmuls of every batch
(``E c_i`` of its distinct items and the gradient of ``E``) are timed alone in one
``tf.while_loop`` with the epoch's measured distinct counts; the rest of the step is the
difference (K-sized ops, gathers, segment sums, Adagrad, the loop's per-op overhead). The
FLOP floor's reference rate, a 2048-square matmul per CPU second, is measured in the same run.

    python benchmarks/training_profile.py                      # 60,000 pairs (Cornac's size)
    python benchmarks/training_profile.py --users 83337 --items 299555 --pairs 620000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from scale import add_scale_arguments, machine_line
from training_speed import floor_terms, matmul_flops, random_data

from amr_pipeline.recsys.train import BPRTrainer, TrainConfig, _distinct_items


class Clock:
    def __init__(self):
        self.cpu, self.wall = 0.0, 0.0

    def __enter__(self):
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *_):
        self.cpu += time.process_time() - self._cpu
        self.wall += time.perf_counter() - self._wall


def pieces(trainer: BPRTrainer, epoch: int) -> dict[str, Clock]:
    """One epoch of ``trainer`` with its pieces run one after the other, each timed."""
    clocks = {name: Clock() for name in ("sampler", "host groups", "tf.function step")}
    config = trainer.config
    with clocks["sampler"]:
        users, positives, negatives = trainer.sampler.epoch(config.seed, epoch)
    batches = -(-len(users) // config.batch_size)
    step = config.feature_chunk_batches
    buffer = trainer._row_buffers()[0]
    seed = tf.constant(config.seed * 1_000_003 + epoch, tf.int64)
    total = np.float32(0.0)
    for first in range(0, batches, step):
        with clocks["host groups"]:
            inputs = trainer._group_inputs(users, positives, negatives, first,
                                           min(first + step, batches), buffer)
        with clocks["tf.function step"]:
            total = trainer._group_fn(*inputs, seed, tf.constant(first, tf.int32), total).numpy()
    return clocks


def matmul_pieces(distinct: np.ndarray, dims: int, factors: int) -> Clock:
    """The two D-sized matmuls of every batch alone, at the batches' distinct counts."""
    rng = np.random.default_rng(0)
    rows = tf.constant(rng.random((int(distinct.max()), dims), dtype=np.float32))
    projection = tf.constant(rng.random((factors, dims), dtype=np.float32))
    grads = tf.constant(rng.random((int(distinct.max()), factors), dtype=np.float32))
    counts = tf.constant(distinct, tf.int32)

    @tf.function
    def loop():
        def body(index, total):
            n = counts[index]
            vectors = tf.matmul(rows[:n], projection, transpose_b=True)
            gradient = tf.matmul(grads[:n], rows[:n], transpose_a=True)
            return index + 1, total + vectors[0, 0] + gradient[0, 0]

        return tf.while_loop(lambda index, _: index < tf.shape(counts)[0], body,
                             [tf.constant(0), tf.constant(0.0)], parallel_iterations=1)[1]

    loop()
    clock = Clock()
    with clock:
        loop().numpy()
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.set_defaults(users=3_000, items=5_000, pairs=60_000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine_line())
    train, features = random_data(args.users, args.items, args.pairs, args.dims, args.seed)
    print(f"data: {args.users:,} users, {args.items:,} items, {len(train):,} pairs, "
          f"D={args.dims}, K={args.factors}, batch {args.batch_size}; {args.rounds} rounds, "
          "CPU seconds per epoch, median [range]")
    common = {"n_factors": args.factors, "batch_size": args.batch_size, "seed": args.seed}
    trainers = {
        "vbpr": BPRTrainer(TrainConfig.from_params({**common, "model": "vbpr"}), train,
                           args.users, args.items, features),
        "amr": BPRTrainer(TrainConfig.from_params({**common, "model": "amr",
                                                   "adversary": "gradient", "epsilon": 0.1}),
                          train, args.users, args.items, features),
    }
    for trainer in trainers.values():
        trainer.run_epoch(1)
    rows = {name: {} for name in trainers}
    epoch = 2
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            whole = Clock()
            with whole:
                trainer.run_epoch(epoch)
            split = pieces(trainer, epoch + 1)
            _, positives, negatives = trainer.sampler.epoch(trainer.config.seed, epoch + 1)
            distinct = np.array([
                len(_distinct_items(positives[s : s + args.batch_size],
                                    negatives[s : s + args.batch_size])[0])
                for s in range(0, len(positives), args.batch_size)])
            matmuls = matmul_pieces(distinct, args.dims, args.factors)
            record = rows[name]
            record.setdefault("epoch (overlapped, as trained)", []).append(whole.cpu)
            for piece, clock in split.items():
                record.setdefault(piece, []).append(clock.cpu)
            record.setdefault("  of which the two D-sized matmuls", []).append(matmuls.cpu)
            record.setdefault("  of which everything else in the step", []).append(
                split["tf.function step"].cpu - matmuls.cpu)
            flop, _ = floor_terms(name, distinct, args.batch_size, args.dims, args.factors)
            record.setdefault("FLOP floor (2048-square matmul per CPU s)", []).append(
                flop / matmul_flops()["cpu"])
            record.setdefault("wall: epoch (overlapped)", []).append(whole.wall)
        epoch += 2
    for name, record in rows.items():
        print(f"\n{name}")
        reference = np.median(record["epoch (overlapped, as trained)"])
        for piece, values in record.items():
            values = np.asarray(values)
            share = "" if piece.startswith("wall") else f"{np.median(values) / reference:6.0%}"
            print(f"  {piece:44s} {np.median(values):7.3f} s [{values.min():.3f}-"
                  f"{values.max():.3f}] {share}")


if __name__ == "__main__":
    main()
