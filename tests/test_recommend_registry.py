"""The pipelines that log the recommender keep kedro-mlflow's binding (a ``PipelineML``, not
demoted by ``+``, kedro-mlflow issue 690), and the hook completes or withholds the model."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from amr_pipeline.hooks import configure_logged_model
from amr_pipeline.pipeline_registry import register_pipelines
from amr_pipeline.pipelines.recommend.pipeline import (
    PREDICTIONS,
    REQUEST,
    SERVED_TABLES,
    ServingRunner,
)

PARAMETERS = {"model": "amr", "top_k": 5, "top_users": 3, "exclude_seen": False,
              "unknown_users": "popular", "registered_model_name": "my-recommender"}


@pytest.fixture(scope="module")
def pipelines():
    return register_pipelines()


@pytest.mark.parametrize("name", ["amr", "recommend", "__default__"])
def test_pipelines_that_recommend_are_bound_to_the_inference_pipeline(pipelines, name):
    pipeline = pipelines[name]
    assert isinstance(pipeline, PipelineML)
    assert pipeline.input_name == REQUEST
    assert pipeline.inference.outputs() == {PREDICTIONS}
    assert set(SERVED_TABLES) <= pipeline.all_outputs()
    assert "recommendations" in pipeline.all_outputs()
    assert isinstance(pipeline.kpm_kwargs["runner"], ServingRunner)


def test_the_hook_sets_signature_and_registered_name_from_the_parameters(pipelines):
    users = pd.DataFrame({"user_id": [0, 1, 2], "user_raw_id": ["b7", "b3", "b9"], "f0": 0.5})
    catalog = DataCatalog({"params:recommend": MemoryDataset(PARAMETERS),
                           SERVED_TABLES[0]: MemoryDataset(users)})
    pipeline = configure_logged_model(pipelines["recommend"], catalog)
    assert pipeline.log_model_kwargs["input_example"]["user_raw_id"].tolist() == ["b7", "b3"]
    assert isinstance(pipeline, PipelineML)
    assert pipeline.log_model_kwargs["registered_model_name"] == "my-recommender"
    signature = pipeline.log_model_kwargs["signature"]
    defaults = {spec.name: spec.default for spec in signature.params}
    assert defaults["top_k"] == 5 and defaults["exclude_seen"] is False
    assert defaults["unknown_users"] == "popular"
    # the inference pipeline's request parameters get the same defaults from the catalog
    assert {name: catalog.load(name) for name in pipeline.inference.inputs()
            if name.startswith("params:")} == {"params:top_k": 5, "params:exclude_seen": False,
                                               "params:unknown_users": "popular"}
    assert signature.inputs.input_names() == ["user_raw_id"]
    assert signature.outputs.input_names() == ["user_raw_id", "item_raw_ids", "scores"]


def test_a_run_filtered_to_other_nodes_is_a_plain_pipeline_and_logs_no_model(pipelines):
    for name in ("amr", "__default__"):
        filtered = pipelines[name].filter(tags=["features"])
        assert type(filtered) is Pipeline and filtered.nodes
        assert configure_logged_model(filtered, DataCatalog()) is filtered
    whole = pipelines["amr"].filter()
    assert isinstance(whole, PipelineML) and whole.nodes == pipelines["amr"].nodes
    downstream = pipelines["amr"].filter(from_nodes=["prepare_recommender"])
    assert isinstance(downstream, PipelineML)
