"""Use the trained model: top-N per user, new items from their image, the MLflow model."""

from .pipeline import create_pipeline, inference_pipeline, recommend_pipeline_ml

__all__ = ["create_pipeline", "inference_pipeline", "recommend_pipeline_ml"]
