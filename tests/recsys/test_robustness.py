"""Test-time feature attacks (paper 4.3.2): directions, norms, the certified bound."""

import numpy as np
import pandas as pd
import pytest

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys import robustness
from amr_pipeline.recsys.metrics import rank_candidates, summarise
from amr_pipeline.recsys.models import FactorModel

N_USERS, N_ITEMS, DIMS, FACTORS, N_CANDIDATES = 20, 60, 16, 4, 15
GRADIENT_ATTACKS = ("fgm_train", "fgm_test", "fgsm", "pgd")


def _setup(seed, ragged=False):
    rng = np.random.default_rng(seed)
    model = FactorModel(
        rng.standard_normal((N_USERS, FACTORS)),
        rng.standard_normal((N_ITEMS, FACTORS)),
        0.5 * rng.standard_normal((DIMS, FACTORS)),
        feature_scale=2.0,
    )
    features = rng.random((N_ITEMS, DIMS)).astype(np.float32)
    train = pd.DataFrame(
        {"user_id": np.repeat(np.arange(N_USERS), 3), "item_id": rng.integers(0, 40, 3 * N_USERS)}
    ).drop_duplicates(ignore_index=True)
    rows = []
    for user in range(N_USERS):
        size = int(rng.integers(5, N_CANDIDATES + 1)) if ragged else N_CANDIDATES
        items = rng.choice(N_ITEMS, size, replace=False)
        rows += [(user, item, position == 0) for position, item in enumerate(items)]
    candidates = pd.DataFrame(rows, columns=["user_id", "item_id", "is_test"])
    return model, features, train, candidates.sample(frac=1, random_state=seed)


def _vectors(model, features, delta=None):
    """``q_i + E(c_i + Δ_i)`` in float64 (eq. 5)."""
    scaled = features.astype(np.float64) / model.feature_scale
    if delta is not None:
        scaled = scaled + delta
    return model.item_factors.astype(np.float64) + scaled @ model.feature_projection.astype(
        np.float64
    )


def _train_loss(model, features, train, delta=None, seed=0):
    users, positives, negatives = robustness.training_triples(train, N_ITEMS, seed)
    vectors, p = _vectors(model, features, delta), model.user_factors.astype(np.float64)
    margin = np.einsum("nk,nk->n", p[users], vectors[positives] - vectors[negatives])
    return np.logaddexp(0, -margin).sum()


def _test_loss(model, features, candidates, delta=None):
    vectors, p = _vectors(model, features, delta), model.user_factors.astype(np.float64)
    total = 0.0
    for user, group in candidates.groupby("user_id"):
        scores = vectors[group["item_id"].to_numpy()] @ p[user]
        test = scores[group["is_test"].to_numpy()][0]
        total += np.logaddexp(0, -(test - scores[~group["is_test"].to_numpy()])).sum()
    return total


def _numeric_gradient(loss, items, step=1e-5):
    """Central differences of ``loss(Δ)`` w.r.t. ``c_i`` for each item in ``items``."""
    out = np.zeros((len(items), DIMS))
    for row, item in enumerate(items):
        for dim in range(DIMS):
            delta = np.zeros((N_ITEMS, DIMS))
            delta[item, dim] = step
            out[row, dim] = (loss(delta) - loss(-delta)) / (2 * step)
    return out


@pytest.mark.parametrize("attack", ["fgm_train", "fgm_test"])
def test_gradient_attacks_follow_the_finite_difference_gradient(attack):
    model, features, train, candidates = _setup(0)
    items = np.arange(0, N_ITEMS, 7)
    if attack == "fgm_train":
        gamma = _numeric_gradient(lambda d: _train_loss(model, features, train, d), items)
    else:
        gamma = _numeric_gradient(lambda d: _test_loss(model, features, candidates, d), items)
    epsilon = 0.3
    norms = np.linalg.norm(gamma, axis=1, keepdims=True)
    expected = np.divide(epsilon * gamma, norms, out=np.zeros_like(gamma), where=norms > 1e-9)
    delta = robustness.perturbation(
        model, attack, epsilon, items, features=features, train=train, candidates=candidates
    )
    np.testing.assert_allclose(delta, expected, atol=2e-4)
    assert (norms > 1e-9).sum() >= len(items) // 2
    shift = robustness.latent_shift(
        model, attack, epsilon, features=features, train=train, candidates=candidates
    )
    np.testing.assert_allclose(expected @ model.feature_projection, shift[items], atol=5e-4)


def test_fgsm_takes_the_sign_of_the_training_gradient():
    model, features, train, candidates = _setup(1)
    items = np.arange(0, N_ITEMS, 5)
    gamma = _numeric_gradient(lambda d: _train_loss(model, features, train, d), items)
    delta = robustness.perturbation(model, "fgsm", 0.2, items, features=features, train=train)
    clear = np.abs(gamma) > 1e-6
    np.testing.assert_allclose(delta[clear], 0.2 * np.sign(gamma[clear]) / np.sqrt(DIMS), rtol=1e-5)
    assert not delta[np.abs(gamma) < 1e-12].any()


@pytest.mark.parametrize("attack", ["random", *GRADIENT_ATTACKS])
def test_every_attack_has_norm_epsilon_and_matching_latent_shift(attack):
    model, features, train, candidates = _setup(2)
    epsilon, items = 0.4, np.arange(N_ITEMS)
    kwargs = {"features": features, "train": train, "candidates": candidates, "seed": 3}
    delta = robustness.perturbation(model, attack, epsilon, items, **kwargs)
    shift = robustness.latent_shift(model, attack, epsilon, **kwargs)
    norms = np.linalg.norm(delta, axis=1)
    moved = norms > 0
    np.testing.assert_allclose(norms[moved], epsilon, rtol=1e-5)
    assert moved.sum() >= N_ITEMS // 2
    if attack in ("random", "fgm_test", "pgd"):
        assert moved.all()
    np.testing.assert_allclose(delta @ model.feature_projection, shift, atol=1e-5)


def test_random_directions_are_seeded():
    model, features, *_ = _setup(3)
    first, again, other = (
        robustness.latent_shift(model, "random", 0.1, features=features, seed=seed)
        for seed in (1, 1, 2)
    )
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_random_directions_are_uniform_on_the_sphere():
    rng = np.random.default_rng(12)
    items = 6000
    model = FactorModel(
        rng.standard_normal((2, FACTORS)), np.zeros((items, FACTORS)),
        rng.standard_normal((DIMS, FACTORS)),
    )
    features = np.zeros((items, DIMS), np.float32)
    delta = robustness.perturbation(model, "random", 0.5, np.arange(items), features=features)
    unit = delta / 0.5
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(unit.mean(axis=0), 0, atol=0.02)
    np.testing.assert_allclose(unit.T @ unit / items, np.eye(DIMS) / DIMS, atol=0.006)


def test_zero_epsilon_reproduces_clean_numbers_exactly():
    model, features, train, candidates = _setup(4)
    table, per_user = robustness.evaluate_attacks(
        model, features, candidates, train, epsilons=(0.0, 0.1)
    )
    clean = rank_candidates(model, features, candidates)
    metrics = list(summarise(clean))
    assert table.loc[table["attack"] == "none", metrics].iloc[0].to_dict() == summarise(clean)
    at_zero = table[table["epsilon"] == 0.0]
    assert set(at_zero["attack"]) == {"none", *robustness.ATTACKS}
    assert (at_zero[metrics] == table.loc[0, metrics]).all().all()
    assert (at_zero.filter(like="_drop") == 0).all().all()
    zero = per_user[per_user["epsilon"] == 0.0]
    assert (zero["rank"] == zero["clean_rank"]).all()
    by_user = clean.set_index("user_id")["rank"]
    assert (zero["clean_rank"].to_numpy() == by_user[zero["user_id"]].to_numpy()).all()


@pytest.mark.parametrize("ragged", [False, True])
def test_attacked_ranks_match_ranking_the_shifted_model(ragged):
    model, features, train, candidates = _setup(5, ragged=ragged)
    epsilon = 0.3
    _, per_user = robustness.evaluate_attacks(
        model, features, candidates, train, epsilons=(epsilon,), seed=7
    )
    vectors = model.item_vectors(features)
    for attack in ("random", *GRADIENT_ATTACKS):
        shift = robustness.latent_shift(
            model, attack, epsilon, features=features, train=train, candidates=candidates, seed=7
        )
        shifted = FactorModel(model.user_factors, vectors + shift)
        expected = rank_candidates(shifted, None, candidates)
        got = per_user[per_user["attack"] == attack].set_index("user_id")["rank"]
        np.testing.assert_array_equal(got[expected["user_id"]].to_numpy(), expected["rank"])


def test_no_attack_beats_the_certified_rank():
    for seed in range(12):
        model, features, train, candidates = _setup(100 + seed, ragged=seed % 2 == 1)
        _, per_user = robustness.evaluate_attacks(
            model, features, candidates, train, epsilons=(0.05, 0.3, 1.0), seed=seed
        )
        certified = per_user[per_user["attack"] == "certified"].set_index(["epsilon", "user_id"])
        for attack in ("random", *GRADIENT_ATTACKS):
            ranks = per_user[per_user["attack"] == attack].set_index(["epsilon", "user_id"])
            bound = certified.loc[ranks.index, "rank"]
            assert (ranks["rank"] <= bound).all(), (seed, attack)
            assert (ranks["rank"] >= 0).all()
        assert (certified["rank"] >= certified["clean_rank"]).all()


def test_certified_rank_is_attained_by_a_brute_force_search():
    """D = 2: every item's Δ searched on a fine circle of radius ε, each user separately."""
    rng = np.random.default_rng(11)
    angles = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    candidates = pd.DataFrame(
        {"user_id": [0, 0, 0, 1, 1, 1], "item_id": [0, 1, 2, 3, 1, 4],
         "is_test": [True, False, False, True, False, False]}
    )
    checked = 0
    for _ in range(5):
        model = FactorModel(
            rng.standard_normal((2, 2)), rng.standard_normal((5, 2)), rng.standard_normal((2, 2))
        )
        features = rng.standard_normal((5, 2)).astype(np.float32)
        vectors = model.item_vectors(features).astype(np.float64)
        for user, items in ((0, [0, 1, 2]), (1, [3, 1, 4])):
            p = model.user_factors[user].astype(np.float64)
            reach = np.linalg.norm(model.feature_projection.astype(np.float64) @ p)
            scores = vectors[items] @ p
            gaps = np.sort((scores[0] - scores[1:]) / (2 * reach))
            levels = np.r_[0.0, gaps[gaps > 0], 2 * max(gaps.max(), 0.1)]
            for lower, upper in zip(levels, levels[1:]):
                if upper - lower < 0.02 * upper:
                    continue
                epsilon = (upper + lower) / 2
                moves = epsilon * circle @ model.feature_projection.astype(np.float64) @ p
                test, first, second = np.ix_(moves, moves, moves)
                worst = (
                    (scores[1] + first >= scores[0] + test).astype(int)
                    + (scores[2] + second >= scores[0] + test)
                ).max()
                certified = robustness.certified_ranks(model, features, candidates, epsilon)
                assert certified.set_index("user_id").loc[user, "rank"] == worst
                checked += 1
    assert checked >= 15


@pytest.mark.parametrize("seed", [201, 203, 204])
def test_pgd_steps_rank_test_items_strictly_lower_than_one_fgm_step(seed):
    """At ε = 1, three PGD steps push the test items strictly further down than the FGM step
    they start from. The ranks are recomputed from the returned Δ (||Δ_i|| ≤ ε, checked)
    with ``rank_candidates`` on the perturbed features, so the gain is real, not bookkeeping;
    no attack may exceed the certified worst case."""
    model, features, train, candidates = _setup(seed)
    epsilon = 1.0
    _, per_user = robustness.evaluate_attacks(
        model, features, candidates, train, attacks=("fgm_test", "pgd"), epsilons=(epsilon,),
        pgd_steps=3,
    )
    worst = robustness.certified_ranks(model, features, candidates, epsilon)
    worst = worst.set_index("user_id")["rank"]
    total_rank = {}
    for attack in ("fgm_test", "pgd"):
        delta = robustness.perturbation(
            model, attack, epsilon, np.arange(N_ITEMS), features=features,
            candidates=candidates, steps=3,
        )
        assert np.linalg.norm(delta, axis=1).max() <= epsilon * (1 + 1e-5)
        attacked = features + model.feature_scale * delta
        ranks = rank_candidates(model, attacked, candidates).set_index("user_id")["rank"]
        reported = per_user[per_user["attack"] == attack].set_index("user_id")["rank"]
        assert ranks.sort_index().equals(reported.sort_index())
        assert (ranks <= worst.reindex(ranks.index)).all()
        total_rank[attack] = int(ranks.sum())
    assert total_rank["pgd"] > total_rank["fgm_test"]


def test_pgd_steps_raise_the_loss_on_reorderable_pairs():
    """Convexity: from the FGM point, a projected step never lowers the restricted test loss."""
    model, features, train, candidates = _setup(6)
    vectors = model.item_vectors(features).astype(np.float64)
    epsilon = 0.5
    layout = candidates.sort_values(["user_id", "is_test"], ascending=[True, False])

    def loss(shift):
        total = 0.0
        for user, group in layout.groupby("user_id"):
            p = model.user_factors[user].astype(np.float64)
            reach = np.linalg.norm(model.feature_projection.astype(np.float64) @ p)
            clean = vectors[group["item_id"].to_numpy()] @ p
            scores = (vectors + shift)[group["item_id"].to_numpy()] @ p
            active = clean[1:] + 2 * epsilon * reach >= clean[0]
            total += np.logaddexp(0, -(scores[0] - scores[1:][active])).sum()
        return total

    start = robustness.latent_shift(
        model, "fgm_test", epsilon, features=features, candidates=candidates
    ).astype(np.float64)
    stepped = robustness.latent_shift(
        model, "pgd", epsilon, features=features, candidates=candidates, steps=1, step_size=0.5
    ).astype(np.float64)
    assert not np.allclose(start, stepped) and loss(stepped) > loss(start)


def test_models_without_features_are_untouched():
    model, features, train, candidates = _setup(7)
    plain = FactorModel(model.user_factors, model.item_factors)
    table, per_user = robustness.evaluate_attacks(plain, None, candidates, train, epsilons=(0.5,))
    assert (table.filter(like="_drop") == 0).all().all()
    assert (per_user["rank"] == per_user["clean_rank"]).all()
    shift = robustness.latent_shift(plain, "fgm_train", 0.5, features=None, train=train)
    assert not shift.any()


def test_drop_columns_and_cold_flags():
    model, features, train, candidates = _setup(8)
    cold = np.zeros(N_ITEMS, bool)
    cold[::3] = True
    table, per_user = robustness.evaluate_attacks(
        model, features, candidates, train, attacks=("fgm_test",), epsilons=(1.0,),
        cold_items=cold,
    )
    clean, attacked = table.iloc[0], table.iloc[1]
    assert attacked["ndcg_at_10_drop"] == pytest.approx(
        (attacked["ndcg_at_10"] - clean["ndcg_at_10"]) / clean["ndcg_at_10"]
    )
    assert attacked["ndcg_at_10_drop"] < 0
    tests = candidates[candidates["is_test"]].set_index("user_id")["item_id"]
    assert (per_user["cold"].to_numpy() == cold[tests[per_user["user_id"]].to_numpy()]).all()
    assert list(per_user.columns[:5]) == ["attack", "epsilon", "user_id", "clean_rank", "rank"]


@pytest.mark.parametrize(
    "kwargs",
    [{"attacks": ("nope",)}, {"epsilons": (-0.1,)}, {"pgd_steps": 0}, {"pgd_step_size": 0.0}],
)
def test_bad_parameters_are_configuration_errors(kwargs):
    model, features, train, candidates = _setup(9)
    with pytest.raises(ConfigurationError):
        robustness.evaluate_attacks(model, features, candidates, train, **kwargs)


def test_certified_has_no_single_shift():
    model, features, train, candidates = _setup(10)
    with pytest.raises(ConfigurationError, match="certified_ranks"):
        robustness.latent_shift(model, "certified", 0.1, features=features, candidates=candidates)
