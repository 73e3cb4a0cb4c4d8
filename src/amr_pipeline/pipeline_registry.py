"""Project pipelines: data_processing, features, amr, baselines and __default__ (everything)."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from amr_pipeline.pipelines import data_processing


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines."""
    data = data_processing.create_pipeline()
    return {
        "data_processing": data,
        "amr": data,
        "__default__": data,
    }
