"""Reporting: the paper's tables and figures (Tables 1-3, Figures 1, 3, 4, 5)."""

from .pipeline import (
    GENERALISATION_MODELS,
    generalisation_namespace,
    generalisation_pipeline,
    performance_pipeline,
    pixel_attack_pipeline,
    robustness_report_pipeline,
    statistics_pipeline,
)

__all__ = [
    "GENERALISATION_MODELS",
    "generalisation_namespace",
    "generalisation_pipeline",
    "performance_pipeline",
    "pixel_attack_pipeline",
    "robustness_report_pipeline",
    "statistics_pipeline",
]
