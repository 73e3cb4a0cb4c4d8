"""One BPR-family trainer for MF-BPR, DUIF, VBPR and AMR (paper eqs. 3, 4, 7, 10, Algorithm 1).

Mini-batch Adagrad on the summed pairwise loss ``Σ -ln σ(ŷ_ui - ŷ_uj)`` with
``ŷ_ui = p_u · (q_i + E c_i)``; MF-BPR drops ``E c_i``, DUIF drops ``q_i``. AMR is VBPR plus an
:mod:`adversary`: per batch Δ is built at Δ = 0 and held fixed while the model steps on
``L_BPR + λ L'_BPR + β||Θ||²`` (eq. 7). Embedding tables are updated only at the rows a batch
touches (sparse Adagrad, duplicates summed), ``E`` densely. The image features c_i stay where
they are (a NumPy array or a memory-mapped feature file): an epoch runs as groups of batches,
each one ``tf.function`` call fed with just the rows its batches touch, gathered on a
background thread while the previous group trains. Every epoch's randomness is a function of
``(seed, epoch)``, so a run resumed from a :class:`CheckpointStore` ends with the same weights
as an uninterrupted one (:mod:`amr_pipeline.recsys.checkpoints`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm.auto import tqdm

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.item_features import take_rows
from amr_pipeline.models_table import BPR_MODELS
from amr_pipeline.recsys import metrics
from amr_pipeline.recsys.adversary import Adversary, gradient_factors, make_adversary
from amr_pipeline.recsys.checkpoints import (
    CheckpointStore,
    checkpoint_arrays,
    restore,
    run_fingerprint,
)
from amr_pipeline.recsys.models import (
    HISTORY_COLUMNS,
    FactorModel,
    TrainResult,
    feature_scale,
    truncated_normal,
    warm_item_mask,
)
from amr_pipeline.recsys.sampling import NegativeSampler

logger = logging.getLogger(__name__)

MODELS = BPR_MODELS  # mf_bpr, duif, vbpr, amr (amr_pipeline.models_table)
_SELECTION_METRICS = ("hr_at_10", "ndcg_at_10", "last")
_DENSE_CATALOGUE = 16  # validation scores every item when items <= 16 x candidates per user
FEATURE_GATHERS = ("host", "graph")


@dataclass
class TrainConfig:
    """Training parameters (``model``: mf_bpr, duif, vbpr or amr).

    ``learning_rate`` (η) and ``regularization`` (β) are one number or three, [users p_u,
    items q_i, projection E] (official Pinterest AMR run: η [0.01, 1e-4, 1e-3], β [0.1, 1e-3,
    0]); the defaults come from the paper's grids (4.1.4). As in the official code, β
    multiplies ``||p_u||²`` and ``||q_i||², ||q_j||²`` once per occurrence in a batch and
    ``||E||²`` once per batch; ``regularize_item_vector`` puts it on ``q_i + E c_i`` instead.
    ``initial_accumulator`` 0.1 is TF1 ``AdagradOptimizer``'s default, which the official code
    used. ``feature_scaling: max_abs`` divides features by their global max |x| (official
    code; the paper's ε assume it). ``adversary`` (gradient, sign, random, none; amr defaults
    to gradient), ``epsilon`` (ε) and ``adversarial_weight`` (λ) define AMR (eqs. 7, 11).
    ``selection_metric`` picks the returned epoch on the validation candidates, epoch 0 (the
    initialisation) included (``last``: the last epoch, the evaluations only recorded, as
    Figure 3 records test curves); ``early_stopping_patience`` stops after that many evaluations
    without a better validation score (None: train all ``epochs``).

    ``feature_gather: host`` keeps the features where they are and copies only the rows of
    the next ``feature_chunk_batches`` batches (about ``2 x batch_size x D x 4`` bytes per
    batch); ``graph`` copies the whole matrix into TensorFlow once and gathers rows inside the
    compiled epoch (the matrix is then held twice). Both give the same weights."""

    model: str = "vbpr"
    n_factors: int = 64
    epochs: int = 20
    batch_size: int = 512
    learning_rate: float | Sequence[float] = 0.05
    regularization: float | Sequence[float] = 0.0
    initial_accumulator: float = 0.1
    init_stddev: float = 0.01
    feature_scaling: str | None = "max_abs"
    regularize_item_vector: bool = False
    adversary: str | None = None
    epsilon: float = 0.1
    adversarial_weight: float = 1.0
    eval_every: int = 1
    selection_metric: str = "ndcg_at_10"
    checkpoint_every: int = 5
    early_stopping_patience: int | None = None
    feature_gather: str = "host"
    feature_chunk_batches: int = 16
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict | TrainConfig | None = None, **overrides) -> TrainConfig:
        """Build from a parameters dict; unknown keys are an error."""
        if isinstance(params, TrainConfig):
            params = dataclasses.asdict(params)
        params = {**(params or {}), **overrides}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown training parameter(s) {unknown}: use only {sorted(known)}"
            )
        config = cls(**params)
        config.validate()
        return config

    def __post_init__(self):
        if self.model == "amr" and self.adversary is None:
            self.adversary = "gradient"

    @property
    def uses_features(self) -> bool:
        return self.model != "mf_bpr"

    @property
    def uses_item_factors(self) -> bool:
        return self.model != "duif"

    def rates(self) -> tuple[float, float, float]:
        return _triple(self.learning_rate, "learning_rate")

    def penalties(self) -> tuple[float, float, float]:
        return _triple(self.regularization, "regularization")

    def validate(self) -> None:
        def bad(name, rule):
            raise ConfigurationError(
                f"training parameter {name}={getattr(self, name)!r} is invalid: it {rule}"
            )

        if self.model not in MODELS:
            bad("model", f"must be one of {MODELS}")
        for name in ("n_factors", "epochs", "batch_size", "eval_every", "checkpoint_every",
                     "feature_chunk_batches"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < (0 if name == "epochs" else 1):
                bad(name, "must be a positive integer")
        if any(r <= 0 for r in self.rates()):
            bad("learning_rate", "must be > 0")
        if any(r < 0 for r in self.penalties()):
            bad("regularization", "must be >= 0")
        if not self.initial_accumulator > 0:
            bad("initial_accumulator", "must be > 0")
        patience = self.early_stopping_patience
        if patience is not None and (not isinstance(patience, (int, np.integer)) or patience < 1):
            bad("early_stopping_patience", "must be a positive integer (evaluations) or null")
        if self.feature_gather not in FEATURE_GATHERS:
            bad("feature_gather", f"must be one of {FEATURE_GATHERS}")
        if self.selection_metric not in _SELECTION_METRICS:
            bad("selection_metric", f"must be one of {_SELECTION_METRICS}")
        if self.adversary not in (None, "none") and not self.uses_features:
            bad("adversary", "needs a visual model (duif, vbpr, amr): Δ perturbs image features")
        if self.adversarial_weight < 0:
            bad("adversarial_weight", "must be >= 0 (λ, eq. 7)")
        make_adversary(self.adversary, self.epsilon)
        feature_scale(None, self.feature_scaling)


# Fields that shape the compiled epoch: a trainer is reused (``BPRTrainer.reset``) only across
# settings that agree on them; learning rates, β, ε, λ, seeds and epochs may differ.
STRUCTURAL_FIELDS = ("model", "n_factors", "batch_size", "feature_scaling",
                     "regularize_item_vector", "adversary", "feature_gather")


class BPRTrainer:
    """Holds the factor tables, their Adagrad accumulators and the compiled epoch.

    Learning rates η, penalties β, ε and λ live in TensorFlow variables read by the compiled
    epoch, so :meth:`reset` starts another setting (a grid point of the tuning protocol) on the
    same data, sampler and compiled graph without tracing again.
    """

    def __init__(
        self,
        config: TrainConfig,
        train: pd.DataFrame,
        n_users: int,
        n_items: int,
        features=None,
        initial: FactorModel | None = None,
        adversary: Adversary | None = None,
    ):
        """``features``: (n_items, D) raw c_i, a NumPy array or anything with ``take(rows)``
        and ``[start:stop]`` slicing (:class:`~amr_pipeline.item_features.ItemRows`,
        :class:`~amr_pipeline.item_features.MappedFeatures`)."""
        config.validate()
        self.config, self.n_users, self.n_items = config, int(n_users), int(n_items)
        _check_pairs(train, n_users, n_items)
        if config.uses_features and (features is None or len(features) != n_items):
            raise ConfigurationError(
                f"model {config.model} needs `features` with one row per item ({n_items} rows)"
            )
        if config.model == "amr" and initial is None:
            logger.warning("AMR without a trained VBPR to start from (Algorithm 1, line 1)")
        self._custom_adversary = adversary is not None
        self.adversary = adversary if adversary is not None else (
            make_adversary(config.adversary, config.epsilon)
        )
        # Every built-in adversary is ε times a unit direction: the graph scales a unit
        # adversary's shift by the variable ε, so ε can change between settings.
        self._shift_adversary = self.adversary if self._custom_adversary else (
            make_adversary(config.adversary, 1.0)
        )
        self._rates = tf.Variable(config.rates(), dtype=tf.float32, name="learning_rates")
        self._penalties = tf.Variable(config.penalties(), dtype=tf.float32, name="penalties")
        self._epsilon = tf.Variable(1.0 if self._custom_adversary else config.epsilon,
                                    dtype=tf.float32, name="epsilon")
        self._adversarial_weight = tf.Variable(config.adversarial_weight, dtype=tf.float32,
                                               name="adversarial_weight")
        users = train["user_id"].to_numpy(np.int64)
        items = train["item_id"].to_numpy(np.int64)
        self.sampler = NegativeSampler(users, items, n_items)
        self.warm = warm_item_mask(train, n_items)
        self.scale, self.features, self._feature_tensor = 1.0, None, None
        if config.uses_features:
            self.features = features
            self.scale = feature_scale(features, config.feature_scaling)
            if config.feature_gather == "graph":
                self._feature_tensor = tf.convert_to_tensor(np.asarray(features, np.float32))
        self._pairs, self._buffers = (users, items), None
        self._build_variables(initial)
        self._identity: str | None = None
        self._group_fn = tf.function(
            self._group_graph,
            input_signature=[tf.TensorSpec([None], tf.int32)] * 5
            + [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([], tf.int64),
               tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32)],
        )

    def reset(self, config: TrainConfig, initial: FactorModel | None = None) -> None:
        """Start a new setting on the same data: fresh tables (from ``initial`` or the seed),
        accumulators and hyper-parameters; the compiled epoch is kept."""
        config.validate()
        changed = [name for name in STRUCTURAL_FIELDS
                   if getattr(config, name) != getattr(self.config, name)]
        if changed:
            raise ConfigurationError(
                f"a trainer is reused only for settings with the same {changed}: build a new "
                "BPRTrainer for this setting"
            )
        self.config = config
        if not self._custom_adversary:
            self.adversary = make_adversary(config.adversary, config.epsilon)
            self._epsilon.assign(config.epsilon)
        self._rates.assign(config.rates())
        self._penalties.assign(config.penalties())
        self._adversarial_weight.assign(config.adversarial_weight)
        self._build_variables(initial)
        self._identity = None

    # ----------------------------------------------------------------- state
    def _build_variables(self, initial: FactorModel | None) -> None:
        config, k = self.config, self.config.n_factors
        rng = np.random.default_rng([config.seed, 0])
        if initial is not None and initial.n_factors != k:
            raise ConfigurationError(
                f"n_factors={k} but the initial model has K={initial.n_factors}: set n_factors "
                "to match the model it starts from"
            )

        def table(source, rows, name):
            if source is not None:
                if source.shape[0] != rows:
                    raise ConfigurationError(
                        f"initial {name} has {source.shape[0]} rows, expected {rows}: the "
                        "initial model was trained on different ids"
                    )
                return np.array(source, np.float32)
            return truncated_normal(rng, (rows, k), config.init_stddev)

        users = table(getattr(initial, "user_factors", None), self.n_users, "user_factors")
        items = np.zeros((self.n_items, k), np.float32)
        if config.uses_item_factors:
            items = table(getattr(initial, "item_factors", None), self.n_items, "item_factors")
            items[~self.warm] = 0.0
        values = {"user_factors": users, "item_factors": items,
                  "user_accumulator": np.full(users.shape, config.initial_accumulator, np.float32),
                  "item_accumulator": np.full(items.shape, config.initial_accumulator, np.float32)}
        if config.uses_features:
            dims = int(self.features.shape[1])
            start = None if initial is None else initial.feature_projection
            if start is not None:
                if start.shape != (dims, k):
                    raise ConfigurationError(
                        f"initial feature_projection is {start.shape}, expected {(dims, k)}"
                    )
                start = start * np.float32(self.scale / initial.feature_scale)
            else:
                start = truncated_normal(rng, (dims, k), config.init_stddev)
            values["projection"] = np.ascontiguousarray(start.T, np.float32)  # E (K x D)
            values["projection_accumulator"] = np.full(start.T.shape, config.initial_accumulator,
                                                       np.float32)
        if hasattr(self, "user_factors"):
            self.load_state(values)
            return
        for name in ("user_factors", "item_factors", "user_accumulator", "item_accumulator",
                     "projection", "projection_accumulator"):
            setattr(self, name, tf.Variable(values[name], name=name) if name in values else None)

    def _variables(self) -> dict[str, tf.Variable]:
        names = {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "user_accumulator": self.user_accumulator,
            "item_accumulator": self.item_accumulator,
        }
        if self.projection is not None:
            names["projection"] = self.projection
            names["projection_accumulator"] = self.projection_accumulator
        return names

    def state(self) -> dict[str, np.ndarray]:
        """Every table and accumulator as NumPy arrays."""
        return {name: variable.numpy() for name, variable in self._variables().items()}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        for name, variable in self._variables().items():
            variable.assign(arrays[name])

    def model(self) -> FactorModel:
        """A NumPy snapshot of the current weights."""
        projection = None if self.projection is None else np.array(self.projection.numpy().T)
        return FactorModel(
            np.array(self.user_factors.numpy()), np.array(self.item_factors.numpy()),
            projection, self.scale,
        )

    @property
    def fingerprint(self) -> str:
        """Identity of the run as started (for checkpoints); computed on first use."""
        if self._identity is None:
            self._identity = run_fingerprint(self, *self._pairs, self.features)
        return self._identity

    # ----------------------------------------------------------------- maths
    def _batch_items(self, positives, negatives):
        """Distinct items of one batch (ascending), each occurrence's slot among them, and
        their raw features (those rows only)."""
        distinct, slots = _distinct_items(positives, negatives)
        rows = tf.constant(distinct, tf.int32)
        if self.features is None:
            return rows, tf.constant(slots, tf.int32), tf.zeros([0, 0])
        return rows, tf.constant(slots, tf.int32), tf.constant(take_rows(self.features, distinct))

    def _group_inputs(self, users, positives, negatives, first: int, last: int,
                      buffer: np.ndarray | None):
        """Host side of batches ``first..last-1`` of an epoch: their pairs, each batch's
        distinct items and occurrence slots, and (``feature_gather: host``) the features of
        those items, gathered into ``buffer`` and handed to TensorFlow without a copy, as
        tensors for :meth:`_group_graph`."""
        size = self.config.batch_size
        low, high = first * size, min(last * size, len(users))
        positive_slots, negative_slots, distinct, offsets = [], [], [], [0]
        for start in range(low, high, size):
            stop = min(start + size, high)
            rows, slots = _distinct_items(positives[start:stop], negatives[start:stop])
            positive_slots.append(slots[: stop - start])
            negative_slots.append(slots[stop - start :])
            distinct.append(rows)
            offsets.append(offsets[-1] + len(rows))
        distinct = np.concatenate(distinct)
        rows = tf.zeros([0, 0])
        if buffer is not None:
            gathered = take_rows(self.features, distinct, out=buffer[: len(distinct)])
            rows = tf.experimental.dlpack.from_dlpack(gathered.__dlpack__())
        return (tf.constant(users[low:high], tf.int32),
                tf.constant(np.concatenate(positive_slots), tf.int32),
                tf.constant(np.concatenate(negative_slots), tf.int32),
                tf.constant(offsets, tf.int32), tf.constant(distinct, tf.int32), rows)

    def _row_buffers(self) -> list[np.ndarray | None]:
        """Two host buffers for the feature rows of one group each (the group training and
        the one being gathered), 64-byte aligned so TensorFlow reads them in place."""
        if self.features is None or self._feature_tensor is not None:
            return [None, None]
        if self._buffers is None:
            per_batch = min(2 * self.config.batch_size, self.n_items)
            shape = (self.config.feature_chunk_batches * per_batch, self.features.shape[1])
            self._buffers = [_aligned_empty(shape), _aligned_empty(shape)]
        return self._buffers

    def _gradients(self, users, items, seed):
        """Objective of eq. 7 on one batch and its gradients at the distinct rows touched."""
        config = self.config
        beta_user, beta_item, beta_projection = tf.unstack(self._penalties)
        batch = tf.shape(users)[0]
        item_rows, item_slot, c_rows = items
        user_rows, user_slot = tf.unique(users)
        p_rows = tf.gather(self.user_factors, user_rows)
        q_rows = tf.gather(self.item_factors, item_rows) if config.uses_item_factors else None
        c_rows = c_rows if config.uses_features else None
        watched = [p_rows] + ([q_rows] if q_rows is not None else [])
        with tf.GradientTape() as tape:
            tape.watch(watched)
            p = tf.gather(p_rows, user_slot)
            vectors, occurrences, margins = self._margins(p, q_rows, c_rows, item_slot)
            data_loss = tf.reduce_sum(tf.nn.softplus(-margins))
            if self.adversary is not None:
                factors = gradient_factors(p, margins, item_slot, tf.shape(item_rows)[0])
                shift = self._epsilon * self._shift_adversary.latent_shift(
                    factors, self.projection, seed)
                perturbed = tf.gather(vectors + shift, item_slot)
                margins_adv = tf.reduce_sum(p * (perturbed[:batch] - perturbed[batch:]), 1)
                data_loss += self._adversarial_weight * tf.reduce_sum(
                    tf.nn.softplus(-margins_adv))
            objective = data_loss + beta_user * tf.reduce_sum(tf.square(p))
            if config.regularize_item_vector:
                objective += beta_item * tf.reduce_sum(tf.square(occurrences))
            elif q_rows is not None:
                objective += beta_item * tf.reduce_sum(tf.square(tf.gather(q_rows, item_slot)))
            if self.projection is not None:
                objective += beta_projection * tf.reduce_sum(tf.square(self.projection))
        targets = watched + ([self.projection] if self.projection is not None else [])
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(objective, targets)]
        grad_users = grads[0]
        grad_items = grads[1] if q_rows is not None else None
        grad_projection = grads[-1] if self.projection is not None else None
        return data_loss, user_rows, grad_users, item_rows, grad_items, grad_projection

    def _margins(self, p, q_rows, c_rows, item_slot):
        """Distinct item vectors (eq. 4), their per-occurrence rows and ``x = ŷ_ui - ŷ_uj``."""
        vectors = _item_vectors(q_rows, c_rows, self.projection, self.scale)
        occurrences = tf.gather(vectors, item_slot)
        batch = tf.shape(p)[0]
        margins = tf.reduce_sum(p * (occurrences[:batch] - occurrences[batch:]), 1)
        return vectors, occurrences, margins

    def _step(self, users, items, seed):
        rate_user, rate_item, rate_projection = tf.unstack(self._rates)
        loss, user_rows, g_users, item_rows, g_items, g_projection = self._gradients(
            users, items, seed
        )
        _adagrad_rows(self.user_factors, self.user_accumulator, user_rows, g_users, rate_user)
        if g_items is not None:
            _adagrad_rows(self.item_factors, self.item_accumulator, item_rows, g_items, rate_item)
        if g_projection is not None:
            tf.raw_ops.ResourceApplyAdagrad(
                var=self.projection.handle,
                accum=self.projection_accumulator.handle,
                lr=rate_projection,
                grad=g_projection,
            )
        return loss

    def _group_graph(self, users, positive_slots, negative_slots, offsets, distinct, rows,
                     seed, first_batch, total):
        """Train consecutive batches (one :meth:`_group_inputs`); batch ``b`` of the group
        touches items ``distinct[offsets[b]:offsets[b + 1]]``, whose features are the same
        slice of ``rows`` (host) or gathered here from the matrix (graph)."""
        size = self.config.batch_size
        count = tf.shape(users)[0]

        def body(batch, total):
            start = batch * size
            stop = tf.minimum(start + size, count)
            item_rows = distinct[offsets[batch] : offsets[batch + 1]]
            if self.features is None:
                c_rows = tf.zeros([0, 0])
            elif self._feature_tensor is not None:
                c_rows = tf.gather(self._feature_tensor, item_rows)
            else:
                c_rows = rows[offsets[batch] : offsets[batch + 1]]
            item_slot = tf.concat([positive_slots[start:stop], negative_slots[start:stop]], 0)
            pair_seed = tf.stack([seed, tf.cast(first_batch + batch, tf.int64)])
            loss = self._step(users[start:stop], (item_rows, item_slot, c_rows), pair_seed)
            return batch + 1, total + loss

        _, total = tf.while_loop(lambda batch, total: batch < tf.shape(offsets)[0] - 1, body,
                                 [tf.constant(0), total], parallel_iterations=1)
        return total

    # ----------------------------------------------------------------- public
    def run_epoch(self, epoch: int) -> float:
        """Train one epoch (1-based); returns the mean per-pair loss ``L_BPR + λ L'_BPR``.
        Each group of ``feature_chunk_batches`` batches is prepared on a thread while the
        group before it trains."""
        users, positives, negatives = self.sampler.epoch(self.config.seed, epoch)
        batches = -(-len(users) // self.config.batch_size)
        step = self.config.feature_chunk_batches
        groups = [(first, min(first + step, batches)) for first in range(0, batches, step)]
        buffers = self._row_buffers()
        seed = tf.constant(self.config.seed * 1_000_003 + epoch, tf.int64)
        total = np.float32(0.0)

        def prepare(index):
            return pool.submit(self._group_inputs, users, positives, negatives, *groups[index],
                               buffers[index % 2])

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-rows") as pool:
            upcoming = prepare(0)
            for index, (first, _) in enumerate(groups):
                inputs = upcoming.result()
                if index + 1 < len(groups):  # its buffer's group finished training
                    upcoming = prepare(index + 1)
                total = self._group_fn(*inputs, seed, tf.constant(first, tf.int32),
                                       total).numpy()
        return float(total) / max(len(users), 1)

    def batch_gradients(self, users, positives, negatives, seed=(0, 0)) -> dict[str, np.ndarray]:
        """Dense gradients of one batch's objective (eq. 7) w.r.t. every table, and its loss."""
        items = self._batch_items(np.asarray(positives), np.asarray(negatives))
        loss, user_rows, g_users, item_rows, g_items, g_projection = self._gradients(
            tf.constant(users, tf.int32), items, tf.constant(seed, tf.int64)
        )
        out = {"loss": float(loss)}
        out["user_factors"] = _dense(user_rows, g_users, self.n_users, self.config.n_factors)
        if g_items is not None:
            out["item_factors"] = _dense(item_rows, g_items, self.n_items, self.config.n_factors)
        if g_projection is not None:
            out["feature_projection"] = g_projection.numpy().T
        return out

    def batch_perturbation(self, users, positives, negatives, seed=(0, 0)):
        """``(items, Δ)``: the adversary's Δ for the batch's distinct items (eqs. 11-12)."""
        if self.adversary is None:
            raise ConfigurationError("no adversary configured: set adversary for this model")
        item_rows, item_slot, c_rows = self._batch_items(np.asarray(positives),
                                                         np.asarray(negatives))
        p = tf.gather(self.user_factors, tf.constant(users, tf.int32))
        q_rows = tf.gather(self.item_factors, item_rows) if self.config.uses_item_factors else None
        _, _, margins = self._margins(p, q_rows, c_rows, item_slot)
        factors = gradient_factors(p, margins, item_slot, tf.shape(item_rows)[0])
        delta = self.adversary.perturbation(factors, self.projection, tf.constant(seed, tf.int64))
        return item_rows.numpy(), delta.numpy()


def train_bpr(
    train: pd.DataFrame,
    n_users: int,
    n_items: int,
    *,
    params: dict | TrainConfig | None = None,
    features=None,
    initial: FactorModel | None = None,
    validation_candidates: pd.DataFrame | None = None,
    adversary: Adversary | None = None,
    checkpoint: CheckpointStore | str | os.PathLike | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train MF-BPR / DUIF / VBPR / AMR (``params["model"]``) and return the weights of the
    best evaluated epoch by ``selection_metric`` on ``validation_candidates`` (the last epoch
    without them). Epoch 0 (the initial tables) is evaluated too, so a start that training
    only makes worse is kept. Every ``eval_every`` epochs a history row (``HISTORY_COLUMNS``)
    is recorded and passed to ``on_epoch_end(epoch, record)``; every ``checkpoint_every``
    epochs all state is saved to ``checkpoint``, from which a restarted call resumes.
    ``features`` (visual models): the raw c_i, a NumPy matrix or rows read on demand
    (:class:`~amr_pipeline.item_features.ItemRows` over a memory-mapped file)."""
    config = TrainConfig.from_params(params)
    trainer = BPRTrainer(config, train, n_users, n_items, features, initial, adversary)
    return fit(trainer, features=features, validation_candidates=validation_candidates,
               checkpoint=checkpoint, on_epoch_end=on_epoch_end, progress=progress)


def fit(
    trainer: BPRTrainer,
    *,
    features=None,
    validation_candidates: pd.DataFrame | tuple | None = None,
    checkpoint: CheckpointStore | str | os.PathLike | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """The training loop of :func:`train_bpr` on a built (or :meth:`~BPRTrainer.reset`)
    trainer; ``validation_candidates`` may be pre-grouped (:func:`metrics.grouped_candidates`)."""
    config = trainer.config
    store = checkpoint
    if isinstance(checkpoint, (str, os.PathLike)):
        store = CheckpointStore(checkpoint)
    if isinstance(validation_candidates, pd.DataFrame):
        validation_candidates = metrics.grouped_candidates(validation_candidates)
    dense = False  # a small catalogue is scored whole (faster than gathering candidates)
    if validation_candidates is not None:
        per_user = len(validation_candidates[1]) / max(len(validation_candidates[3]), 1)
        dense = trainer.n_items <= _DENSE_CATALOGUE * per_user
    history: list[dict] = []
    best = {"score": -np.inf, "epoch": 0, "model": None, "since": 0}
    start = 0
    if store is not None:
        trainer.fingerprint  # noqa: B018 - the identity of the untrained start
    saved = store.load() if store is not None else None
    if saved is not None and str(saved["fingerprint"]) != trainer.fingerprint:
        logger.warning(
            "%s: the checkpoint in %s belongs to a different run (data, parameters or initial "
            "model changed); training from the start and replacing it.", config.model, store.path,
        )
        saved = None
    if saved is not None:
        start = restore(trainer, saved, history, best)
        logger.info("%s: resuming after epoch %d from %s", config.model, start, store.path)

    def evaluate(epoch: int, loss: float, seconds: float) -> dict:
        record = {"epoch": epoch, "loss": loss, "hr_at_10": np.nan, "ndcg_at_10": np.nan,
                  "seconds": seconds}
        snapshot = trainer.model()
        if validation_candidates is not None:
            summary = metrics.summarise(
                metrics.rank_candidates(snapshot, features, validation_candidates, dense=dense),
                (10,),
            )
            record.update(hr_at_10=summary["hr_at_10"], ndcg_at_10=summary["ndcg_at_10"])
            score = (float(epoch) if config.selection_metric == "last"
                     else record[config.selection_metric])
        else:
            score = float(epoch)
        if score > best["score"]:
            best.update(score=score, epoch=epoch, model=snapshot, since=0)
        else:
            best["since"] += 1
        history.append(record)
        return record

    if start == 0:
        record = evaluate(0, float("nan"), 0.0)
        if on_epoch_end is not None:
            on_epoch_end(0, dict(record))
    bar = tqdm(total=config.epochs, initial=min(start, config.epochs), desc=config.model,
               unit="epoch", disable=not progress, leave=False)
    patience = config.early_stopping_patience
    for epoch in range(start + 1, config.epochs + 1):
        began = time.perf_counter()
        loss = trainer.run_epoch(epoch)
        seconds = time.perf_counter() - began
        if not np.isfinite(loss):
            raise ConfigurationError(
                f"{config.model}: the loss became {loss} at epoch {epoch}: lower learning_rate "
                "or epsilon / adversarial_weight"
            )
        record = None
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            record = evaluate(epoch, loss, seconds)
        stop = (patience is not None and validation_candidates is not None
                and best["since"] >= patience)
        if store is not None and (epoch % config.checkpoint_every == 0
                                  or epoch == config.epochs or stop):
            store.save(checkpoint_arrays(trainer, epoch, history, best))
        if record is not None and on_epoch_end is not None:
            on_epoch_end(epoch, dict(record))
        hit_rate = history[-1]["hr_at_10"] if history else float("nan")
        bar.set_postfix(loss=f"{loss:.4f}", hr10=f"{hit_rate:.4f}")
        bar.update(1)
        if stop:
            logger.info("%s: no better validation %s in %d evaluations; stopping at epoch %d "
                        "(best epoch %d).", config.model, config.selection_metric, patience,
                        epoch, best["epoch"])
            break
    bar.close()

    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS).astype({"epoch": "int64"})
    model = best["model"] if best["model"] is not None else trainer.model()
    return TrainResult(model=model, history=frame, best_epoch=int(best["epoch"]))


# --------------------------------------------------------------------- helpers
def _item_vectors(q_rows, c_rows, projection, scale):
    """``q_i + E c_i`` for the batch's distinct items (eq. 4), ``c_i = raw_i / scale``; the
    scale is applied to the K-sized product rather than the D-sized rows."""
    if c_rows is None:
        return q_rows
    projected = tf.matmul(c_rows, projection, transpose_b=True) * (1.0 / scale)
    return projected if q_rows is None else q_rows + projected


def _distinct_items(positives, negatives) -> tuple[np.ndarray, np.ndarray]:
    """A batch's distinct items in ascending order (so a batch's feature rows are read in file
    order) and each occurrence's slot among them, positives then negatives."""
    return np.unique(np.concatenate([positives, negatives]), return_inverse=True)


def _aligned_empty(shape, alignment: int = 64) -> np.ndarray:
    """An uninitialised float32 array whose data starts on an ``alignment``-byte boundary."""
    size = int(np.prod(shape)) * 4
    raw = np.empty(size + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start : start + size].view(np.float32).reshape(shape)


def _adagrad_rows(table, accumulator, rows, grad, rate):
    """Adagrad at distinct ``rows`` only: ``G += g²; θ -= η g / √G``, TF1 AdagradOptimizer's
    sparse kernel (duplicate rows were summed before)."""
    tf.raw_ops.ResourceSparseApplyAdagrad(
        var=table.handle,
        accum=accumulator.handle,
        lr=rate,
        grad=grad,
        indices=rows,
    )


def _dense(rows, grad, n_rows, n_factors):
    out = np.zeros((n_rows, n_factors), np.float32)
    out[rows.numpy()] = grad.numpy()
    return out


def _triple(value, name) -> tuple[float, float, float]:
    values = [value] * 3 if np.isscalar(value) else list(value)
    if len(values) != 3:
        raise ConfigurationError(
            f"{name} must be one number or three [users, items, projection], got {value!r}"
        )
    return tuple(float(v) for v in values)


def _check_pairs(train: pd.DataFrame, n_users: int, n_items: int) -> None:
    for column, size in (("user_id", n_users), ("item_id", n_items)):
        if column not in train:
            raise ConfigurationError(f"train needs a `{column}` column, got {list(train.columns)}")
        values = train[column].to_numpy()
        if len(values) and (values.min() < 0 or values.max() >= size):
            raise ConfigurationError(
                f"train `{column}` must lie in [0, {size}); got [{values.min()}, {values.max()}]: "
                "pass n_users / n_items from the same data_processing run"
            )
    if train.empty:
        raise ConfigurationError("train has no interactions")
