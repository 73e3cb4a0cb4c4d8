"""Adversarial perturbations Δ (paper eqs. 9, 11, 12 and the note below eq. 12)."""

import numpy as np
import pytest
import tensorflow as tf

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.adversary import (
    GradientAdversary,
    RandomAdversary,
    SignAdversary,
    make_adversary,
)
from amr_pipeline.recsys.train import BPRTrainer, TrainConfig

from . import random_data

EPSILON = 0.5
# item 3 is a positive twice and a negative twice, item 5 once each: Γ sums over occurrences
USERS = np.array([0, 1, 2, 0, 4])
POSITIVES = np.array([3, 3, 5, 7, 9])
NEGATIVES = np.array([5, 8, 3, 3, 1])


def _trainer(adversary="gradient", seed=0):
    train, features = random_data()
    config = TrainConfig.from_params(
        {"model": "amr", "n_factors": 4, "adversary": adversary, "epsilon": EPSILON, "seed": seed}
    )
    trainer = BPRTrainer(config, train, 30, 50, features)
    rng = np.random.default_rng(seed)
    trainer.user_factors.assign(rng.normal(size=(30, 4)).astype(np.float32))
    trainer.projection.assign(rng.normal(size=(4, 8)).astype(np.float32))
    return trainer, features


def _closed_form_gamma(model, features):
    """Γ_i = Σ over occurrences of -σ(-x) Eᵀp_u (positive) or +σ(-x) Eᵀp_u (negative)."""
    projection = model.feature_projection.astype(np.float64)
    vectors = model.item_factors + (features / model.feature_scale) @ projection
    gamma = {}
    for u, i, j in zip(USERS, POSITIVES, NEGATIVES):
        p = model.user_factors[u].astype(np.float64)
        sigma = 1.0 / (1.0 + np.exp(p @ (vectors[i] - vectors[j])))
        gamma[i] = gamma.get(i, 0.0) - sigma * projection @ p
        gamma[j] = gamma.get(j, 0.0) + sigma * projection @ p
    return gamma


def test_gradient_perturbation_matches_closed_form_summed_over_occurrences():
    trainer, features = _trainer()
    items, delta = trainer.batch_perturbation(USERS, POSITIVES, NEGATIVES)
    gamma = _closed_form_gamma(trainer.model(), features)
    assert sorted(items) == sorted(gamma)
    for item, row in zip(items, delta):
        expected = EPSILON * gamma[item] / np.linalg.norm(gamma[item])
        np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-6)
        assert np.linalg.norm(row) == pytest.approx(EPSILON, rel=1e-5)


def test_closed_form_gamma_is_the_autodiff_gradient_at_zero_perturbation():
    trainer, features = _trainer()
    model = trainer.model()
    items = np.unique(np.r_[POSITIVES, NEGATIVES])
    slot = {item: k for k, item in enumerate(items)}
    c = tf.constant(features / model.feature_scale)
    delta = tf.Variable(tf.zeros((len(items), features.shape[1])))
    with tf.GradientTape() as tape:
        perturbed = tf.tensor_scatter_nd_add(c, items[:, None], delta)
        vectors = model.item_factors + perturbed @ model.feature_projection
        p = tf.gather(model.user_factors, USERS)
        x = tf.reduce_sum(p * (tf.gather(vectors, POSITIVES) - tf.gather(vectors, NEGATIVES)), 1)
        loss = tf.reduce_sum(tf.nn.softplus(-x))
    autodiff = tape.gradient(loss, delta).numpy()
    for item, gamma in _closed_form_gamma(model, features).items():
        np.testing.assert_allclose(autodiff[slot[item]], gamma, rtol=1e-4, atol=1e-6)


def test_zero_gradient_gives_zero_perturbation():
    trainer, _ = _trainer()
    trainer.user_factors.assign(tf.zeros((30, 4)))
    _, delta = trainer.batch_perturbation(USERS, POSITIVES, NEGATIVES)
    assert np.all(np.isfinite(delta)) and not delta.any()


def test_latent_shift_equals_projected_perturbation_and_its_gradient():
    rng = np.random.default_rng(1)
    a = tf.constant(rng.normal(size=(6, 4)).astype(np.float32))
    a = tf.tensor_scatter_nd_update(a, [[2]], tf.zeros((1, 4)))
    projection = tf.Variable(rng.normal(size=(4, 10)).astype(np.float32))
    upstream = rng.normal(size=(6, 4)).astype(np.float32)
    adversary = GradientAdversary(EPSILON)
    with tf.GradientTape(persistent=True) as tape:
        fast = adversary.latent_shift(a, projection)
        reference = tf.matmul(
            tf.stop_gradient(adversary.perturbation(a, projection)), projection, transpose_b=True
        )
        fast_loss = tf.reduce_sum(fast * upstream)
        reference_loss = tf.reduce_sum(reference * upstream)
    np.testing.assert_allclose(fast.numpy(), reference.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        tape.gradient(fast_loss, projection).numpy(),
        tape.gradient(reference_loss, projection).numpy(),
        rtol=1e-4,
        atol=1e-5,
    )
    delta = adversary.perturbation(a, projection).numpy()
    # with Δ fixed, ∂(Σ upstream · EΔ)/∂E = upstreamᵀ Δ
    np.testing.assert_allclose(
        tape.gradient(fast_loss, projection).numpy(), upstream.T @ delta, rtol=1e-4, atol=1e-5
    )


def test_sign_adversary_is_epsilon_times_the_gradient_sign():
    trainer, features = _trainer("sign")
    items, delta = trainer.batch_perturbation(USERS, POSITIVES, NEGATIVES)
    gamma = _closed_form_gamma(trainer.model(), features)
    for item, row in zip(items, delta):
        np.testing.assert_array_equal(row, EPSILON * np.sign(gamma[item]).astype(np.float32))
        assert np.linalg.norm(row) == pytest.approx(EPSILON * np.sqrt(features.shape[1]))


def test_random_adversary_has_norm_epsilon_and_is_seeded():
    a = tf.ones((7, 3))
    projection = tf.ones((3, 20))
    adversary = RandomAdversary(EPSILON)
    first = adversary.perturbation(a, projection, (4, 2)).numpy()
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), EPSILON, rtol=1e-5)
    np.testing.assert_array_equal(first, adversary.perturbation(a, projection, (4, 2)).numpy())
    assert not np.allclose(first, adversary.perturbation(a, projection, (4, 3)).numpy())


def test_make_adversary():
    assert isinstance(make_adversary("gradient", 0.1), GradientAdversary)
    assert isinstance(make_adversary("sign", 0.1), SignAdversary)
    assert make_adversary("none") is None and make_adversary(None) is None
    with pytest.raises(ConfigurationError, match="adversary"):
        make_adversary("pgd")
    with pytest.raises(ConfigurationError, match="epsilon"):
        make_adversary("gradient", -1.0)
