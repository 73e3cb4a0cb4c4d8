"""Evaluation: rank each model's test candidates; HR and NDCG at 5, 10, 20 (paper 4.1.2)."""

from .pipeline import evaluation_pipeline, robustness_pipeline

__all__ = ["evaluation_pipeline", "robustness_pipeline"]
