"""Thin Kedro pipelines over the core packages."""

from __future__ import annotations

import time

import mlflow
from mlflow.entities import Metric, Param


def mlflow_metrics(values: dict) -> dict:
    """``{name: value}`` as kedro-mlflow's metrics-history format, one value at step 0."""
    return {name: {"value": float(value), "step": 0} for name, value in values.items()}


def log_child_run(name: str, tags: dict, params: dict, values: dict,
                  histories: dict | None = None, failed: bool = False) -> None:
    """One MLflow child run under the active run of the ``kedro run`` (nothing when MLflow is
    off): ``values`` ``{key: number}`` at step 0, ``histories`` ``{key: [(step, value)]}``."""
    if mlflow.active_run() is None:
        return
    client = mlflow.MlflowClient()
    parent = mlflow.active_run().info
    child = client.create_run(parent.experiment_id, run_name=name,
                              tags={"mlflow.parentRunId": parent.run_id,
                                    **{k: str(v) for k, v in tags.items()}})
    now = int(time.time() * 1000)
    logged = [Metric(key, float(value), now, 0) for key, value in values.items()]
    for key, points in (histories or {}).items():
        logged += [Metric(key, float(value), now, int(step)) for step, value in points]
    client.log_batch(child.info.run_id, metrics=logged,
                     params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(child.info.run_id, "FAILED" if failed else "FINISHED")
