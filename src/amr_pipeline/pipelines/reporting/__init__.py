"""Reporting: the paper's tables and figures (Tables 2-3, Figures 1, 3, 4, 5)."""

from .pipeline import generalisation_pipeline, performance_pipeline, pixel_attack_pipeline
from .pipeline import robustness_report_pipeline, statistics_pipeline

__all__ = [
    "generalisation_pipeline",
    "performance_pipeline",
    "pixel_attack_pipeline",
    "robustness_report_pipeline",
    "statistics_pipeline",
]
