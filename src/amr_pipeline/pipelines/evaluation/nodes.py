"""Thin nodes over :mod:`amr_pipeline.recsys.metrics`."""

from __future__ import annotations

import logging

import pandas as pd

from amr_pipeline.distributed import executor
from amr_pipeline.pipelines import log_child_run, mlflow_metrics
from amr_pipeline.recsys import metrics, robustness
from amr_pipeline.recsys.stored import load_model

logger = logging.getLogger(__name__)


def evaluate_model(
    test_candidates: pd.DataFrame,
    items: pd.DataFrame,
    user_factors: pd.DataFrame,
    item_factors: pd.DataFrame,
    parameters: dict,
    feature_projection: pd.DataFrame | None = None,
    item_features=None,
    train: pd.DataFrame | None = None,
    replicates: dict | None = None,
    model_name: str | None = None,
) -> tuple[pd.DataFrame, dict, dict]:
    """Rank every user's test item among its sampled candidates (the paper's protocol, ties
    count against it) and, when the training pairs ``train`` are given, among every item the
    user has not interacted with (``full_rank``, the full-ranking protocol), for replicate 0
    (the factor tables) and each stored replicate. Returns replicate 0's ranks, the other
    replicates' ranks (``{k: {"<model>_ranks": frame}}``) and replicate 0's HR@N/NDCG@N
    overall and over cold and warm test items, plus the full-ranking metrics, as MLflow
    metrics; each replicate is also an MLflow child run of the ``kedro run``."""
    model_name = model_name or "model"
    tables = {0: {"user_factors": user_factors, "item_factors": item_factors,
                  "feature_projection": feature_projection}}
    tables.update(replicates or {})
    cold = items.sort_values("item_id")["cold"].to_numpy(bool)
    features = None
    cutoffs = tuple(parameters["cutoffs"])
    ranked, logged = {}, {}
    for replicate, frames in sorted(tables.items()):
        model, features = load_model(frames["user_factors"], frames["item_factors"],
                                     frames.get("feature_projection"), item_features, items,
                                     features)
        vectors = model.item_vectors(features)
        ranks = metrics.rank_candidates(model, features, test_candidates, cold_items=cold)
        if train is not None:
            ranks["full_rank"] = metrics.full_ranks(model, None, ranks, train,
                                                    item_vectors=vectors)
        summary = _summary(ranks, cutoffs)
        ranked[replicate] = ranks
        log_child_run(f"{model_name} replicate {replicate}",
                      {"model": model_name, "replicate": replicate},
                      {"model": model_name, "replicate": replicate}, summary)
        if replicate == 0:
            logged = summary
    logger.info("%s: test HR@10 %.4f, NDCG@10 %.4f over %d users (replicate 0 of %d).",
                model_name, logged.get("hr_at_10", float("nan")),
                logged.get("ndcg_at_10", float("nan")), len(ranked[0]), len(ranked))
    others = {k: {f"{model_name}_ranks": frame} for k, frame in ranked.items() if k}
    return ranked[0], others, mlflow_metrics(logged)


def _summary(ranks: pd.DataFrame, cutoffs: tuple[int, ...]) -> dict:
    """HR@N/NDCG@N over all, cold and warm test items; full-ranking metrics if ranked."""
    summary = metrics.summarise(ranks, cutoffs)
    for subset, mask in (("cold", ranks["cold"]), ("warm", ~ranks["cold"])):
        if mask.any():
            summary.update({f"{subset}.{k}": v
                            for k, v in metrics.summarise(ranks[mask], cutoffs).items()})
    if "full_rank" in ranks:
        summary.update({name: float(values.mean()) for name, values in
                        metrics.full_metrics(ranks["full_rank"].to_numpy()).items()})
    return summary


def evaluate_robustness(
    test_candidates: pd.DataFrame,
    train: pd.DataFrame,
    items: pd.DataFrame,
    user_factors: pd.DataFrame,
    item_factors: pd.DataFrame,
    feature_projection: pd.DataFrame,
    item_features,
    parameters: dict,
    model_name: str,
    replicates: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Re-rank the test candidates with every item's (scaled) features perturbed by ||Δ_i|| = ε
    under each attack (paper 4.3.2), plus the certified worst case, for replicate 0 and, with
    the attacks in ``parameters["replicate_attacks"]`` (default: all), every other replicate;
    returns the table (a ``replicate`` column), replicate 0's per-user ranks and its MLflow
    metrics ``robust.<attack>.eps_<ε>.<metric>``. The grid runs in this process or on Ray
    (``parameters["executor"]``: ``local``, ``ray``), with the same results."""
    features = None
    cold = items.sort_values("item_id")["cold"].to_numpy(bool)
    tables = {0: {"user_factors": user_factors, "item_factors": item_factors,
                  "feature_projection": feature_projection}}
    tables.update(replicates or {})
    grid, per_user = [], None
    for replicate, frames in sorted(tables.items()):
        model, features = load_model(frames["user_factors"], frames["item_factors"],
                                     frames["feature_projection"], item_features, items,
                                     features)
        attacks = parameters["attacks"] if replicate == 0 else parameters.get(
            "replicate_attacks", parameters["attacks"])
        table, ranks = robustness.evaluate_attacks(
            model,
            features,
            test_candidates,
            train,
            attacks=attacks,
            epsilons=parameters["epsilons"],
            cutoffs=parameters["cutoffs"],
            seed=parameters["seed"],
            pgd_steps=parameters["pgd_steps"],
            pgd_step_size=parameters.get("pgd_step_size"),
            cold_items=cold,
            executor=executor(parameters.get("executor", "local"), "robustness.executor"),
            perturb_cold_items=parameters.get("perturb_cold_items", False),
        )
        table.insert(0, "replicate", replicate)
        grid.append(table)
        if replicate == 0:
            per_user = ranks
    table = pd.concat(grid, ignore_index=True)
    table.insert(0, "model", model_name)
    per_user.insert(0, "model", model_name)
    metric_columns = [c for c in table.columns if c.startswith(("hr_at_", "ndcg_at_"))]
    attacked = table[(table["attack"] != "none") & (table["replicate"] == 0)]
    logged = {f"robust.{row.attack}.eps_{row.epsilon:g}.{column}": getattr(row, column)
              for row in attacked.itertuples(index=False) for column in metric_columns}
    return table, per_user, mlflow_metrics(logged)
