"""Wiring of the recommend pipeline and of its MLflow model.

Which model recommends is the parameter ``recommend.model``. Kedro wires datasets before it
reads parameters, so the pipeline takes the factor tables of every model it may choose from
(the models the enclosing pipeline trains: MF-BPR, VBPR and AMR in ``amr`` and ``recommend``,
all of them in ``__default__``) and :func:`nodes.prepare_recommender` picks one; the tables
are small (users x K, items x K), and a choice the pipeline cannot serve is an error naming
the ones it can.

:func:`recommend_pipeline_ml` binds a training pipeline to :func:`inference_pipeline` with
kedro-mlflow's ``pipeline_ml_factory``: at the end of the run kedro-mlflow logs the inference
pipeline as an MLflow model, with the served tables (``recommend.user_vectors``,
``recommend.item_vectors``, ``recommend.seen_items``) as its artifacts. The project hook
(:class:`amr_pipeline.hooks.MlflowRunHooks`) completes the logging arguments from the run's
parameters: the signature (:func:`model_signature`), the request parameters' defaults
(:func:`request_parameters`) and ``registered_model_name``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner
from kedro_mlflow.pipeline import pipeline_ml_factory
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from amr_pipeline.log_levels import logger_level
from amr_pipeline.models_table import BY_NAME, FACTOR_TABLES

from .nodes import (
    download_new_images,
    predict,
    prepare_recommender,
    rank_new_images,
    recommend_all,
    table_key,
)

REQUEST = "recommend.request"
PREDICTIONS = "recommend.predictions"
SERVED_TABLES = ("recommend.user_vectors", "recommend.item_vectors", "recommend.seen_items")
REQUEST_PARAMETERS = ("top_k", "exclude_seen", "unknown_users")
MODEL_NAME = "recommender"
"""The MLflow model's name in its run (``runs:/<run id>/recommender``)."""
INFERENCE_PACKAGES = ("kedro", "kedro-datasets", "kedro-mlflow", "mlflow", "numpy", "pandas",
                      "pyarrow", "threadpoolctl")
"""What the served model imports besides this project, pinned to the installed versions."""


def model_environment() -> dict:
    """``code_paths`` (this package, copied into the model, so it loads where the project is
    not installed) and ``pip_requirements`` (:data:`INFERENCE_PACKAGES` at this environment's
    versions) for ``mlflow.pyfunc.log_model``."""
    from importlib.metadata import version

    import amr_pipeline

    return {"code_paths": [str(Path(amr_pipeline.__file__).parent)],
            "pip_requirements": [f"{name}=={version(name)}" for name in INFERENCE_PACKAGES]}


def create_pipeline(models: Iterable[str] = ("mf_bpr", "vbpr", "amr")) -> Pipeline:
    """Serve ``recommend.model``, one of ``models``: its tables, every user's top-N, new
    images (a folder, and a URL list fetched into it) ranked."""
    inputs = {"users": "users", "items": "final_items", "train": "final_train",
              "item_features": "item_features", "parameters": "params:recommend"}
    for name in models:
        tables = FACTOR_TABLES if BY_NAME[name].visual else FACTOR_TABLES[:2]
        inputs.update({table_key(name, table): f"{name}.{table}" for table in tables})
    return Pipeline(
        [
            Node(prepare_recommender, inputs,
                 [*SERVED_TABLES, "recommend.projection"], name="prepare_recommender"),
            Node(recommend_all, [*SERVED_TABLES, "params:recommend"], "recommendations",
                 name="recommend_all_users"),
            Node(download_new_images,
                 ["new_image_urls", "new_image_download_folder", "new_image_downloads_previous",
                  "params:images"],
                 "new_image_downloads", name="download_new_images"),
            Node(rank_new_images,
                 ["new_images", "feature_cache", "recommend.projection",
                  "recommend.user_vectors", "recommendations", "params:features",
                  "params:recommend", "new_image_downloads"],
                 ["new_item_recommendations", "new_item_placements"], name="rank_new_images"),
        ],
        tags="recommend",
    )


def inference_pipeline() -> Pipeline:
    """``recommend.request`` (``user_raw_id``) -> ``recommend.predictions`` (``user_raw_id``,
    ``item_raw_ids``, ``scores``); ``top_k``, ``exclude_seen`` and ``unknown_users`` are
    request parameters (``params:top_k`` ...: their defaults are the run's ``recommend.top_k``
    ..., see :func:`request_parameters`)."""
    inputs = {"request": REQUEST, "user_vectors": SERVED_TABLES[0],
              "item_vectors": SERVED_TABLES[1], "seen_items": SERVED_TABLES[2]}
    inputs.update({name: f"params:{name}" for name in REQUEST_PARAMETERS})
    return Pipeline([Node(predict, inputs, PREDICTIONS, name="predict_top_n")],
                    tags="inference")


class ServingRunner(SequentialRunner):
    """Kedro's ``SequentialRunner`` with the ``kedro`` loggers at WARNING while it runs. Each
    prediction of the MLflow model is a Kedro run of one node, and formatting that run's INFO
    lines took most of a one-user request (``benchmarks/serving_latency.py``); warnings and
    errors still show."""

    def run(self, *args, **kwargs):
        with logger_level("kedro", logging.WARNING):
            return super().run(*args, **kwargs)


class FilterablePipelineML(PipelineML):
    """kedro-mlflow's ``PipelineML``, except that a run filtered to nodes that do not write
    the served tables (``kedro run --pipeline=amr --nodes=...``, ``--to-nodes``, ``--tags``)
    is a plain ``Pipeline`` that logs no model: ``PipelineML`` itself refuses such a filter
    (the inference inputs would be free), which would make those runs fail before they start.
    """

    @classmethod
    def binding(cls, bound: PipelineML, nodes=None) -> FilterablePipelineML:
        """``bound``'s binding (inference pipeline, input name, kedro-mlflow arguments) over
        ``nodes`` (default: ``bound``'s)."""
        return cls(nodes=bound.nodes if nodes is None else nodes, inference=bound.inference,
                   input_name=bound.input_name, kpm_kwargs=bound.kpm_kwargs,
                   log_model_kwargs=bound.log_model_kwargs)

    def _turn_pipeline_to_ml(self, pipeline: Pipeline):
        if not set(SERVED_TABLES) <= pipeline.all_outputs():
            return Pipeline(pipeline.nodes)
        return self.binding(self, pipeline.nodes)


def recommend_pipeline_ml(training: Pipeline) -> PipelineML:
    """``training`` (which must write the served tables) bound to :func:`inference_pipeline`
    by kedro-mlflow's ``pipeline_ml_factory``, the model run by :class:`ServingRunner`, as a
    :class:`FilterablePipelineML`: kedro-mlflow logs the model when a run of it ends. Build it
    last: ``+`` turns a ``PipelineML`` back into a plain ``Pipeline`` (kedro-mlflow issue
    690)."""
    bound = pipeline_ml_factory(training=training, inference=inference_pipeline(),
                                input_name=REQUEST, kpm_kwargs={"runner": ServingRunner()},
                                log_model_kwargs={"name": MODEL_NAME, **model_environment()})
    return FilterablePipelineML.binding(bound)


def request_parameters(parameters: dict) -> dict:
    """The served model's request parameters with their defaults from ``params:recommend``
    (the values this run's batch recommendations used)."""
    return {"top_k": int(parameters["top_k"]),
            "exclude_seen": bool(parameters.get("exclude_seen", True)),
            "unknown_users": str(parameters.get("unknown_users", "error"))}


def model_signature(parameters: dict):
    """The MLflow signature: ``user_raw_id`` in; ``user_raw_id``, ``item_raw_ids`` (list),
    ``scores`` (list) out; the request parameters with this run's values as defaults (and
    kedro-mlflow's ``runner``, by default the model's own :class:`ServingRunner`)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

    defaults = request_parameters(parameters)
    return ModelSignature(
        inputs=Schema([ColSpec("string", "user_raw_id")]),
        outputs=Schema([ColSpec("string", "user_raw_id"),
                        ColSpec(Array("string"), "item_raw_ids"),
                        ColSpec(Array("double"), "scores")]),
        params=ParamSchema([
            ParamSpec("top_k", "long", defaults["top_k"]),
            ParamSpec("exclude_seen", "boolean", defaults["exclude_seen"]),
            ParamSpec("unknown_users", "string", defaults["unknown_users"]),
            ParamSpec("runner", "string", ServingRunner.__name__),
        ]),
    )
