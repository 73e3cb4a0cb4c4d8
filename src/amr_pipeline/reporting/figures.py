"""Figures 1 and 3-5 of the paper as ``matplotlib.figure.Figure`` objects (no pyplot state,
so any backend, Agg included, can save them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.reporting import intervals
from amr_pipeline.reporting.tables import MODEL_NAMES, label

ATTACK_NAMES = {"random": "rand", "fgm_train": "grad", "fgm_test": "grad-test", "fgsm": "sign",
                "pgd": "pgd", "certified": "certified"}


def _name(model: str) -> str:
    return MODEL_NAMES.get(model, model)


def _require(frame: pd.DataFrame, columns: set[str], what: str):
    missing = columns - set(frame.columns)
    if missing:
        raise ConfigurationError(
            f"{what} needs columns {sorted(missing)}, got {list(frame.columns)}"
        )


def _mean_with_band(axes, frame: pd.DataFrame, x: str, y: str, **style) -> None:
    """``y`` against ``x``: the mean over the rows sharing an ``x`` (replicates) as a line and,
    where there are several, their 95% t interval as a band."""
    xs, means, lows, highs = [], [], [], []
    for value, group in frame.groupby(x, sort=True):
        mean, low, high = intervals.t_interval(group[y].to_numpy())
        xs.append(value), means.append(mean), lows.append(low), highs.append(high)
    line, = axes.plot(xs, means, marker="o", **style)
    if len(frame) > len(xs):
        axes.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.2)


def generalisation_figure(
    curves: pd.DataFrame,
    reference: Mapping[str, Mapping[str, float]] | None = None,
    metrics: Sequence[str] = ("hr_at_10", "ndcg_at_10"),
) -> Figure:
    """Figure 3: test HR@10 and NDCG@10 against the training epoch, one line per ``model`` in
    ``curves`` (``epoch``, ``model``, metrics; with several ``replicate`` rows per epoch, their
    mean and 95% t interval as a band), and each ``reference`` model (e.g.
    ``{"mf_bpr": {"hr_at_10": 0.15, "ndcg_at_10": 0.10}}``) as a dashed horizontal line."""
    _require(curves, {"epoch", "model", *metrics}, "generalisation_figure")
    figure = Figure(figsize=(5 * len(metrics), 3.8), layout="constrained")
    for axes, metric in zip(np.atleast_1d(figure.subplots(1, len(metrics))), metrics):
        for model, part in curves.groupby("model", sort=False):
            _mean_with_band(axes, part, "epoch", metric, label=_name(model), markersize=3)
        for model, values in (reference or {}).items():
            axes.axhline(values[metric], linestyle="--", color="grey", label=_name(model))
        axes.set(xlabel="epoch", ylabel=label(metric), title=label(metric))
        axes.legend()
    return figure


def perturbation_figure(
    robustness: pd.DataFrame,
    model: str = "vbpr",
    attacks: Sequence[str] = ("random", "fgm_train"),
    metrics: Sequence[str] = ("hr_at_10", "ndcg_at_10"),
) -> Figure:
    """Figure 4: ``model``'s HR@10 and NDCG@10 against ``ε`` (log scale) under random
    (VBPR-rand) and adversarial (VBPR-grad) feature perturbations, the mean over replicates
    (``replicate`` rows) with its 95% t interval as a band; the clean value (attack ``none``)
    is a dashed horizontal line."""
    _require(robustness, {"model", "attack", "epsilon", *metrics}, "perturbation_figure")
    frame = robustness[robustness["model"] == model]
    if frame.empty:
        raise ConfigurationError(f"no robustness rows for model {model!r}")
    clean = frame[frame["attack"] == "none"]
    figure = Figure(figsize=(5 * len(metrics), 3.8), layout="constrained")
    for axes, metric in zip(np.atleast_1d(figure.subplots(1, len(metrics))), metrics):
        for attack in attacks:
            part = frame[(frame["attack"] == attack) & (frame["epsilon"] > 0)]
            _mean_with_band(axes, part, "epsilon", metric,
                            label=f"{_name(model)}-{ATTACK_NAMES.get(attack, attack)}")
        if not clean.empty:
            axes.axhline(clean[metric].mean(), linestyle="--", color="grey", label=_name(model))
        axes.set_xscale("log")
        axes.set(xlabel="ε", ylabel=label(metric), title=label(metric))
        axes.legend()
    return figure


def rank_change_figure(
    per_user_ranks: pd.DataFrame,
    epsilon: float = 0.1,
    models: Sequence[str] = ("vbpr", "amr"),
    attack: str = "fgm_train",
    bins: int = 50,
) -> Figure:
    """Figure 5: the distribution of per-user rank change (attacked - clean; positive is
    worse) at ``ε``, a histogram with a boxplot beside it on the same scale, one row per
    model."""
    _require(per_user_ranks, {"model", "attack", "epsilon", "rank", "clean_rank"},
             "rank_change_figure")
    figure = Figure(figsize=(9, 3 * len(models)), layout="constrained")
    grid = figure.subplots(len(models), 2, squeeze=False, width_ratios=(4, 1), sharex="col")
    for (histogram, box), model in zip(grid, models):
        part = per_user_ranks[
            (per_user_ranks["model"] == model) & (per_user_ranks["attack"] == attack)
            & np.isclose(per_user_ranks["epsilon"], epsilon)
        ]
        change = (part["rank"] - part["clean_rank"]).to_numpy()
        histogram.hist(change, bins=bins, color="tab:blue" if model != "amr" else "tab:orange")
        histogram.axvline(0, color="black", linewidth=0.8)
        histogram.set(xlabel="rank change (attacked - clean)", ylabel="users",
                      title=f"{_name(model)}, ε = {epsilon:g}: mean {change.mean():+.1f}"
                      if len(change) else f"{_name(model)}: no users")
        box.boxplot(change, widths=0.6)
        box.set(xticks=[], ylabel="rank change")
    for box in grid[:, 1]:
        box.set_ylim(grid[0, 0].get_xlim())
    return figure


def pixel_attack_figure(
    images_before: Sequence[np.ndarray],
    images_after: Sequence[np.ndarray],
    scores_before: Sequence[float],
    scores_after: Sequence[float],
    labels: Sequence[str] = ("+", "-", "-", "-"),
) -> Figure:
    """Figure 1: each image (H x W x 3 in [0, 1]) before (left) and after (right) the
    perturbation, with its score beside it; the interacted image is marked with a red "+",
    the others with a blue "-"."""
    count = len(images_before)
    if not (count == len(images_after) == len(scores_before) == len(scores_after) == len(labels)):
        raise ConfigurationError("pixel_attack_figure needs as many images, scores and labels")
    figure = Figure(figsize=(5, 2.2 * count), layout="constrained")
    grid = figure.subplots(count, 2, squeeze=False)
    for row, (mark, before, after) in enumerate(zip(labels, scores_before, scores_after)):
        colour = "red" if mark == "+" else "blue"
        for column, (images, score) in enumerate(((images_before, before), (images_after, after))):
            axes = grid[row, column]
            axes.imshow(np.clip(np.asarray(images[row], np.float64), 0, 1))
            axes.set(xticks=[], yticks=[])
            axes.text(1.04, 0.5, f"{score:.3f}", transform=axes.transAxes, va="center")
            axes.text(-0.04, 0.5, mark, transform=axes.transAxes, color=colour,
                      fontsize=18, fontweight="bold", ha="right", va="center")
    grid[0, 0].set_title("before")
    grid[0, 1].set_title("after")
    return figure


def hyper_parameter_figure(trials: pd.DataFrame, parameter: str, title: str,
                           metrics: Sequence[str] = ("hr_at_10", "ndcg_at_10")) -> Figure:
    """Figures 6-7 (RQ3): HR@10 and NDCG@10 against one hyper-parameter (log axis), others
    fixed: validation (the tuning score) solid, test dashed when ``test_<metric>`` exists, each
    with a band where ``<curve>_<metric>_ci_low`` / ``_ci_high`` exist (one run per setting:
    the per-user bootstrap interval)."""
    _require(trials, {parameter, *(f"validation_{m}" for m in metrics)}, "hyper_parameter_figure")
    ordered = trials.sort_values(parameter)
    figure = Figure(figsize=(5 * len(metrics), 3.8), layout="constrained")
    for axes, metric in zip(np.atleast_1d(figure.subplots(1, len(metrics))), metrics):
        for curve, marker, style in (("validation", "o", "-"), ("test", "s", "--")):
            column = f"{curve}_{metric}"
            if column not in ordered:
                continue
            line, = axes.plot(ordered[parameter], ordered[column], marker=marker,
                              linestyle=style, label=f"AMR, {curve}")
            if f"{column}_ci_low" in ordered:
                axes.fill_between(ordered[parameter], ordered[f"{column}_ci_low"],
                                  ordered[f"{column}_ci_high"], color=line.get_color(),
                                  alpha=0.15)
        axes.set_xscale("log")
        axes.set(xlabel=title, ylabel=label(metric), title=label(metric))
        axes.legend()
    return figure
