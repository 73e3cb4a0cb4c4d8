"""fgm_train / fgsm and cold items: untouched by default (Γ = 0), moved when asked."""

import numpy as np

from amr_pipeline.recsys import robustness

from .test_robustness import N_ITEMS, _setup


def test_training_loss_attacks_leave_cold_items_unless_every_item_is_perturbed():
    model, features, train, candidates = _setup(3)
    cold = ~np.isin(np.arange(N_ITEMS), train.item_id)
    assert cold.any()
    plain = robustness._Attacker(model, features, candidates, train)
    every = robustness._Attacker(model, features, candidates, train, perturb_cold_items=True)
    for attack in ("fgm_train", "fgsm"):
        assert not plain.unit_shift(attack)[cold].any(), attack
        assert np.abs(every.unit_shift(attack)[cold]).sum(axis=1).min() > 0, attack
        np.testing.assert_array_equal(every.unit_shift(attack)[~cold],
                                      plain.unit_shift(attack)[~cold])
    # cold items follow the test-loss gradient: the same direction as fgm_test there
    np.testing.assert_allclose(every.unit_shift("fgm_train")[cold],
                               every.unit_shift("fgm_test")[cold], rtol=1e-5, atol=1e-6)
    table, _ = robustness.evaluate_attacks(model, features, candidates, train,
                                           attacks=("fgm_train",), epsilons=(0.5,),
                                           perturb_cold_items=True)
    baseline, _ = robustness.evaluate_attacks(model, features, candidates, train,
                                              attacks=("fgm_train",), epsilons=(0.5,))
    attacked = table[table.attack == "fgm_train"].iloc[0]
    assert attacked["ndcg_at_10"] <= baseline[baseline.attack == "fgm_train"].iloc[0][
        "ndcg_at_10"] + 1e-12
