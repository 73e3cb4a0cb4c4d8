"""Modular training templates, instantiated once per model with its namespace.

A model's factor tables are datasets ``<model>.user_factors``, ``<model>.item_factors`` and,
for visual models, ``<model>.feature_projection``; an initialisation chain (MF-BPR -> VBPR ->
AMR) is an edge from one model's tables to the next one's node, visible in kedro-viz.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from amr_pipeline.models_table import BY_NAME, FACTOR_TABLES, TUNED_MODELS

from .nodes import (
    continued_settings,
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


def _bpr_template(model: str, *, visual: bool, initial_tables: tuple[str, ...] = ()) -> Pipeline:
    """One BPR-family training node with unprefixed dataset names: ``settings``,
    ``checkpoint``, the model's tables out, ``initial_<table>`` in (the model it starts
    from); :func:`bpr_model_pipeline` gives it a namespace and the shared inputs."""
    inputs = {
        "train": "train",
        "users": "users",
        "items": "items",
        "validation_candidates": "validation_candidates",
        "parameters": "settings",
        "checkpoint": "checkpoint",
        "replicates": "params:replicates",
    }
    if visual:
        inputs["item_features"] = "item_features"
    for table in initial_tables:
        inputs[f"initial_{table}"] = f"initial_{table}"
    if initial_tables:
        inputs["initial_replicates"] = "initial_replicates"
    outputs = {table: table for table in FACTOR_TABLES[: 3 if visual else 2]}
    outputs.update(history="training_history", history_metrics="training_curves",
                   replicates="replicates")
    return Pipeline([Node(train_model, inputs, outputs, name=f"train_{model}")])


def bpr_model_pipeline(model: str, *, visual: bool, initialise_from: str | None = None,
                       initial_tables: tuple[str, ...] = FACTOR_TABLES,
                       namespace: str | None = None,
                       validation_candidates: str = "selection_candidates",
                       outputs: dict[str, str] | None = None,
                       tags=None) -> Pipeline:
    """Train one BPR-family model (MF-BPR, DUIF, VBPR, AMR): the template under the namespace
    ``model`` (or ``namespace``), so its datasets are ``<model>.settings``,
    ``<model>.user_factors`` ...; ``initialise_from`` names the model whose
    ``initial_tables`` it starts from."""
    inputs = {"train": "final_train", "users": "users", "items": "final_items",
              "validation_candidates": validation_candidates}
    if visual:
        inputs["item_features"] = "item_features"
    initial_tables = initial_tables if initialise_from else ()
    for table in initial_tables:
        inputs[f"initial_{table}"] = f"{initialise_from}.{table}"
    if initialise_from:
        inputs["initial_replicates"] = f"{initialise_from}.replicates"
    return Pipeline(
        _bpr_template(model, visual=visual, initial_tables=initial_tables),
        namespace=namespace or model, inputs=inputs, outputs=outputs,
        parameters={"params:replicates"}, tags=tags or ["training", model],
    )


def continuation_pipeline(model: str, *, start: str, namespace: str, overrides: str,
                          candidates: str, tags) -> Pipeline:
    """``model`` (its settings, with ``overrides`` on top: :func:`continued_settings`) trained
    by the same node as :func:`bpr_model_pipeline` from all of ``start``'s tables, evaluated on
    ``candidates``; its datasets are ``<namespace>.settings``, ``<namespace>.training_history``
    ... Figure 3 (4.3.1) continues VBPR and trains AMR this way from the same VBPR."""
    settings = Node(continued_settings, [f"{model}.settings", overrides],
                    f"{namespace}.settings", name="continued_settings", namespace=namespace)
    visual = BY_NAME[model].visual
    return Pipeline([settings], tags=tags) + bpr_model_pipeline(
        model, visual=visual, initialise_from=start,
        initial_tables=FACTOR_TABLES[: 3 if visual else 2], namespace=namespace,
        validation_candidates=candidates, tags=tags,
        # the curves are on ``candidates``: the report logs them under their own name
        outputs={"training_curves": f"{namespace}.evaluation_curves"})


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
