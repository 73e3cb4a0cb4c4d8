"""Project hooks: MLflow run tags, a run that survives an unwritable tracking store, and the
Ray connection for the steps that run on Ray.

kedro-mlflow opens one MLflow run per ``kedro run``. These hooks tag it with the dataset (the
environment's ``globals.dataset``), the pipeline and the git commit. If the tracking store
cannot be written, they say so once, switch MLflow logging off for this run, and let every
node still write its outputs to ``data/``.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

MLFLOW_PLUGIN = "kedro-mlflow"
RAY_EXECUTORS = ("features.executor", "robustness.executor", "images.executor",
                 "recommend.executor")


class MlflowRunHooks:
    """kedro-mlflow's hook behind a check of the tracking store, plus run tags.

    ``settings.DISABLE_HOOKS_FOR_PLUGINS`` keeps kedro-mlflow from registering its hook itself;
    this class forwards every hook to it once the store is known to be writable, so an
    unwritable store never reaches MLflow's own setup.
    """

    def __init__(self) -> None:
        self._tags: dict[str, str] = {}
        self._mlflow = None

    @hook_impl
    def after_context_created(self, context) -> None:
        from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

        settings = _mlflow_settings(context)
        uri = settings.get("server", {}).get("mlflow_tracking_uri") or "sqlite:///mlflow.db"
        problem = tracking_store_problem(uri, Path(context.project_path))
        self._tags = {
            "dataset": str(_globals(context).get("dataset", context.env or "")),
            "environment": str(context.env or "local"),
            "git_commit": _git_commit(Path(context.project_path)),
        }
        if problem:
            self._mlflow = None
            logger.error(
                "MLflow tracking store %s cannot be written (%s): this run is NOT tracked in "
                "MLflow. Models and reports are still written to data/. Fix the path or "
                "permissions of mlflow_tracking_uri in conf/base/mlflow.yml.",
                uri, problem,
            )
            return
        self._mlflow = MlflowHook()
        self._mlflow.after_context_created(context)

    @hook_impl
    def after_catalog_created(self, catalog, conf_catalog, conf_creds, parameters, save_version,
                              load_versions) -> None:
        if self._mlflow is not None:
            self._mlflow.after_catalog_created(catalog, conf_catalog, conf_creds, parameters,
                                               save_version, load_versions)

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        if self._mlflow is None:
            for name in pipeline.datasets():
                dataset = catalog.get(name)
                if type(dataset).__name__.startswith("Mlflow"):
                    dataset._logging_activated = False
            return
        self._mlflow.before_pipeline_run(run_params, pipeline, catalog)
        if mlflow.active_run() is not None:
            pipelines = run_params.get("pipeline_names") or run_params.get("pipeline_name")
            if isinstance(pipelines, (list, tuple)):
                pipelines = "+".join(pipelines)
            mlflow.set_tags({**self._tags, "pipeline": pipelines or "__default__"})

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async) -> None:
        if self._mlflow is not None:
            self._mlflow.before_node_run(node, catalog, inputs, is_async)

    @hook_impl
    def after_pipeline_run(self, run_params, pipeline, catalog) -> None:
        if self._mlflow is not None:
            pipeline = configure_logged_model(pipeline, catalog)
            self._mlflow.after_pipeline_run(run_params, pipeline, catalog)

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        if self._mlflow is not None:
            self._mlflow.on_pipeline_error(error, run_params, pipeline, catalog)


def configure_logged_model(pipeline, catalog):
    """The pipeline kedro-mlflow is told ran. A ``PipelineML`` (the recommender bound to its
    training pipeline) gets the model's signature and its request parameters
    (``params:top_k``, ``params:exclude_seen``, ``params:unknown_users``) with this run's
    ``recommend.*`` values as defaults, and the registered model name, all from
    ``params:recommend``, and two of its users as the input example: kedro-mlflow then logs
    and registers it. (A run filtered to nodes that do not write the recommender's
    tables is a plain ``Pipeline``: see ``pipelines.recommend.FilterablePipelineML``.)"""
    from kedro_mlflow.pipeline.pipeline_ml import PipelineML

    if not isinstance(pipeline, PipelineML):
        return pipeline
    from amr_pipeline.pipelines.recommend.pipeline import (
        SERVED_TABLES,
        model_signature,
        request_parameters,
    )

    parameters = catalog.load("params:recommend")
    for name, value in request_parameters(parameters).items():
        catalog[f"params:{name}"] = value  # the served defaults (request: {"params": {...}})
    pipeline.log_model_kwargs["signature"] = model_signature(parameters)
    users = catalog.load(SERVED_TABLES[0])["user_raw_id"].astype(str)
    pipeline.log_model_kwargs["input_example"] = users.head(2).to_frame()
    if parameters.get("registered_model_name"):
        pipeline.log_model_kwargs["registered_model_name"] = parameters["registered_model_name"]
    return pipeline


class RayHooks:
    """Connects to Ray once per run, from ``conf/<env>/ray.yml``, when a step runs on Ray.

    Kedro's pattern for a Spark session: ``after_context_created`` reads the configuration
    and opens the connection before any node runs. Nothing happens (Ray is not even
    imported) unless one of :data:`RAY_EXECUTORS` is ``ray``.
    """

    @hook_impl
    def after_context_created(self, context) -> None:
        users = [name for name in RAY_EXECUTORS if _parameter(context.params, name) == "ray"]
        if not users:
            return
        from amr_pipeline.distributed import connect

        try:
            settings = dict(context.config_loader["ray"])
        except Exception:  # noqa: BLE001 - no ray.yml: the defaults (a local Ray)
            settings = {}
        logger.info("Ray is used by %s", ", ".join(users))
        connect(settings, source=f"conf/{context.env or 'base'}/ray.yml")


def _parameter(parameters: dict, dotted: str):
    value = parameters
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def tracking_store_problem(uri: str, project_path: Path) -> str | None:
    """Why the tracking store at ``uri`` cannot be written, or None when it can."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    location = uri.split("sqlite:///", 1)[-1]
    path = Path(location) if Path(location).is_absolute() else project_path / location
    if not path.parent.is_dir():
        return f"folder {path.parent} does not exist"
    try:
        connection = sqlite3.connect(path, timeout=5)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.Error as error:
        return str(error)
    return None


def _mlflow_settings(context) -> dict:
    try:
        return dict(context.config_loader["mlflow"])
    except Exception:  # noqa: BLE001 - missing mlflow.yml means kedro-mlflow defaults
        return {}


def _globals(context) -> dict:
    try:
        return dict(context.config_loader["globals"])
    except Exception:  # noqa: BLE001 - an environment without globals
        return {}


def _git_commit(project_path: Path) -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_path, capture_output=True, text=True,
            timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip()
