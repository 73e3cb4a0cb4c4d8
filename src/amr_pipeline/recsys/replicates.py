"""Replicated final fits: one model trained again with other seeds on the same split.

Replicate 0 trains with the configured ``seed``: it is the model of record (its tables keep
their usual paths and it resumes from the usual checkpoint). Replicate ``k`` trains with
``seed + REPLICATE_SEED_STRIDE * k`` from the ``k``-th initial model (the initialisation chain
MF-BPR -> VBPR -> AMR is followed replicate by replicate), on the same trainer: the compiled
epoch is traced once and :meth:`~amr_pipeline.recsys.train.BPRTrainer.reset` starts each
replicate, as tuning does for each setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.models import FactorModel, TrainResult
from amr_pipeline.recsys.checkpoints import CheckpointStore
from amr_pipeline.recsys.train import BPRTrainer, TrainConfig, fit

REPLICATE_SEED_STRIDE = 1000


def replicate_seed(seed: int, replicate: int) -> int:
    """The training seed of ``replicate`` (replicate 0 keeps ``seed``)."""
    return int(seed) + REPLICATE_SEED_STRIDE * int(replicate)


def check_replicates(replicates) -> int:
    """``replicates`` as a positive integer, or a ConfigurationError naming the fix."""
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise ConfigurationError(
            f"replicates must be a positive integer, got {replicates!r}: fix `replicates` in "
            "parameters_training.yml"
        )
    return replicates


def replicate_store(checkpoint: CheckpointStore | None, replicate: int) -> CheckpointStore | None:
    """Replicate ``k``'s checkpoint: ``<checkpoint directory>/replicates/<k>`` (0: itself)."""
    if checkpoint is None or replicate == 0:
        return checkpoint
    return CheckpointStore(Path(checkpoint.directory) / "replicates" / str(replicate))


def train_replicates(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    params: dict,
    replicates: int,
    features=None,
    initials: Sequence[FactorModel | None] | None = None,
    validation_candidates: pd.DataFrame | None = None,
    checkpoint: CheckpointStore | None = None,
    progress: bool = True,
) -> list[TrainResult]:
    """Train ``replicates`` copies of the model of ``params`` (see the module docstring);
    ``initials[k]`` starts replicate ``k`` (None: the seed's random start). Replicate 0 equals
    :func:`~amr_pipeline.recsys.train.train_bpr` with the same arguments."""
    replicates = check_replicates(replicates)
    initials = list(initials) if initials is not None else [None] * replicates
    if len(initials) < replicates:
        raise ConfigurationError(
            f"{len(initials)} initial models for {replicates} replicates: train the model it "
            "starts from with at least as many replicates"
        )
    config = TrainConfig.from_params(params)
    trainer = BPRTrainer(config, train, n_users, n_items, features, initials[0])
    results = []
    for replicate in range(replicates):
        if replicate:
            trainer.reset(
                TrainConfig.from_params(config, seed=replicate_seed(config.seed, replicate)),
                initials[replicate],
            )
        results.append(fit(trainer, features=features, validation_candidates=validation_candidates,
                           checkpoint=replicate_store(checkpoint, replicate), progress=progress))
    return results
