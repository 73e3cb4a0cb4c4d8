"""Modular training templates, instantiated once per model with its namespace.

A model's factor tables are datasets ``<model>.user_factors``, ``<model>.item_factors`` and,
for visual models, ``<model>.feature_projection``; an initialisation chain (MF-BPR -> VBPR ->
AMR) is an edge from one model's tables to the next one's node, visible in kedro-viz.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from amr_pipeline.models_table import FACTOR_TABLES, TUNED_MODELS

from .nodes import (
    final_training_data,
    fit_eals,
    fit_popularity,
    resolve_settings,
    train_model,
)


def training_data_pipeline() -> Pipeline:
    """The final models' settings (tuned or pinned) and training data (train, or train +
    validation as in the paper's final fit)."""
    return Pipeline(
        [
            Node(resolve_settings,
                 ["params:training", "selected_parameters", "params:tuning.use_selected"],
                 {model: f"{model}.settings" for model in TUNED_MODELS},
                 name="resolve_training_settings"),
            Node(final_training_data,
                 ["train", "validation", "items", "validation_candidates", "params:final_fit"],
                 ["final_train", "final_items", "selection_candidates"],
                 name="final_training_data"),
        ],
        tags=["training"],
    )


def bpr_model_pipeline(model: str, *, visual: bool, initialise_from: str | None = None,
                       initial_tables: tuple[str, ...] = FACTOR_TABLES) -> Pipeline:
    """Train one BPR-family model (MF-BPR, DUIF, VBPR, AMR) under the namespace ``model``."""
    inputs = {
        "train": "final_train",
        "users": "users",
        "items": "final_items",
        "validation_candidates": "selection_candidates",
        "parameters": f"{model}.settings",
        "checkpoint": f"{model}.checkpoint",
        "replicates": "params:replicates",
    }
    if visual:
        inputs["item_features"] = "item_features"
    if initialise_from:
        for table in initial_tables:
            inputs[f"initial_{table}"] = f"{initialise_from}.{table}"
        inputs["initial_replicates"] = f"{initialise_from}.replicates"
    outputs = {table: f"{model}.{table}" for table in FACTOR_TABLES[: 3 if visual else 2]}
    outputs["history"] = f"{model}.training_history"
    outputs["history_metrics"] = f"{model}.training_curves"
    outputs["replicates"] = f"{model}.replicates"
    return Pipeline(
        [Node(train_model, inputs, outputs, name=f"train_{model}", namespace=model)],
        tags=["training", model],
    )


def closed_form_pipeline() -> Pipeline:
    """POP and MF-eALS: fitted without sampling, same factor-table outputs."""
    return Pipeline(
        [
            Node(
                fit_popularity,
                ["final_train", "users", "final_items"],
                {"user_factors": "pop.user_factors", "item_factors": "pop.item_factors"},
                name="fit_pop",
                namespace="pop",
                tags=["training", "pop"],
            ),
            Node(
                fit_eals,
                ["final_train", "users", "final_items", "selection_candidates",
                 "mf_eals.settings", "params:replicates"],
                {
                    "user_factors": "mf_eals.user_factors",
                    "item_factors": "mf_eals.item_factors",
                    "history": "mf_eals.training_history",
                    "history_metrics": "mf_eals.training_curves",
                    "replicates": "mf_eals.replicates",
                },
                name="fit_mf_eals",
                namespace="mf_eals",
                tags=["training", "mf_eals"],
            ),
        ]
    )
