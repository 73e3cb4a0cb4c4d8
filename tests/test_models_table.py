"""The pipelines are built from the table of models (amr_pipeline.models_table)."""

import pytest

from amr_pipeline import models_table
from amr_pipeline.models_table import BY_NAME, MODELS


@pytest.fixture(scope="module")
def registered():
    from amr_pipeline.pipeline_registry import register_pipelines

    return register_pipelines()


def _nodes(pipeline):
    return {node.name: node for node in pipeline.nodes}


def test_the_table_is_the_papers_models():
    assert models_table.PAPER_MODELS == ("pop", "mf_eals", "mf_bpr", "duif", "vbpr", "amr")
    assert models_table.TUNED_MODELS == ("mf_bpr", "duif", "vbpr", "amr", "mf_eals")
    assert models_table.chain("amr") == ("mf_bpr", "vbpr", "amr")
    for model in MODELS:
        assert model.initialise_from is None or model.initialise_from in BY_NAME


def test_every_model_is_evaluated_as_the_table_says(registered):
    nodes = _nodes(registered["__default__"])
    for model in MODELS:
        evaluation = nodes[f"{model.name}.evaluate_{model.name}"]
        inputs = set(evaluation.inputs)
        assert (f"{model.name}.feature_projection" in inputs) == model.visual
        assert (f"{model.name}.replicates" in inputs) == model.replicated
        assert (f"{model.name}.attack_{model.name}" in nodes) == model.attacked


def test_bpr_models_start_from_the_models_the_table_names(registered):
    nodes = _nodes(registered["__default__"])
    for model in MODELS:
        if model.trainer != models_table.BPR:
            continue
        inputs = set(nodes[f"{model.name}.train_{model.name}"].inputs)
        assert ("item_features" in inputs) == model.visual
        starts = {name.split(".")[0] for name in inputs if name.startswith(tuple(BY_NAME))}
        assert starts - {model.name} == ({model.initialise_from} if model.initialise_from
                                         else set())
        if model.initialise_from:
            assert {f"{model.initialise_from}.{t}" for t in model.initial_tables} <= inputs


def test_tuned_models_have_settings_and_a_tuning_node(registered):
    settings = set(_nodes(registered["__default__"])["resolve_training_settings"].outputs)
    assert settings == {f"{name}.settings" for name in models_table.TUNED_MODELS}
    tuning = {node.namespace for node in registered["tuning"].nodes if node.namespace}
    assert tuning == set(models_table.TUNED_MODELS)
