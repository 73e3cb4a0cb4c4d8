"""Figure 1: an FGSM attack on raw image pixels through ResNet-50 and the recommender.

A user ``u``, a positive image (her test item) and negative images are scored by the visual
recommender, ``ŷ_ui = p_u · (q_i + (c_i / feature_scale) @ Eᵀ)`` (eq. 4), where ``c_i`` is
ResNet-50's pooled output on the image. The adversary maximises the BPR loss
``L = Σ_j -ln σ(ŷ_u,pos − ŷ_uj)`` by one fast-gradient-sign step on the pixels ``x ∈ [0, 1]``
(Goodfellow et al.): ``x' = clip(x + ε · sign(∂L/∂x), 0, 1)``, the gradient flowing back through
the recommender, the feature scaling, ResNet-50 and its preprocessing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras.applications import resnet50 as keras_resnet50

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.models import FactorModel

logger = logging.getLogger(__name__)

__all__ = [
    "PixelAttack",
    "bpr_loss",
    "choose_example",
    "fgsm_pixel_attack",
    "network_features",
    "pixel_scores",
]

DEFAULT_EPSILON = 0.007


@dataclass
class PixelAttack:
    """One Figure-1 example: a positive and negative ``items`` of ``user``, before and after.

    ``images_before``/``images_after``: float32 ``(n, s, s, 3)`` pixels in [0, 1];
    ``scores_before``/``scores_after``: ``ŷ_ui`` per image; ``loss_before``/``loss_after``: the
    BPR loss ``L``; ``perturbation_norm``: ``‖x' − x‖∞``; ``feature_change``: ``‖c'_i − c_i‖ /
    ‖c_i‖`` per image.
    """

    user: int
    items: list[int]
    positive: int
    epsilon: float
    images_before: np.ndarray
    images_after: np.ndarray
    scores_before: np.ndarray
    scores_after: np.ndarray
    loss_before: float
    loss_after: float
    perturbation_norm: float
    feature_change: np.ndarray

    @property
    def labels(self) -> list[str]:
        """``"+"`` for the positive, ``"-"`` for each negative (Figure 1's signs)."""
        return ["+" if item == self.positive else "-" for item in self.items]

    @property
    def positive_rank_before(self) -> int:
        """1-based rank of the positive among the images before the attack."""
        return _rank(self.scores_before, self.items.index(self.positive))

    @property
    def positive_rank_after(self) -> int:
        return _rank(self.scores_after, self.items.index(self.positive))


def _rank(scores: np.ndarray, index: int) -> int:
    return int(np.sum(scores > scores[index])) + 1


def _pixels(images: Sequence[np.ndarray], network: keras.Model) -> np.ndarray:
    """``(n, s, s, 3)`` float32 in [0, 1] from uint8 images (or floats already in [0, 1])."""
    arrays = [np.asarray(image) for image in images]
    pixels = np.stack([
        a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
        for a in arrays
    ])
    expected = tuple(network.input_shape[1:])
    if pixels.shape[1:] != expected or pixels.min() < 0 or pixels.max() > 1:
        raise ConfigurationError(
            f"images must be {expected} uint8 RGB (or floats in [0, 1]) to match the network, "
            f"got {pixels.shape[1:]} in [{pixels.min()}, {pixels.max()}]: load them with "
            f"load_image(source, size={expected[0]})."
        )
    return pixels


def network_features(network: keras.Model, pixels) -> tf.Tensor:
    """``c_i``: ResNet-50 features of [0, 1] pixels, preprocessed like ``ResNet50Features``."""
    inputs = keras_resnet50.preprocess_input(tf.convert_to_tensor(pixels, tf.float32) * 255.0)
    return network(inputs, training=False)


def pixel_scores(model: FactorModel, user: int, items: Sequence[int], features) -> tf.Tensor:
    """``ŷ_ui = p_u · (q_i + (c_i / feature_scale) @ Eᵀ)`` for the given items' features."""
    projection = tf.constant(model.feature_projection / np.float32(model.feature_scale))
    vectors = tf.constant(model.item_factors[np.asarray(items)]) + features @ projection
    return tf.linalg.matvec(vectors, tf.constant(model.user_factors[int(user)]))


def bpr_loss(scores, positive_index: int) -> tf.Tensor:
    """``L = Σ_j -ln σ(ŷ_u,pos − ŷ_uj)`` over the other images ``j``."""
    mask = np.arange(int(scores.shape[0])) != positive_index
    margins = scores[positive_index] - tf.boolean_mask(scores, mask)
    return tf.reduce_sum(tf.math.softplus(-margins))


def fgsm_pixel_attack(
    model: FactorModel,
    network: keras.Model,
    user: int,
    items: Sequence[int],
    images: Sequence[np.ndarray],
    epsilon: float = DEFAULT_EPSILON,
    positive: int | None = None,
) -> PixelAttack:
    """One FGSM step ``x' = clip(x + ε · sign(∂L/∂x), 0, 1)`` on all the images at once.

    ``items[k]`` is shown as ``images[k]`` (uint8 RGB at the network's input size);
    ``positive`` defaults to ``items[0]``.
    """
    items = [int(item) for item in items]
    positive = items[0] if positive is None else int(positive)
    if not model.uses_features:
        raise ConfigurationError("the pixel attack needs a visual model (feature_projection).")
    if len(images) != len(items) or positive not in items or len(items) < 2:
        raise ConfigurationError(
            f"need one image per item, at least two items and the positive among them; got "
            f"{len(items)} items, {len(images)} images, positive {positive}."
        )
    if epsilon < 0:
        raise ConfigurationError(f"epsilon must be non-negative, got {epsilon}.")
    index = items.index(positive)
    before = tf.constant(_pixels(images, network))
    with tf.GradientTape() as tape:
        tape.watch(before)
        features_before = network_features(network, before)
        scores_before = pixel_scores(model, user, items, features_before)
        loss_before = bpr_loss(scores_before, index)
    gradient = tape.gradient(loss_before, before)
    after = tf.clip_by_value(before + np.float32(epsilon) * tf.sign(gradient), 0.0, 1.0)
    features_after = network_features(network, after)
    scores_after = pixel_scores(model, user, items, features_after)
    loss_after = bpr_loss(scores_after, index)
    change = tf.norm(features_after - features_before, axis=1) / tf.maximum(
        tf.norm(features_before, axis=1), 1e-12
    )
    result = PixelAttack(
        user=int(user), items=items, positive=positive, epsilon=float(epsilon),
        images_before=before.numpy(), images_after=after.numpy(),
        scores_before=scores_before.numpy(), scores_after=scores_after.numpy(),
        loss_before=float(loss_before), loss_after=float(loss_after),
        perturbation_norm=float(tf.reduce_max(tf.abs(after - before))),
        feature_change=change.numpy(),
    )
    logger.info(
        "Pixel FGSM (ε=%g), user %d: BPR loss %.4f -> %.4f, positive ranked %d -> %d of %d",
        epsilon, user, result.loss_before, result.loss_after,
        result.positive_rank_before, result.positive_rank_after, len(items),
    )
    return result


def choose_example(
    model: FactorModel,
    features: np.ndarray | None,
    test_candidates: pd.DataFrame,
    n_negatives: int = 3,
    seed: int = 0,
) -> tuple[int, list[int]]:
    """``(user, [positive, neg_1, .., neg_n])`` for Figure 1, drawn with ``seed``.

    The user is drawn among those whose test item the clean model scores above at least
    ``n_negatives`` of their candidate negatives; the negatives are drawn among those.
    """
    missing = {"user_id", "item_id", "is_test"} - set(test_candidates.columns)
    if missing:
        raise ConfigurationError(f"test_candidates lacks columns {sorted(missing)}.")
    users = test_candidates["user_id"].to_numpy(np.int64)
    items = test_candidates["item_id"].to_numpy(np.int64)
    is_test = test_candidates["is_test"].to_numpy(bool)
    scores = model.score(users, items, item_vectors=model.item_vectors(features))
    positive = pd.Series(items[is_test], index=users[is_test])
    positive_score = pd.Series(scores[is_test], index=users[is_test])
    if not positive.index.is_unique:
        raise ConfigurationError("test_candidates must hold one is_test row per user.")
    threshold = positive_score.reindex(users).to_numpy()
    below = pd.DataFrame({"user_id": users, "item_id": items})[~is_test & (scores < threshold)]
    below = below.drop_duplicates()
    counts = below.groupby("user_id").size()
    eligible = np.sort(counts.index[counts.to_numpy() >= n_negatives].to_numpy())
    if len(eligible) == 0:
        raise ConfigurationError(
            f"no user's test item outscores {n_negatives} of their candidate negatives: "
            "lower n_negatives or use a trained model."
        )
    rng = np.random.default_rng(seed)
    user = int(rng.choice(eligible))
    pool = np.sort(below.loc[below["user_id"] == user, "item_id"].to_numpy())
    chosen = rng.choice(pool, size=n_negatives, replace=False)
    return user, [int(positive[user])] + [int(item) for item in chosen]
