"""Training: one modular template per model (namespaces mf_bpr, duif, vbpr, amr; pop, mf_eals)."""

from .pipeline import (
    bpr_model_pipeline,
    closed_form_pipeline,
    continuation_pipeline,
    training_data_pipeline,
)

__all__ = [
    "bpr_model_pipeline",
    "closed_form_pipeline",
    "continuation_pipeline",
    "training_data_pipeline",
]
