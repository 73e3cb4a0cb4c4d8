"""Project pipelines.

- ``data_processing``: raw dump -> split and candidates.
- ``features``: item images -> ResNet-50 features.
- ``amr``: what AMR needs (data, features, MF-BPR -> VBPR -> AMR), its evaluation and the
  robustness report (Table 3, Figures 4-5).
- ``baselines``: POP, MF-eALS, MF-BPR and DUIF with their evaluation.
- ``__default__``: everything, with Table 2, Figure 3 and Figure 1.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from amr_pipeline.pipelines import data_processing, features
from amr_pipeline.pipelines import reporting
from amr_pipeline.pipelines.evaluation import evaluation_pipeline, robustness_pipeline
from amr_pipeline.pipelines.training import bpr_model_pipeline, closed_form_pipeline


def _trained_and_evaluated(model: str, *, visual: bool, **training) -> Pipeline:
    return bpr_model_pipeline(model, visual=visual, **training) + evaluation_pipeline(
        model, visual=visual
    )


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines."""
    data = data_processing.create_pipeline()
    feature = features.create_pipeline()
    mf_bpr = _trained_and_evaluated("mf_bpr", visual=False)
    amr = (
        data
        + feature
        + mf_bpr
        + _trained_and_evaluated(
            "vbpr", visual=True, initialise_from="mf_bpr",
            initial_tables=("user_factors", "item_factors"),
        )
        + _trained_and_evaluated("amr", visual=True, initialise_from="vbpr")
        + robustness_pipeline("vbpr")
        + robustness_pipeline("amr")
        + reporting.robustness_report_pipeline()
    )
    baselines = (
        data
        + feature
        + closed_form_pipeline()
        + evaluation_pipeline("pop", visual=False)
        + evaluation_pipeline("mf_eals", visual=False)
        + mf_bpr
        + _trained_and_evaluated(
            "duif", visual=True, initialise_from="mf_bpr", initial_tables=("user_factors",)
        )
    )
    return {
        "data_processing": data,
        "features": data + feature,
        "amr": amr,
        "baselines": baselines,
        "__default__": (
            amr
            + baselines
            + reporting.performance_pipeline()
            + reporting.generalisation_pipeline()
            + reporting.pixel_attack_pipeline()
        ),
    }
