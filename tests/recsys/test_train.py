"""The BPR-family trainer: gradients (eqs. 3, 7, 10), sampling, determinism, resume, learning."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.recsys.metrics import rank_candidates, summarise
from amr_pipeline.recsys.models import FactorModel, truncated_normal
from amr_pipeline.recsys.sampling import NegativeSampler
from amr_pipeline.recsys.checkpoints import CheckpointStore
from amr_pipeline.recsys.train import BPRTrainer, TrainConfig, train_bpr

from . import planted_data, random_data

N_USERS, N_ITEMS = 30, 50
USERS = np.array([0, 1, 2, 0, 4, 1])
POSITIVES = np.array([3, 3, 5, 7, 9, 3])
NEGATIVES = np.array([5, 8, 3, 3, 1, 8])
REGULARIZATION = [0.3, 0.2, 0.1]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _reference(model, features, model_kind, adversarial_weight=0.0, epsilon=0.0,
               item_vector_penalty=False):
    """Loss and gradients of eq. 7 for the batch, one triple at a time, in float64."""
    p_all = model.user_factors.astype(np.float64)
    q_all = model.item_factors.astype(np.float64)
    k = p_all.shape[1]
    if model_kind == "mf_bpr":
        c, projection = np.zeros((N_ITEMS, 1)), np.zeros((1, k))
    else:
        c = features.astype(np.float64) / model.feature_scale
        projection = model.feature_projection.astype(np.float64)
    vectors = q_all + c @ projection
    delta = np.zeros_like(c)
    if adversarial_weight:
        gamma = np.zeros_like(c)
        for u, i, j in zip(USERS, POSITIVES, NEGATIVES):
            weight = _sigmoid(-p_all[u] @ (vectors[i] - vectors[j]))
            gamma[i] -= weight * projection @ p_all[u]
            gamma[j] += weight * projection @ p_all[u]
        norms = np.linalg.norm(gamma, axis=1, keepdims=True)
        delta = np.divide(epsilon * gamma, norms, out=np.zeros_like(gamma), where=norms > 0)
    perturbed = vectors + delta @ projection
    g_p, g_q, g_e = np.zeros_like(p_all), np.zeros_like(q_all), np.zeros_like(projection)
    loss = 0.0
    beta_user, beta_item, beta_projection = REGULARIZATION
    for u, i, j in zip(USERS, POSITIVES, NEGATIVES):
        p = p_all[u]
        for weight, table, inputs in (
            (1.0, vectors, c),
            (adversarial_weight, perturbed, c + delta),
        ):
            x = p @ (table[i] - table[j])
            loss += weight * np.log1p(np.exp(-x))
            slope = -weight * _sigmoid(-x)
            g_p[u] += slope * (table[i] - table[j])
            g_q[i] += slope * p
            g_q[j] -= slope * p
            g_e += slope * np.outer(inputs[i] - inputs[j], p)
        g_p[u] += 2 * beta_user * p
        for item in (i, j):
            if item_vector_penalty:  # β ||q_i + E c_i||²
                g_q[item] += 2 * beta_item * vectors[item]
                g_e += 2 * beta_item * np.outer(c[item], vectors[item])
            else:
                g_q[item] += 2 * beta_item * q_all[item]
    g_e += 2 * beta_projection * projection
    return loss, g_p, g_q, g_e


def _batch_trainer(model_kind, adversary=None, epsilon=0.0, weight=1.0, item_vector_penalty=False):
    train, features = random_data(N_USERS, N_ITEMS)
    config = TrainConfig.from_params(
        {
            "model": model_kind,
            "n_factors": 4,
            "regularization": REGULARIZATION,
            "adversary": adversary,
            "epsilon": epsilon,
            "adversarial_weight": weight,
            "regularize_item_vector": item_vector_penalty,
        }
    )
    trainer = BPRTrainer(config, train, N_USERS, N_ITEMS, features)
    rng = np.random.default_rng(5)
    trainer.user_factors.assign(rng.normal(size=(N_USERS, 4)).astype(np.float32))
    if config.uses_item_factors:
        trainer.item_factors.assign(rng.normal(size=(N_ITEMS, 4)).astype(np.float32))
    if config.uses_features:
        trainer.projection.assign(rng.normal(size=(4, 8)).astype(np.float32))
    return trainer, features


@pytest.mark.parametrize("model_kind", ["mf_bpr", "duif", "vbpr"])
def test_bpr_gradients_match_closed_form(model_kind):
    trainer, features = _batch_trainer(model_kind)
    got = trainer.batch_gradients(USERS, POSITIVES, NEGATIVES)
    loss, g_p, g_q, g_e = _reference(trainer.model(), features, model_kind)
    assert got["loss"] == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(got["user_factors"], g_p, rtol=1e-4, atol=1e-5)
    if model_kind != "duif":
        np.testing.assert_allclose(got["item_factors"], g_q, rtol=1e-4, atol=1e-5)
    else:
        assert "item_factors" not in got
    if model_kind != "mf_bpr":
        np.testing.assert_allclose(got["feature_projection"], g_e, rtol=1e-4, atol=1e-5)


def test_item_vector_penalty_gradients_match_closed_form():
    trainer, features = _batch_trainer("vbpr", item_vector_penalty=True)
    got = trainer.batch_gradients(USERS, POSITIVES, NEGATIVES)
    _, g_p, g_q, g_e = _reference(trainer.model(), features, "vbpr", item_vector_penalty=True)
    np.testing.assert_allclose(got["user_factors"], g_p, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["item_factors"], g_q, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["feature_projection"], g_e, rtol=1e-4, atol=1e-5)


def test_amr_gradients_match_closed_form_with_fixed_perturbation():
    trainer, features = _batch_trainer("amr", "gradient", epsilon=0.7, weight=0.8)
    got = trainer.batch_gradients(USERS, POSITIVES, NEGATIVES)
    loss, g_p, g_q, g_e = _reference(trainer.model(), features, "amr", 0.8, 0.7)
    assert got["loss"] == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(got["user_factors"], g_p, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["item_factors"], g_q, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["feature_projection"], g_e, rtol=1e-4, atol=1e-5)


def test_negatives_are_warm_non_interacted_items():
    train, _ = random_data(N_USERS, N_ITEMS, n_pairs=600)
    sampler = NegativeSampler(train.user_id.to_numpy(), train.item_id.to_numpy(), N_ITEMS)
    positives = set(zip(train.user_id, train.item_id))
    warm = set(train.item_id)
    assert len(warm) < N_ITEMS
    for epoch in range(1, 6):
        users, items, negatives = sampler.epoch(seed=3, epoch=epoch)
        assert sorted(zip(users, items)) == sorted(positives)
        assert set(negatives) <= warm
        assert not positives & set(zip(users, negatives))
    first = sampler.epoch(seed=3, epoch=1)
    np.testing.assert_array_equal(first[2], sampler.epoch(seed=3, epoch=1)[2])
    assert not np.array_equal(first[2], sampler.epoch(seed=3, epoch=2)[2])


def test_user_with_every_item_cannot_be_sampled():
    with pytest.raises(ConfigurationError, match="every training item"):
        NegativeSampler(np.array([0, 0, 1]), np.array([0, 1, 0]), 2)


def _tables(model):
    return [model.user_factors, model.item_factors, model.feature_projection]


def _assert_same_model(first, second, atol=0.0):
    for a, b in zip(_tables(first), _tables(second)):
        if a is None:
            assert b is None
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=atol)


def _initial_vbpr(features, seed=1):
    rng = np.random.default_rng(seed)
    return FactorModel(
        truncated_normal(rng, (N_USERS, 4), 0.3),
        truncated_normal(rng, (N_ITEMS, 4), 0.3),
        truncated_normal(rng, (features.shape[1], 4), 0.3),
        feature_scale=float(np.abs(features).max()),
    )


def test_same_seed_gives_same_weights_and_fused_epoch_matches_stepwise():
    train, features = random_data(N_USERS, N_ITEMS)
    params = {"model": "amr", "n_factors": 4, "epochs": 2, "batch_size": 16, "adversary": "random",
              "learning_rate": 0.1}
    initial = _initial_vbpr(features)
    first = train_bpr(train, N_USERS, N_ITEMS, params=params, features=features, initial=initial,
                      progress=False)
    second = train_bpr(train, N_USERS, N_ITEMS, params=params, features=features, initial=initial,
                       progress=False)
    _assert_same_model(first.model, second.model)

    config = TrainConfig.from_params(params)
    fused = BPRTrainer(config, train, N_USERS, N_ITEMS, features, initial)
    stepwise = BPRTrainer(config, train, N_USERS, N_ITEMS, features, initial)
    fused.run_epoch(1)
    users, positives, negatives = stepwise.sampler.epoch(config.seed, 1)
    for batch, start in enumerate(range(0, len(users), 16)):
        part = slice(start, start + 16)
        items = stepwise._batch_items(positives[part], negatives[part])
        stepwise._step(
            tf.constant(users[part], tf.int32),
            items,
            tf.constant([config.seed * 1_000_003 + 1, batch], tf.int64),
        )
    _assert_same_model(fused.model(), stepwise.model(), atol=1e-6)


def test_amr_without_adversarial_weight_trains_exactly_like_vbpr():
    train, features = random_data(N_USERS, N_ITEMS)
    initial = _initial_vbpr(features)
    common = {"n_factors": 4, "epochs": 2, "batch_size": 16, "regularization": 0.01, "seed": 4}
    vbpr = train_bpr(train, N_USERS, N_ITEMS, params={**common, "model": "vbpr"},
                     features=features, initial=initial, progress=False)
    amr = train_bpr(train, N_USERS, N_ITEMS,
                    params={**common, "model": "amr", "adversarial_weight": 0.0, "epsilon": 1.0},
                    features=features, initial=initial, progress=False)
    _assert_same_model(vbpr.model, amr.model, atol=1e-6)
    changed = train_bpr(train, N_USERS, N_ITEMS, params={**common, "model": "amr", "epsilon": 1.0},
                        features=features, initial=initial, progress=False)
    assert not np.allclose(changed.model.user_factors, vbpr.model.user_factors, atol=1e-4)


class _Crash(Exception):
    pass


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    train, candidates, features = planted_data(n_users=40, n_items=200, n_groups=4, n_candidates=50)
    initial = FactorModel(
        np.random.default_rng(0).normal(0, 0.1, (40, 8)),
        np.random.default_rng(1).normal(0, 0.1, (200, 8)),
        np.random.default_rng(2).normal(0, 0.1, (16, 8)),
        float(np.abs(features).max()),
    )
    params = {"model": "amr", "n_factors": 8, "epochs": 4, "batch_size": 32, "adversary": "random",
              "learning_rate": 0.05, "checkpoint_every": 1}
    kwargs = dict(params=params, features=features, initial=initial,
                  validation_candidates=candidates, progress=False)
    straight = train_bpr(train, 40, 200, **kwargs)

    def crash_after_two(epoch, record):
        if epoch == 2:
            raise _Crash

    with pytest.raises(_Crash):
        train_bpr(train, 40, 200, checkpoint=tmp_path, on_epoch_end=crash_after_two, **kwargs)
    seen = []
    resumed = train_bpr(train, 40, 200, checkpoint=tmp_path,
                        on_epoch_end=lambda epoch, record: seen.append(epoch), **kwargs)
    assert seen == [3, 4]
    _assert_same_model(straight.model, resumed.model, atol=1e-6)
    assert resumed.best_epoch == straight.best_epoch
    columns = ["epoch", "loss", "hr_at_10", "ndcg_at_10"]
    pd.testing.assert_frame_equal(resumed.history[columns], straight.history[columns], atol=1e-6)

    other = {**kwargs, "params": {**params, "learning_rate": 0.5}}
    seen.clear()
    fresh = train_bpr(train, 40, 200, checkpoint=tmp_path,
                      on_epoch_end=lambda epoch, record: seen.append(epoch), **other)
    assert seen == [0, 1, 2, 3, 4], "a checkpoint of other parameters must not be resumed"
    _assert_same_model(fresh.model, train_bpr(train, 40, 200, **other).model, atol=1e-6)

    seen.clear()
    train_bpr(train, 40, 200, checkpoint=tmp_path,
              on_epoch_end=lambda epoch, record: seen.append(epoch), **other)
    assert seen == [], "the finished run is resumed, not repeated"
    features = features.copy()
    features[7, 3] += 1e-3
    changed = {**other, "features": features}
    train_bpr(train, 40, 200, checkpoint=tmp_path,
              on_epoch_end=lambda epoch, record: seen.append(epoch), **changed)
    assert seen == [0, 1, 2, 3, 4], (
        "a checkpoint trained on other image features must not be resumed")


def test_checkpoint_store_writes_atomically(tmp_path):
    store = CheckpointStore(tmp_path / "run")
    assert store.load() is None
    store.save({"a": np.arange(3), "b": np.array("x")})
    loaded = store.load()
    np.testing.assert_array_equal(loaded["a"], np.arange(3))
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["checkpoint.npz"]


def test_selection_last_keeps_the_last_epoch_and_records_the_evaluations():
    """Figure 3's continued runs: evaluated on the way, the last epoch's model returned."""
    train, candidates, features = planted_data(n_users=40, n_items=200, n_groups=4, n_candidates=50)
    settings = {"model": "vbpr", "n_factors": 8, "epochs": 4, "eval_every": 2,
                "learning_rate": 0.1, "early_stopping_patience": 1}
    last = train_bpr(train, 40, 200, features=features, validation_candidates=candidates,
                     progress=False, params={**settings, "selection_metric": "last"})
    assert last.best_epoch == 4 and last.history.epoch.tolist() == [0, 2, 4]
    assert not last.history.hr_at_10.isna().any()
    plain = train_bpr(train, 40, 200, features=features, progress=False, params=settings)
    np.testing.assert_array_equal(last.model.user_factors, plain.model.user_factors)
    summary = summarise(rank_candidates(last.model, features, candidates), (10,))
    assert summary["hr_at_10"] == pytest.approx(last.history.hr_at_10.iloc[-1])


def test_history_callback_and_best_epoch_selection():
    train, candidates, features = planted_data(n_users=40, n_items=200, n_groups=4, n_candidates=50)
    records = []
    result = train_bpr(
        train, 40, 200, features=features, validation_candidates=candidates, progress=False,
        params={"model": "vbpr", "n_factors": 8, "epochs": 5, "eval_every": 2,
                "selection_metric": "hr_at_10", "learning_rate": 0.1},
        on_epoch_end=lambda epoch, record: records.append((epoch, record)),
    )
    history = result.history
    assert list(history.columns) == ["epoch", "loss", "hr_at_10", "ndcg_at_10", "seconds"]
    assert history.epoch.tolist() == [0, 2, 4, 5] == [epoch for epoch, _ in records]
    assert np.isnan(history.loss.iloc[0]) and not np.isnan(history.hr_at_10.iloc[0])
    best_row = history.loc[history.hr_at_10.idxmax()]
    assert result.best_epoch == best_row.epoch
    summary = summarise(rank_candidates(result.model, features, candidates), (10,))
    assert summary["hr_at_10"] == pytest.approx(best_row.hr_at_10)
    cold = np.setdiff1d(np.arange(200), train.item_id)
    assert len(cold) and not result.model.item_factors[cold].any()


@pytest.mark.parametrize("model_kind", ["mf_bpr", "vbpr"])
def test_planted_structure_is_learned_well_above_chance(model_kind):
    train, candidates, features = planted_data()
    result = train_bpr(
        train, 240, 1300, features=features if model_kind == "vbpr" else None,
        validation_candidates=candidates, progress=False,
        params={"model": model_kind, "n_factors": 16, "epochs": 30, "eval_every": 10,
                "learning_rate": 0.2, "init_stddev": 0.1},
    )
    assert result.history.hr_at_10.max() > 0.3  # chance: 10 / 1000


@pytest.mark.parametrize(
    "params, message",
    [
        ({"model": "bpr"}, "model"),
        ({"learning_rate": [0.1, 0.1]}, "learning_rate"),
        ({"typo_rate": 1}, "unknown"),
        ({"model": "mf_bpr", "adversary": "gradient"}, "adversary"),
        ({"batch_size": 0}, "batch_size"),
        ({"selection_metric": "auc"}, "selection_metric"),
    ],
)
def test_bad_parameters_are_configuration_errors(params, message):
    with pytest.raises(ConfigurationError, match=message):
        TrainConfig.from_params(params)


def test_visual_model_without_features_is_refused():
    train, _ = random_data(N_USERS, N_ITEMS)
    with pytest.raises(ConfigurationError, match="features"):
        train_bpr(train, N_USERS, N_ITEMS, params={"model": "vbpr"}, progress=False)


def test_epoch_zero_is_evaluated_and_kept_when_training_only_hurts():
    """A start that is already good survives a learning rate that wrecks it (4.1.4)."""
    train, candidates, features = planted_data(n_users=40, n_items=200, n_groups=4, n_candidates=50)
    good = train_bpr(train, 40, 200, features=features, validation_candidates=candidates,
                     progress=False, params={"model": "vbpr", "n_factors": 8, "epochs": 20,
                                             "learning_rate": 0.1, "eval_every": 5})
    wrecked = train_bpr(train, 40, 200, features=features, validation_candidates=candidates,
                        initial=good.model, progress=False,
                        params={"model": "vbpr", "n_factors": 8, "epochs": 3,
                                "learning_rate": 50.0, "eval_every": 1})
    start = wrecked.history.iloc[0]
    assert start.epoch == 0
    assert start.ndcg_at_10 == pytest.approx(good.history.ndcg_at_10.max())
    assert wrecked.history.ndcg_at_10.iloc[1:].max() < start.ndcg_at_10
    assert wrecked.best_epoch == 0
    _assert_same_model(wrecked.model, good.model, atol=0)


def test_early_stopping_ends_after_patience_evaluations_without_improvement():
    train, candidates, features = planted_data(n_users=40, n_items=200, n_groups=4, n_candidates=50)
    params = {"model": "vbpr", "n_factors": 8, "epochs": 60, "learning_rate": 50.0,
              "eval_every": 1, "early_stopping_patience": 3}
    result = train_bpr(train, 40, 200, features=features, validation_candidates=candidates,
                       progress=False, params=params)
    history = result.history
    best = int(history.ndcg_at_10.idxmax())
    assert len(history) == best + 4, "stops 3 evaluations after the best one"
    assert history.epoch.max() < 60
    with pytest.raises(ConfigurationError, match="early_stopping_patience"):
        train_bpr(train, 40, 200, features=features, params={**params,
                                                             "early_stopping_patience": 0})


def test_a_reset_trainer_gives_the_weights_of_a_fresh_one():
    """The tuning grid reuses one compiled trainer per model: same numbers as a new build."""
    from amr_pipeline.recsys.train import BPRTrainer, TrainConfig, fit

    train, candidates, features = planted_data(n_users=40, n_items=200, n_groups=4, n_candidates=50)
    first = TrainConfig.from_params({"model": "amr", "n_factors": 8, "epochs": 3,
                                     "learning_rate": 0.05, "epsilon": 0.5, "seed": 1})
    second = TrainConfig.from_params({"model": "amr", "n_factors": 8, "epochs": 3,
                                      "learning_rate": [0.1, 0.01, 0.02], "regularization": 0.1,
                                      "epsilon": 2.0, "adversarial_weight": 0.3, "seed": 2})
    trainer = BPRTrainer(first, train, 40, 200, features)
    fit(trainer, features=features, validation_candidates=candidates, progress=False)
    trainer.reset(second)
    reused = fit(trainer, features=features, validation_candidates=candidates, progress=False)
    fresh = train_bpr(train, 40, 200, params=second, features=features,
                      validation_candidates=candidates, progress=False)
    _assert_same_model(reused.model, fresh.model, atol=1e-6)
    pd.testing.assert_frame_equal(reused.history.drop(columns="seconds"),
                                  fresh.history.drop(columns="seconds"))
    with pytest.raises(ConfigurationError, match="same"):
        trainer.reset(TrainConfig.from_params({"model": "amr", "n_factors": 4}))
