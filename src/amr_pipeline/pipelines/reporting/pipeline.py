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


def generalisation_pipeline() -> Pipeline:
    """Figure 3: continued VBPR vs AMR from the same trained VBPR."""
    return Pipeline(
        [Node(
            generalisation_curves,
            {
                "train": "final_train", "users": "users", "items": "final_items",
                "test_candidates": "test_candidates", "item_features": "item_features",
                "vbpr_user_factors": "vbpr.user_factors",
                "vbpr_item_factors": "vbpr.item_factors",
                "vbpr_feature_projection": "vbpr.feature_projection",
                "vbpr_replicates": "vbpr.replicates",
                "mf_bpr_ranks": "mf_bpr.ranks",
                "vbpr_parameters": "vbpr.settings",
                "amr_parameters": "amr.settings",
                "parameters": "params:reporting.generalisation",
            },
            ["generalisation_curves", "figure3_generalisation", "generalisation_metrics"],
            name="figure_3_generalisation",
        )],
        tags=["reporting"],
    )


def pixel_attack_pipeline() -> Pipeline:
    """Figure 1: an FGSM attack on raw pixels through ResNet-50 and VBPR."""
    return Pipeline(
        [Node(
            pixel_attack_example,
            {
                "items": "items", "test_candidates": "test_candidates",
                "item_features": "item_features", "image_source": "image_source",
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
