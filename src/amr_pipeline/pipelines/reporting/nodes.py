"""Thin nodes over :mod:`amr_pipeline.reporting` (Tables 1-3, Figures 1, 3-5)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from amr_pipeline.recsys import metrics
from amr_pipeline.recsys.stored import load_model
from amr_pipeline.reporting import figures, tables
from amr_pipeline.vision import pixel_attack


def performance_report(parameters: dict, n_negatives: int, items: pd.DataFrame,
                       train: pd.DataFrame, ceilings: pd.DataFrame | None = None,
                       **ranks: pd.DataFrame | dict):
    """Table 2 (4.2): HR/NDCG@5/10/20 per model over all, cold and warm test items (mean and
    95% interval over replicates), AMR's RI over each baseline and paired t-tests on the
    per-user values; the full-ranking metrics beside the sampled ones corrected for sampling
    (Krichene and Rendle's BV estimator with ``parameters["corrected_gamma"]``).

    ``ranks`` holds ``<model>`` (replicate 0's ranks) and ``<model>_replicates`` (the other
    replicates' ranks, as :class:`~amr_pipeline.datasets.stores.ReplicateTablesDataset`
    loads them)."""
    by_model = {}
    for model, frame in ranks.items():
        if model.endswith("_replicates"):
            continue
        others = ranks.get(f"{model}_replicates") or {}
        blocks = [frame.assign(replicate=0)] + [
            stored[f"{model}_ranks"].assign(replicate=k) for k, stored in sorted(others.items())
        ]
        by_model[model] = pd.concat(blocks, ignore_index=True)
    seen = train.groupby("user_id").size().reindex(range(int(train["user_id"].max()) + 1),
                                                  fill_value=0)
    negatives = int(np.median(len(items) - 1 - seen.to_numpy()))
    corrected = {metric: metrics.corrected_metric(metric, negatives, int(n_negatives),
                                                  parameters.get("corrected_gamma", 0.1))
                 for metric in tables.CORRECTED_METRICS}
    table = tables.performance_table(
        by_model, reference="amr", cutoffs=tuple(parameters["cutoffs"]), corrected=corrected,
        ceilings=ceilings, seed=parameters.get("bootstrap_seed", 0))
    return table.reset_index(names="model"), tables.performance_markdown(table)


def statistics_report(interactions: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame,
                      final_train: pd.DataFrame, test: pd.DataFrame, dataset: str):
    """Table 1: the dataset's size, sparsity and cold share of test items, next to the paper's."""
    statistics = tables.dataset_statistics(interactions, len(users), len(items), final_train,
                                           test)
    return (pd.DataFrame([{"dataset": dataset, **statistics}]),
            tables.statistics_markdown(statistics, dataset))


def robustness_report(parameters: dict, *tables_and_ranks: pd.DataFrame):
    """Table 3, Figure 4 (VBPR under random vs adversarial ε) and Figure 5 (per-user rank
    change at ε = 0.1 for VBPR and AMR) from the models' attack results."""
    half = len(tables_and_ranks) // 2
    robustness = pd.concat(tables_and_ranks[:half], ignore_index=True)
    per_user = pd.concat(tables_and_ranks[half:], ignore_index=True)
    table3 = tables.robustness_markdown(
        robustness, attack=parameters["table3_attack"], epsilons=parameters["table3_epsilons"]
    )
    figure4 = figures.perturbation_figure(robustness, model="vbpr",
                                          attacks=("random", parameters["table3_attack"]))
    figure5 = figures.rank_change_figure(per_user, epsilon=parameters["figure5_epsilon"],
                                         attack=parameters["table3_attack"])
    return robustness, table3, figure4, figure5


def generalisation_curves(
    mf_bpr_ranks: pd.DataFrame,
    vbpr_history: pd.DataFrame,
    amr_history: pd.DataFrame,
    vbpr_curves: dict,
    amr_curves: dict,
    vbpr_replicates: dict | None = None,
    amr_replicates: dict | None = None,
):
    """Figure 3 (4.3.1): VBPR continued and AMR trained for the same epochs from the same
    trained VBPR (by the training node), test HR@10/NDCG@10 every ``eval_every`` epochs;
    MF-BPR is the flat line. Each VBPR replicate is continued the same way, so the curves have
    a ``replicate`` column and the figure a band; MLflow gets replicate 0's
    (``<model>.test.hr_at_10`` ...)."""
    curves, logged = [], {}
    for name, history, others, metric_history in (
            ("vbpr", vbpr_history, vbpr_replicates, vbpr_curves),
            ("amr", amr_history, amr_replicates, amr_curves)):
        histories = [history] + [tables["training_history"]
                                 for _, tables in sorted((others or {}).items())]
        curves += [frame.assign(model=name, replicate=replicate)
                   for replicate, frame in enumerate(histories)]
        for key, values in metric_history.items():
            logged[f"{name}.{key.replace('validation.', 'test.')}"] = values
    curves = pd.concat(curves, ignore_index=True)
    reference = {"mf_bpr": metrics.summarise(mf_bpr_ranks, (10,))}
    return curves, figures.generalisation_figure(curves, reference), logged


def pixel_attack_example(
    items: pd.DataFrame,
    test_candidates: pd.DataFrame,
    item_features,
    image_source,
    network,
    vbpr_user_factors: pd.DataFrame,
    vbpr_item_factors: pd.DataFrame,
    vbpr_feature_projection: pd.DataFrame,
    feature_parameters: dict,
    parameters: dict,
):
    """Figure 1: one sampled user, the test positive and three non-interacted items, scored by
    VBPR before and after an FGSM perturbation of the raw pixels (ε = 0.007, pixels in [0, 1])
    back-propagated through ``network``, the ResNet-50 the features were extracted with."""
    model, features = load_model(vbpr_user_factors, vbpr_item_factors, vbpr_feature_projection,
                                 item_features, items)
    user, chosen = pixel_attack.choose_example(model, features, test_candidates,
                                               seed=parameters["seed"])
    names = items.set_index("item_id").loc[chosen, "image"]
    images = [image_source.pixels(name, feature_parameters["image_size"],
                                  feature_parameters.get("max_image_pixels"))
              for name in names]
    attack = pixel_attack.fgsm_pixel_attack(model, network, user, chosen, images,
                                            epsilon=parameters["epsilon"])
    figure = figures.pixel_attack_figure(attack.images_before, attack.images_after,
                                         attack.scores_before, attack.scores_after, attack.labels)
    summary = pd.DataFrame({
        "user_id": user, "item_id": chosen, "label": attack.labels,
        "score_before": np.asarray(attack.scores_before, float),
        "score_after": np.asarray(attack.scores_after, float),
    })
    return figure, summary
