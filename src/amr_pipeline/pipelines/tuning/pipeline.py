"""Wiring of the tuning pipeline: MF-BPR -> DUIF / VBPR -> AMR, MF-eALS, then the selected
settings file (``selected_parameters``) that the training pipelines read, and Figures 6-7."""

from __future__ import annotations

from functools import partial

from kedro.pipeline import Node, Pipeline

from amr_pipeline.models_table import BPR, BY_NAME, TUNED_MODELS

from .nodes import (
    all_trials,
    hyper_parameter_figures,
    select_parameters,
    tune_amr,
    tune_bpr_model,
    tune_mf_eals,
)

_DATA = {"train": "train", "users": "users", "items": "items",
         "validation_candidates": "validation_candidates", "tuning_params": "params:tuning"}


def create_pipeline(**kwargs) -> Pipeline:
    def bpr(model, **extra):
        return Node(
            partial(tune_bpr_model, model=model),
            {**_DATA, "parameters": f"params:training.{model}", **extra},
            [f"{model}.tuning_trials", f"{model}.tuned_model", f"{model}.selected"],
            name=f"tune_{model}", namespace=model, tags=["tuning", model],
        )

    visual = {"item_features": "item_features"}
    # the BPR family but AMR, whose tuning follows its own protocol (tune_amr, from VBPR)
    chained = []
    for name in TUNED_MODELS:
        model = BY_NAME[name]
        if model.trainer != BPR or name == "amr":
            continue
        start = ({"initial_model": f"{model.initialise_from}.tuned_model"}
                 if model.initialise_from else {})
        chained.append(bpr(name, **start, **(visual if model.visual else {})))
    return Pipeline([
        *chained,
        Node(tune_amr,
             {**_DATA, "test_candidates": "test_candidates", **visual,
              "parameters": "params:training.amr", "vbpr_model": "vbpr.tuned_model",
              "vbpr_setting": "vbpr.selected"},
             ["amr.tuning_trials", "amr.selected"], name="tune_amr", namespace="amr",
             tags=["tuning", "amr"]),
        Node(tune_mf_eals, {**_DATA, "parameters": "params:training.mf_eals"},
             ["mf_eals.tuning_trials", "mf_eals.selected"], name="tune_mf_eals",
             namespace="mf_eals", tags=["tuning", "mf_eals"]),
        Node(select_parameters,
             {"tuning_params": "params:tuning",
              **{m: f"{m}.selected" for m in TUNED_MODELS}},
             ["selected_parameters", "tuning_metrics"], name="select_parameters",
             tags=["tuning"]),
        Node(all_trials, [f"{m}.tuning_trials" for m in TUNED_MODELS],
             "tuning_trials", name="collect_tuning_trials", tags=["tuning"]),
        Node(hyper_parameter_figures, "amr.tuning_trials",
             ["figure6_epsilon", "figure7_adversarial_weight"], name="figures_6_7_rq3",
             tags=["tuning", "reporting"]),
    ])
