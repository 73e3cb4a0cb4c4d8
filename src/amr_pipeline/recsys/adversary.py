"""Adversarial perturbations Δ on image features (paper eqs. 5, 6, 9, 11, 12).

For a mini-batch, Γ_i = ∂L'/∂Δ_i at Δ = 0, summed over every occurrence of item i in the batch
(note below eq. 12). With ``x = ŷ_ui - ŷ_uj`` and the paper's ``E`` (K x D; the stored
``feature_projection`` is ``Eᵀ``), each occurrence adds ``-σ(-x) Eᵀp_u`` (as positive) or
``+σ(-x) Eᵀp_u`` (as negative), so ``Γ_i = Eᵀ a_i`` with the K-vector ``a_i = Σ ∓σ(-x) p_u``.
Adversaries receive the rows ``a`` (n x K) and ``E`` and return Δ (n x D, one row per distinct
item) or directly its latent image ``E Δ_i`` (n x K), with Δ held fixed (no gradient flows
through the adversary's choice).
"""

from __future__ import annotations

import tensorflow as tf

from amr_pipeline.errors import ConfigurationError

ADVERSARIES = ("gradient", "sign", "random")


class Adversary:
    """Base: ``perturbation`` returns Δ (n x D); ``latent_shift`` returns ``E Δ_i`` (n x K)."""

    kind = "base"

    def __init__(self, epsilon: float):
        if not epsilon >= 0:
            raise ConfigurationError(
                f"epsilon (ε, eq. 6) must be >= 0, got {epsilon}: fix it in the training parameters"
            )
        self.epsilon = float(epsilon)

    def perturbation(self, gradient_factors, projection, seed=(0, 0)) -> tf.Tensor:
        """Δ (n x D) from ``a`` (n x K) and ``projection`` = E (K x D)."""
        raise NotImplementedError

    def latent_shift(self, gradient_factors, projection, seed=(0, 0)) -> tf.Tensor:
        """``E Δ_i`` for each row; gradients reach ``E`` only as ``E``, not through Δ."""
        delta = tf.stop_gradient(self.perturbation(gradient_factors, projection, seed))
        return tf.matmul(delta, projection, transpose_b=True)

    def __repr__(self):
        return f"{type(self).__name__}(epsilon={self.epsilon})"


class GradientAdversary(Adversary):
    """The paper's adversary (eqs. 11-12): ``Δ_i = ε Γ_i / ||Γ_i||``; zero where ``Γ_i = 0``."""

    kind = "gradient"

    def perturbation(self, gradient_factors, projection, seed=(0, 0)):
        gamma = tf.matmul(gradient_factors, projection)
        norm = tf.norm(gamma, axis=1, keepdims=True)
        return tf.math.divide_no_nan(self.epsilon * gamma, norm)

    def latent_shift(self, gradient_factors, projection, seed=(0, 0)):
        """``E Δ_i = ε (E Eᵀ a_i) / ||Eᵀ a_i||`` in K-space, as ``||Eᵀa||² = aᵀ(E Eᵀ)a``:
        no D-sized row is formed. The stop-gradient on one factor of the Gram matrix keeps Δ
        fixed while ``E`` still receives ``Δ_i``'s gradient."""
        a = tf.stop_gradient(gradient_factors)
        product = tf.matmul(tf.stop_gradient(projection), projection, transpose_b=True)
        gram = tf.stop_gradient(product)
        norm = tf.sqrt(tf.maximum(tf.reduce_sum(tf.matmul(a, gram) * a, 1, keepdims=True), 0.0))
        weights = tf.math.divide_no_nan(self.epsilon * a, norm)
        return tf.matmul(weights, product)


class SignAdversary(Adversary):
    """Fast gradient sign method: ``Δ_i = ε sign(Γ_i)`` (weaker in the paper, 3.3)."""

    kind = "sign"

    def perturbation(self, gradient_factors, projection, seed=(0, 0)):
        return self.epsilon * tf.sign(tf.matmul(gradient_factors, projection))


class RandomAdversary(Adversary):
    """A random direction with the gradient adversary's norm ``ε``; seeded, stateless."""

    kind = "random"

    def perturbation(self, gradient_factors, projection, seed=(0, 0)):
        shape = tf.stack([tf.shape(gradient_factors)[0], tf.shape(projection)[1]])
        seed = tf.cast(seed, tf.int64)
        noise = tf.random.stateless_normal(shape, seed=seed, dtype=projection.dtype)
        return tf.math.divide_no_nan(self.epsilon * noise, tf.norm(noise, axis=1, keepdims=True))


def make_adversary(kind: str | None, epsilon: float = 0.1) -> Adversary | None:
    """``"gradient"`` (paper), ``"sign"``, ``"random"``, or ``None``/``"none"`` for no adversary."""
    if kind in (None, "none"):
        return None
    classes = {"gradient": GradientAdversary, "sign": SignAdversary, "random": RandomAdversary}
    if kind not in classes:
        raise ConfigurationError(
            f"adversary must be one of {ADVERSARIES} or none, got {kind!r}: fix it in the "
            "training parameters"
        )
    return classes[kind](epsilon)


def gradient_factors(user_rows, margins, item_slots, n_slots):
    """``a`` with ``Γ = Eᵀ a``: per distinct item, ``Σ -σ(-x) p_u`` over its positive
    occurrences plus ``Σ σ(-x) p_u`` over its negative ones.

    ``item_slots`` holds the distinct-item index of the batch's positives then negatives.
    """
    weight = -tf.sigmoid(-margins)[:, None]
    contributions = tf.concat([weight * user_rows, -weight * user_rows], axis=0)
    return tf.math.unsorted_segment_sum(contributions, item_slots, n_slots)
