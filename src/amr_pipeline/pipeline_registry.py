"""Project pipelines.

- ``data_processing``: raw dump -> split and candidates.
- ``features``: item images -> ResNet-50 features.
- ``images``: the raw dump's items -> their images downloaded from their URLs, with a status
  table (``images.download`` is off on the demo).
- ``amr``: what AMR needs (data, features, MF-BPR -> VBPR -> AMR with the selected or pinned
  settings, on the final-fit data), its evaluation, the
  robustness report (Table 3, Figures 4-5) and the ceilings (test candidates ranked by the demo
  generator's true logit and its terms; popularity only on real data).
- ``baselines``: POP, MF-eALS, MF-BPR and DUIF with their evaluation.
- ``tuning``: the paper's grid search on validation (4.1.4), writing the selected settings
  that the training pipelines read, and Figures 6-7.
- ``__default__``: everything but tuning, with Tables 1-2, Figure 3 and Figure 1.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from amr_pipeline.pipelines import (
    ceilings,
    data_processing,
    features,
    images,
    reporting,
    tuning,
)
from amr_pipeline.pipelines.evaluation import evaluation_pipeline, robustness_pipeline
from amr_pipeline.pipelines.training import (
    bpr_model_pipeline,
    closed_form_pipeline,
    training_data_pipeline,
)


def _trained_and_evaluated(model: str, *, visual: bool, **training) -> Pipeline:
    return bpr_model_pipeline(model, visual=visual, **training) + evaluation_pipeline(
        model, visual=visual
    )


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines."""
    data = data_processing.create_pipeline()
    feature = features.create_pipeline()
    final_data = training_data_pipeline()
    mf_bpr = _trained_and_evaluated("mf_bpr", visual=False)
    amr = (
        data
        + feature
        + final_data
        + mf_bpr
        + _trained_and_evaluated(
            "vbpr", visual=True, initialise_from="mf_bpr",
            initial_tables=("user_factors", "item_factors"),
        )
        + _trained_and_evaluated("amr", visual=True, initialise_from="vbpr")
        + robustness_pipeline("vbpr")
        + robustness_pipeline("amr")
        + ceilings.create_pipeline()
        + reporting.robustness_report_pipeline()
    )
    baselines = (
        data
        + feature
        + final_data
        + closed_form_pipeline()
        + evaluation_pipeline("pop", visual=False, replicated=False)
        + evaluation_pipeline("mf_eals", visual=False)
        + mf_bpr
        + _trained_and_evaluated(
            "duif", visual=True, initialise_from="mf_bpr", initial_tables=("user_factors",)
        )
    )
    return {
        "data_processing": data,
        "features": data + feature,
        "images": data.only_nodes("ingest_raw_dump") + images.create_pipeline(),
        "amr": amr,
        "baselines": baselines,
        "tuning": data + feature + tuning.create_pipeline(),
        "__default__": (
            amr
            + baselines
            + reporting.statistics_pipeline()
            + reporting.performance_pipeline()
            + reporting.generalisation_pipeline()
            + reporting.pixel_attack_pipeline()
        ),
    }
