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
- ``recommend``: the trained ``recommend.model`` (one of MF-BPR, VBPR, AMR) used: every
  user's top-N, new item images ranked, and the MLflow model registered as
  ``recommend.registered_model_name``; also the last step of ``amr`` (same models) and
  ``__default__`` (any model).
- ``__default__``: everything but tuning, with Tables 1-2, Figure 3 and Figure 1.

``amr``, ``recommend`` and ``__default__`` are kedro-mlflow ``PipelineML`` objects (the
training pipeline bound to the recommender's inference pipeline), built last: adding a
pipeline to a ``PipelineML`` turns it back into a plain ``Pipeline``
(kedro-mlflow issue 690).

Which models there are, what each starts from, and which are tuned, replicated and attacked
comes from :mod:`amr_pipeline.models_table`.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from amr_pipeline.models_table import ATTACKED_MODELS, BPR, BY_NAME, CLOSED_FORM, MODELS, chain
from amr_pipeline.pipelines import (
    ceilings,
    data_processing,
    features,
    images,
    recommend,
    reporting,
    tuning,
)
from amr_pipeline.pipelines.evaluation import evaluation_pipeline, robustness_pipeline
from amr_pipeline.pipelines.training import (
    bpr_model_pipeline,
    closed_form_pipeline,
    continuation_pipeline,
    training_data_pipeline,
)


def _evaluated(name: str) -> Pipeline:
    model = BY_NAME[name]
    return evaluation_pipeline(name, visual=model.visual, replicated=model.replicated)


def _trained_and_evaluated(names) -> Pipeline:
    """Train (from the model each starts from, :mod:`amr_pipeline.models_table`) and evaluate
    the BPR-family models ``names``."""
    pipeline = Pipeline([])
    for name in names:
        model = BY_NAME[name]
        pipeline += bpr_model_pipeline(name, visual=model.visual,
                                       initialise_from=model.initialise_from,
                                       initial_tables=model.initial_tables)
        pipeline += _evaluated(name)
    return pipeline


def _generalisation() -> Pipeline:
    """Figure 3: each of its models trained on from the trained VBPR by the training node,
    evaluated on the test candidates, then the figure."""
    pipeline = Pipeline([])
    for name in reporting.GENERALISATION_MODELS:
        pipeline += continuation_pipeline(
            name, start="vbpr", namespace=reporting.generalisation_namespace(name),
            overrides="params:reporting.generalisation", candidates="test_candidates",
            tags=["reporting", "generalisation"])
    return pipeline + reporting.generalisation_pipeline()


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines."""
    download = images.create_pipeline()
    data = data_processing.create_pipeline(download=download)
    feature = features.create_pipeline()
    final_data = training_data_pipeline()
    amr_chain = chain("amr")  # MF-BPR -> VBPR -> AMR
    # every other BPR-family model, after the models it starts from (DUIF: MF-BPR, DUIF)
    baseline_chain = dict.fromkeys(
        name for model in MODELS if model.trainer == BPR and model.name not in amr_chain
        for name in chain(model.name)
    )
    amr = data + feature + final_data + _trained_and_evaluated(amr_chain)
    for name in ATTACKED_MODELS:
        amr += robustness_pipeline(name)
    amr += ceilings.create_pipeline() + reporting.robustness_report_pipeline()
    recommended = recommend.create_pipeline(amr_chain)
    baselines = data + feature + final_data + closed_form_pipeline()
    for model in MODELS:
        if model.trainer == CLOSED_FORM:
            baselines += _evaluated(model.name)
    baselines += _trained_and_evaluated(baseline_chain)
    return {
        "data_processing": data,
        "features": data + feature,
        "images": data.only_nodes("ingest_raw_dump") + download,
        "amr": recommend.recommend_pipeline_ml(amr + recommended),
        "baselines": baselines,
        "tuning": data + feature + tuning.create_pipeline(),
        "recommend": recommend.recommend_pipeline_ml(recommended),
        "__default__": recommend.recommend_pipeline_ml(
            amr
            + baselines
            + reporting.statistics_pipeline()
            + reporting.performance_pipeline()
            + _generalisation()
            + features.network_pipeline()
            + reporting.pixel_attack_pipeline()
            + recommend.create_pipeline(model.name for model in MODELS)
        ),
    }
