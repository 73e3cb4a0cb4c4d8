"""Tuning: the paper's hyper-parameter protocol (4.1.4) on the validation interaction."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
