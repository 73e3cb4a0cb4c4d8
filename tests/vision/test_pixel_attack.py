"""Figure 1's pixel-level FGSM attack through a (random-weights) ResNet-50 and a factor model."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.models import FactorModel
from amr_pipeline.vision import pixel_attack
from amr_pipeline.vision.network import ResNet50Features

SIZE, K, N_ITEMS, EPSILON = 32, 8, 12, 0.007
ITEMS = [3, 7, 1, 10]


@pytest.fixture(scope="module")
def extractor():
    return ResNet50Features(weights="random", seed=5, image_size=SIZE)


@pytest.fixture(scope="module")
def images():
    """Smooth colour gradients with a bright square, plus noise; one per item of ITEMS."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:SIZE, :SIZE] / SIZE
    result = []
    for k in range(len(ITEMS)):
        picture = np.stack([yy, xx, (yy + xx) / 2], -1)[..., np.roll([0, 1, 2], k)] * 200
        picture[4 + k * 5:12 + k * 5, 6:18] = [250, 240, 30 * k]
        picture += rng.normal(0, 8, picture.shape)
        result.append(np.clip(picture, 0, 255).astype(np.uint8))
    return result


@pytest.fixture(scope="module")
def model(extractor, images):
    rng = np.random.default_rng(2)
    scale = float(extractor(np.stack(images)).max())
    return FactorModel(
        rng.normal(0, 1, (4, K)), rng.normal(0, 0.1, (N_ITEMS, K)),
        rng.normal(0, 1, (extractor.dimension, K)) / np.sqrt(extractor.dimension) * 5, scale,
    )


@pytest.fixture(scope="module")
def attack(model, extractor, images):
    return pixel_attack.fgsm_pixel_attack(model, extractor.model, 2, ITEMS, images, EPSILON)


def _loss(model, network, pixels):
    features = pixel_attack.network_features(network, pixels)
    return float(pixel_attack.bpr_loss(pixel_attack.pixel_scores(model, 2, ITEMS, features), 0))


def test_forward_pass_matches_the_extractor(extractor, images):
    rows = extractor(np.stack(images))
    pixels = np.stack(images).astype(np.float32) / 255
    ours = pixel_attack.network_features(extractor.model, pixels).numpy()
    cosine = np.sum(rows * ours, 1) / np.linalg.norm(rows, axis=1) / np.linalg.norm(ours, axis=1)
    assert cosine.min() > 0.999


def test_scores_before_use_stored_item_factors_and_extractor_features(attack, model, extractor,
                                                                      images):
    features = np.zeros((N_ITEMS, extractor.dimension), np.float32)
    features[ITEMS] = extractor(np.stack(images))
    expected = model.score([2] * len(ITEMS), ITEMS, features)
    np.testing.assert_allclose(attack.scores_before, expected, rtol=1e-3, atol=1e-3)


def test_perturbation_is_bounded_by_epsilon_and_images_stay_in_range(attack, images):
    assert attack.images_before.shape == attack.images_after.shape == (len(ITEMS), SIZE, SIZE, 3)
    np.testing.assert_allclose(attack.images_before, np.stack(images) / 255, atol=1e-6)
    assert 0 <= attack.images_after.min() and attack.images_after.max() <= 1
    delta = np.abs(attack.images_after - attack.images_before)
    assert attack.perturbation_norm == pytest.approx(delta.max())
    assert EPSILON * 0.99 <= attack.perturbation_norm <= EPSILON * (1 + 1e-5)
    assert (delta > 0).mean() > 0.9  # every unclipped pixel with a gradient moved by ε
    assert attack.labels == ["+", "-", "-", "-"] and attack.positive == ITEMS[0]


def test_attack_raises_the_bpr_loss_and_moves_the_positive_down(attack):
    assert attack.loss_after > attack.loss_before
    margins_before = attack.scores_before[0] - attack.scores_before[1:]
    margins_after = attack.scores_after[0] - attack.scores_after[1:]
    assert margins_after.sum() < margins_before.sum()
    assert (attack.feature_change > 0).all()


def test_gradient_sign_agrees_with_finite_differences(model, extractor, attack):
    x = attack.images_before.astype(np.float32)
    direction = np.sign(attack.images_after - x)
    loss = _loss(model, extractor.model, x)
    for step in (1e-3, 3e-3):
        assert _loss(model, extractor.model, np.clip(x + step * direction, 0, 1)) > loss
        assert _loss(model, extractor.model, np.clip(x - step * direction, 0, 1)) < loss
    pixels = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(pixels)
        value = pixel_attack.bpr_loss(pixel_attack.pixel_scores(
            model, 2, ITEMS, pixel_attack.network_features(extractor.model, pixels)), 0)
    gradient = tape.gradient(value, pixels).numpy()
    for flat in np.argsort(np.abs(gradient).ravel())[-2:]:
        index = np.unravel_index(flat, x.shape)
        h = 0.02
        up, down = x.copy(), x.copy()
        up[index] = min(x[index] + h, 1.0)
        down[index] = max(x[index] - h, 0.0)
        slope = (_loss(model, extractor.model, up) - _loss(model, extractor.model, down))
        assert np.sign(slope) == np.sign(gradient[index]) == direction[index]


def test_positive_other_than_first_and_bad_inputs(model, extractor, images):
    result = pixel_attack.fgsm_pixel_attack(model, extractor.model, 2, ITEMS, images, 0.0,
                                            positive=ITEMS[2])
    assert result.labels == ["-", "-", "+", "-"] and result.perturbation_norm == 0
    np.testing.assert_allclose(result.scores_after, result.scores_before, rtol=1e-5)
    with pytest.raises(ConfigurationError, match="size=32"):
        pixel_attack.fgsm_pixel_attack(model, extractor.model, 2, ITEMS,
                                       [image[:16, :16] for image in images])
    with pytest.raises(ConfigurationError, match="visual model"):
        plain = FactorModel(model.user_factors, model.item_factors)
        pixel_attack.fgsm_pixel_attack(plain, extractor.model, 2, ITEMS, images)


def _candidates(n_users=30, n_items=60, per_user=10, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        picked = rng.choice(n_items, per_user + 1, replace=False)
        rows += [(user, int(item), k == 0) for k, item in enumerate(picked)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "is_test"])


def test_choose_example_is_seeded_and_ranks_the_test_item_above_the_negatives():
    rng = np.random.default_rng(4)
    features = rng.random((60, 2048), dtype=np.float32)
    model = FactorModel(rng.normal(size=(30, K)), rng.normal(size=(60, K)),
                        rng.normal(size=(2048, K)) / 45, 1.0)
    candidates = _candidates()
    first = pixel_attack.choose_example(model, features, candidates, seed=3)
    assert first == pixel_attack.choose_example(model, features, candidates.sample(frac=1,
                                                random_state=0), seed=3)
    picks = [pixel_attack.choose_example(model, features, candidates, seed=s) for s in range(8)]
    assert len({user for user, _ in picks}) > 1
    vectors = model.item_vectors(features)
    for user, items in picks:
        rows = candidates[candidates["user_id"] == user]
        assert items[0] == rows.loc[rows["is_test"], "item_id"].item()
        assert len(items) == 4 and len(set(items)) == 4
        assert set(items[1:]) <= set(rows.loc[~rows["is_test"], "item_id"])
        scores = model.score([user] * 4, items, item_vectors=vectors)
        assert (scores[0] > scores[1:]).all()


def test_choose_example_fails_when_no_user_qualifies():
    model = FactorModel(np.ones((30, 1)), np.zeros((60, 1)))  # every score ties
    with pytest.raises(ConfigurationError, match="outscores"):
        pixel_attack.choose_example(model, None, _candidates())
