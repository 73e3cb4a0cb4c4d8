"""Wiring of the reporting pipelines."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from amr_pipeline.models_table import ATTACKED_MODELS, PAPER_MODELS

from .nodes import generalisation_curves, performance_report, pixel_attack_example
from .nodes import robustness_report, statistics_report


def performance_pipeline(models=PAPER_MODELS) -> Pipeline:
    """Table 2 from every model's test ranks."""
    inputs = {"parameters": "params:evaluation",
              "n_negatives": "params:data_processing.candidates.n_negatives",
              "items": "final_items", "train": "final_train", "ceilings": "ceilings",
              **{m: f"{m}.ranks" for m in models},
              **{f"{m}_replicates": f"{m}.replicate_ranks" for m in models}}
    return Pipeline(
        [Node(performance_report, inputs, ["performance_table", "table2_markdown"],
              name="table_2_performance")],
        tags=["reporting"],
    )


def statistics_pipeline() -> Pipeline:
    """Table 1: users, items, interactions, sparsity and the cold share of test items."""
    return Pipeline(
        [Node(statistics_report,
              ["interactions", "users", "final_items", "final_train", "test",
               "params:reporting.dataset"],
              ["dataset_statistics", "table1_markdown"], name="table_1_statistics")],
        tags=["reporting"],
    )


def robustness_report_pipeline(models=ATTACKED_MODELS) -> Pipeline:
    """Table 3 and Figures 4-5 from the attack results of VBPR and AMR."""
    inputs = (["params:reporting"] + [f"{m}.robustness" for m in models]
              + [f"{m}.robustness_ranks" for m in models])
    return Pipeline(
        [Node(robustness_report, inputs,
              ["robustness_table", "table3_markdown", "figure4_perturbation",
               "figure5_rank_change"],
              name="table_3_figures_4_5_robustness")],
        tags=["reporting", "robustness"],
    )


GENERALISATION_MODELS = ("vbpr", "amr")
"""Figure 3: VBPR continued and AMR trained from the same trained VBPR."""


def generalisation_namespace(model: str) -> str:
    """The datasets of Figure 3's run of ``model``: ``generalisation.<model>.*``."""
    return f"generalisation.{model}"


def generalisation_pipeline() -> Pipeline:
    """Figure 3 from the test curves of VBPR continued and AMR trained from the same VBPR
    (the training runs themselves: :func:`amr_pipeline.pipeline_registry` adds them)."""
    inputs = {"mf_bpr_ranks": "mf_bpr.ranks"}
    for model in GENERALISATION_MODELS:
        namespace = generalisation_namespace(model)
        inputs.update({f"{model}_history": f"{namespace}.training_history",
                       f"{model}_replicates": f"{namespace}.replicates",
                       f"{model}_curves": f"{namespace}.evaluation_curves"})
    return Pipeline(
        [Node(generalisation_curves, inputs,
              ["generalisation_curves", "figure3_generalisation", "generalisation_metrics"],
              name="figure_3_generalisation")],
        tags=["reporting", "generalisation"],
    )


def pixel_attack_pipeline() -> Pipeline:
    """Figure 1: an FGSM attack on raw pixels through ResNet-50 (``feature_extractor_network``,
    :func:`amr_pipeline.pipelines.features.network_pipeline`) and VBPR."""
    return Pipeline(
        [Node(
            pixel_attack_example,
            {
                "items": "items", "test_candidates": "test_candidates",
                "item_features": "item_features", "image_source": "image_source",
                "network": "feature_extractor_network",
                "vbpr_user_factors": "vbpr.user_factors",
                "vbpr_item_factors": "vbpr.item_factors",
                "vbpr_feature_projection": "vbpr.feature_projection",
                "feature_parameters": "params:features",
                "parameters": "params:reporting.pixel_attack",
            },
            ["figure1_pixel_attack", "pixel_attack_scores"],
            name="figure_1_pixel_attack",
        )],
        tags=["reporting"],
    )
