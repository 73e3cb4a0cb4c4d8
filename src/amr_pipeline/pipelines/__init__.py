"""Thin Kedro pipelines over the core packages."""


def mlflow_metrics(values: dict) -> dict:
    """``{name: value}`` as kedro-mlflow's metrics-history format, one value at step 0."""
    return {name: {"value": float(value), "step": 0} for name, value in values.items()}
