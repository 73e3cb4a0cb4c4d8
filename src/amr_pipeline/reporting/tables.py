"""Table 2 (top-N performance, RI, paired t-tests) and Table 3 (NDCG@10 drop under attack).

Per-user values are HR@N = [rank < N] and NDCG@N = [rank < N] / log2(rank + 2) (paper 4.1.2);
significance is a paired t-test over users (``scipy.stats.ttest_rel``), p < 0.05.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.models_table import MODEL_LABELS
from amr_pipeline.recsys import metrics as recsys_metrics
from amr_pipeline.reporting import intervals

MODEL_NAMES = dict(MODEL_LABELS)
SIGNIFICANCE = 0.05


def metric_names(cutoffs: Iterable[int] = (5, 10, 20)) -> list[str]:
    """``hr_at_N`` for every cutoff, then ``ndcg_at_N`` (Table 2's column order)."""
    cutoffs = list(cutoffs)
    return [f"hr_at_{n}" for n in cutoffs] + [f"ndcg_at_{n}" for n in cutoffs]


def label(metric: str) -> str:
    """``ndcg_at_10`` -> ``NDCG@10``."""
    name, _, cutoff = metric.partition("_at_")
    return f"{name.upper()}@{cutoff}"


def per_user_metrics(ranks: pd.DataFrame, cutoffs: Iterable[int] = (5, 10, 20)) -> pd.DataFrame:
    """One row per ``user_id`` with the HR@N and NDCG@N of its test item."""
    rank = ranks["rank"].to_numpy(np.float64)
    out = {"user_id": ranks["user_id"].to_numpy()}
    for cutoff in cutoffs:
        out[f"hr_at_{cutoff}"] = (rank < cutoff).astype(np.float64)
    for cutoff in cutoffs:
        out[f"ndcg_at_{cutoff}"] = np.where(rank < cutoff, 1.0 / np.log2(rank + 2.0), 0.0)
    return pd.DataFrame(out)


def relative_improvement(reference: Mapping[str, float], baseline: Mapping[str, float], metrics):
    """RI: the mean over ``metrics`` of ``(reference - baseline) / baseline`` (Table 2);
    metrics where the baseline is 0 are left out, NaN if none is left."""
    ratios = [
        (reference[m] - baseline[m]) / baseline[m] for m in metrics if baseline[m] not in (0, 0.0)
    ]
    return float(np.mean(ratios)) if ratios else float("nan")


def paired_p_value(reference: np.ndarray, baseline: np.ndarray) -> float:
    """Two-sided paired t-test p-value; NaN when every per-user difference is 0."""
    reference, baseline = np.asarray(reference, np.float64), np.asarray(baseline, np.float64)
    if len(reference) < 2 or not (reference - baseline).any():
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_rel(reference, baseline).pvalue)


FULL_METRICS = ("full_hr_at_10", "full_ndcg_at_10", "full_recall_at_20")
CORRECTED_METRICS = ("hr_at_10", "ndcg_at_10")


def performance_table(
    ranks_by_model: Mapping[str, pd.DataFrame],
    reference: str = "amr",
    cutoffs: Sequence[int] = (5, 10, 20),
    corrected: Mapping[str, np.ndarray] | None = None,
    ceilings: pd.DataFrame | None = None,
    confidence: float = intervals.CONFIDENCE,
    seed: int = 0,
) -> pd.DataFrame:
    """Table 2: one row per model (paper order; index = model key).

    ``ranks_by_model`` holds each model's per-user test ranks, one block per ``replicate``
    (column; absent: one replicate), with ``cold`` and ``full_rank`` when known. Columns:
    ``name``, ``replicates``; for every metric (HR@N, NDCG@N on the sampled candidates;
    ``full_*`` on the full ranking; ``corrected_*``, the sampled metric corrected with the
    ``corrected`` tables, ``m[r]`` per sampled rank r) replicate 0's value, and ``_mean``,
    ``_ci_low``, ``_ci_high`` (:func:`~amr_pipeline.reporting.intervals.metric_interval`);
    ``cold.``/``warm.`` the same over cold/warm test items; ``ri`` (the reference's relative
    improvement over the row, on the means); ``p.<metric>`` a paired t-test of the reference
    against the row on the per-user values averaged over each model's replicates, and
    ``significant.<metric>`` (p < 0.05 and the reference ahead); ``oracle_share.<metric>``
    the mean as a share of the oracle's (``ceilings``, when it has an oracle row)."""
    if not ranks_by_model:
        raise ConfigurationError("performance_table needs at least one model's ranks")
    if reference not in ranks_by_model:
        raise ConfigurationError(
            f"reference model {reference!r} is not among {list(ranks_by_model)}: evaluate it "
            "or pick another reference"
        )
    metrics = metric_names(cutoffs)
    order = [m for m in MODEL_NAMES if m in ranks_by_model]
    order += [m for m in ranks_by_model if m not in MODEL_NAMES]
    users, rows = {}, {}
    for model in order:
        frame = ranks_by_model[model]
        if "replicate" not in frame:
            frame = frame.assign(replicate=0)
        values = user_values(frame, cutoffs, corrected)
        users[model] = values
        row = {"name": MODEL_NAMES.get(model, model),
               "replicates": int(values["replicate"].nunique())}
        columns = [c for c in values.columns if c not in ("replicate", "user_id", "cold")]
        row.update(_interval_columns(values, columns, "", confidence, seed))
        if "cold" in values:
            for group, mask in (("cold", values["cold"]), ("warm", ~values["cold"])):
                if mask.any():
                    row.update(_interval_columns(values[mask], metrics, f"{group}.",
                                                 confidence, seed))
                row[f"{group}.users"] = int(mask[values["replicate"] == 0].sum())
        rows[model] = row
    averaged = {model: values.groupby("user_id")[metrics].mean()
                for model, values in users.items()}
    oracle = _oracle(ceilings)
    extra = {}
    for model in order:
        means = {m: rows[model][f"{m}_mean"] for m in metrics}
        best = {m: rows[reference][f"{m}_mean"] for m in metrics}
        row = {"ri": np.nan if model == reference else relative_improvement(best, means,
                                                                              metrics)}
        paired = averaged[reference].join(averaged[model], rsuffix=".base", how="inner")
        for m in metrics:
            p = np.nan if model == reference else paired_p_value(paired[m], paired[f"{m}.base"])
            row[f"p.{m}"] = p
            row[f"significant.{m}"] = bool(
                p < SIGNIFICANCE and paired[m].mean() > paired[f"{m}.base"].mean()
            )
        for m, value in oracle.items():
            row[f"oracle_share.{m}"] = rows[model][f"{m}_mean"] / value if value else np.nan
        extra[model] = row
    table = pd.DataFrame.from_dict(rows, orient="index").join(
        pd.DataFrame.from_dict(extra, orient="index")
    )
    table.index.name = "model"
    return table


def user_values(ranks: pd.DataFrame, cutoffs: Sequence[int],
                corrected: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Per user and replicate: HR@N/NDCG@N, the full-ranking metrics (with ``full_rank``) and
    the corrected sampled metrics (with ``corrected``), plus ``cold`` when known."""
    values = per_user_metrics(ranks, cutoffs)
    values.insert(0, "replicate", ranks["replicate"].to_numpy())
    if "full_rank" in ranks:
        for name, column in recsys_metrics.full_metrics(ranks["full_rank"].to_numpy()).items():
            values[name] = column
    rank = ranks["rank"].to_numpy()
    for name, table in (corrected or {}).items():
        values[f"corrected_{name}"] = np.asarray(table)[np.minimum(rank, len(table) - 1)]
    if "cold" in ranks:
        values["cold"] = ranks["cold"].to_numpy(bool)
    return values


def _interval_columns(values: pd.DataFrame, columns, prefix: str, confidence: float,
                      seed: int) -> dict:
    out = {}
    replicates = [part for _, part in values.groupby("replicate", sort=True)]
    for column in columns:
        per_replicate = [part[column].to_numpy(np.float64) for part in replicates]
        mean, low, high = intervals.metric_interval(per_replicate, confidence, seed)
        out[f"{prefix}{column}"] = float(per_replicate[0].mean())
        out[f"{prefix}{column}_mean"] = mean
        out[f"{prefix}{column}_ci_low"] = low
        out[f"{prefix}{column}_ci_high"] = high
    return out


def _oracle(ceilings: pd.DataFrame | None) -> dict:
    if ceilings is None or ceilings.empty:
        return {}
    row = ceilings[(ceilings["ranker"] == "oracle") & (ceilings["subset"] == "all")]
    if row.empty:
        return {}
    return {"hr_at_10": float(row["hr_at_10"].iloc[0]),
            "ndcg_at_10": float(row["ndcg_at_10"].iloc[0])}


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cells(table: pd.DataFrame, columns: list[str], reference: str | None, star) -> list[list[str]]:
    """Each column's mean (replicate 0's value where no mean exists) ± the half-width of its
    interval, the best mean in bold, ``*`` on the reference where ``star(column)``."""
    def mean(column):
        return table[f"{column}_mean"] if f"{column}_mean" in table else table[column]

    best = {c: mean(c).max() for c in columns}
    rows = []
    for model, row in table.iterrows():
        cells = [str(row.get("name", model))]
        for column in columns:
            value = row.get(f"{column}_mean", row[column])
            text = "-" if pd.isna(value) else f"{value:.4f}"
            low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
            if not pd.isna(value) and value == best[column]:
                text = f"**{text}**"
            if low is not None and not pd.isna(low) and not pd.isna(high):
                text += f" ± {(high - low) / 2:.4f}"
            if model == reference and star(column):
                text += "\\*"
            cells.append(text)
        rows.append(cells)
    return rows


def performance_markdown(table: pd.DataFrame, reference: str = "amr") -> str:
    """Table 2 as Markdown: HR@N, NDCG@N (mean ± half-width of the 95% interval over
    replicates), RI and the share of the oracle per model, the best mean of each column in
    bold, ``*`` on the reference's cell when its improvement over every baseline is
    significant (p < 0.05); the same over cold and warm test items (4.2); then the
    full-ranking metrics beside the corrected sampled ones."""
    metrics = [c for c in table.columns if c.startswith(("hr_at_", "ndcg_at_"))
               and not c.endswith(("_mean", "_ci_low", "_ci_high"))]
    baselines = table.index != reference

    def star(metric):
        column = f"significant.{metric}"
        return column in table and baselines.any() and bool(table.loc[baselines, column].all())

    rows = _cells(table, metrics, reference if reference in table.index else None, star)
    shares = [c for c in table.columns if c.startswith("oracle_share.")]
    for cells, (model, row) in zip(rows, table.iterrows()):
        cells.append("-" if model == reference or pd.isna(row["ri"]) else f"{row['ri']:.2%}")
        cells += ["-" if pd.isna(row[c]) else f"{row[c]:.1%}" for c in shares]
    count = int(table["replicates"].max()) if "replicates" in table else 1
    interval = (f"the 95% t interval over {count} replicates (training seeds)" if count > 1
                else "the 95% bootstrap interval over users (one replicate)")
    parts = [
        _markdown(["Model", *map(label, metrics), "RI",
                   *[f"{label(c.split('.', 1)[1])} / oracle" for c in shares]], rows),
        "",
        f"Sampled protocol (4.1.2: the test item among 999 sampled negatives); mean ± half-width "
        f"of {interval}. \\* the improvement over every baseline is statistically significant "
        "(paired t-test over users on the per-user values averaged over replicates, p < 0.05); "
        f"RI: the relative improvement of {MODEL_NAMES.get(reference, reference)} over the "
        "baseline, averaged over the six metrics"
        + ("; / oracle: the mean as a share of the generator's true-logit ranking."
           if shares else "."),
    ]
    groups = (("cold", "Cold test items (not in training)"), ("warm", "Warm test items"))
    for group, title in groups:
        columns = [f"{group}.{m}" for m in metrics if f"{group}.{m}" in table]
        if not columns:
            continue
        users = f"{group}.users"
        users = f" ({int(table[users].iloc[0]):,} users)" if users in table else ""
        rows = _cells(table, columns, None, lambda _: False)
        parts += ["", f"### {title}{users}", "", _markdown(["Model", *map(label, metrics)], rows)]
    full = [c for c in FULL_METRICS if c in table]
    corrected = [f"corrected_{m}" for m in CORRECTED_METRICS if f"corrected_{m}" in table]
    if full or corrected:
        rows = _cells(table, full + corrected, None, lambda _: False)
        full_labels = [f"full {label(c[5:])}".replace("RECALL", "Recall") for c in full]
        header = ["Model", *full_labels,
                  *[f"corrected sampled {label(c[10:])}" for c in corrected]]
        parts += ["", "### Full ranking", "", _markdown(header, rows), "",
                  "Full: the test item ranked among every item the user has not interacted with "
                  "in the final training data (Recall@20 = HR@20 with one held-out item). "
                  "Corrected sampled: the sampled rank credited with Krichene and Rendle's "
                  "bias-variance corrected metric (KDD 2020), an estimate of the full-ranking "
                  "value from the sampled protocol."]
    return "\n".join(parts) + "\n"


def robustness_markdown(
    robustness: pd.DataFrame,
    attack: str = "fgm_train",
    epsilons: Sequence[float] = (0.05, 0.1, 0.2),
    models: Sequence[str] = ("vbpr", "amr"),
    metric: str = "ndcg_at_10",
) -> str:
    """Table 3: the relative ``metric`` drop (e.g. ``-11.9%``) of each model under ``attack``
    at each ``ε``; one row per ``dataset`` when that column exists."""
    drop = f"{metric}_drop"
    missing = {"model", "attack", "epsilon", drop} - set(robustness.columns)
    if missing:
        raise ConfigurationError(f"robustness table lacks columns {sorted(missing)}")
    frame = robustness[robustness["attack"] == attack]
    datasets = list(dict.fromkeys(frame["dataset"])) if "dataset" in frame else [None]
    header = ["Dataset"] + [
        f"{MODEL_NAMES.get(m, m)} ε={e:g}" for e in epsilons for m in models
    ]
    rows = []
    for dataset in datasets:
        part = frame if dataset is None else frame[frame["dataset"] == dataset]
        cells = [label(metric) + " drop" if dataset is None else str(dataset)]
        for epsilon in epsilons:
            for model in models:
                match = part[(part["model"] == model) & np.isclose(part["epsilon"], epsilon)]
                cells.append("-" if match.empty else _drop_cell(match[drop].to_numpy()))
        rows.append(cells)
    title = (f"Relative {label(metric)} drop under `{attack}` perturbations of the image "
             "features at test time (Table 3).")
    count = robustness.groupby("model")["replicate"].nunique().max() if (
        "replicate" in robustness) else 1
    if count > 1:
        title += (f" Mean ± half-width of the 95% t interval over {count} replicates "
                  "(training seeds).")
    return title + "\n\n" + _markdown(header, rows) + "\n"


def _drop_cell(drops: np.ndarray) -> str:
    """One relative drop, or the mean ± half-width of the t interval over replicates."""
    mean, low, high = intervals.t_interval(drops)
    if len(drops) < 2 or np.isnan(low):
        return f"{mean:.1%}"
    return f"{mean:.1%} ± {(high - low) / 2:.1%}"


def dataset_statistics(interactions: pd.DataFrame, n_users: int, n_items: int,
                       train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Table 1: users, items, interactions and sparsity of the filtered data, and the share
    of test items that are cold (never in ``train``, the final models' training pairs)."""
    pairs = len(interactions[["user_id", "item_id"]].drop_duplicates())
    cold = ~test["item_id"].isin(train["item_id"])
    return {"users": int(n_users), "items": int(n_items), "interactions": int(pairs),
            "sparsity": 1.0 - pairs / max(n_users * n_items, 1),
            "cold_test_share": float(cold.mean()) if len(test) else 0.0}


def statistics_markdown(statistics: Mapping[str, float], dataset: str) -> str:
    """Table 1 as Markdown, the paper's Pinterest and Amazon rows for comparison."""
    header = ["Dataset", "User#", "Item#", "Interaction#", "Sparsity", "Cold test items"]
    rows = [[dataset, f"{statistics['users']:,}", f"{statistics['items']:,}",
             f"{statistics['interactions']:,}", f"{100 * statistics['sparsity']:.3f}%",
             f"{100 * statistics['cold_test_share']:.1f}%"],
            ["Pinterest (paper)", "3,226", "4,998", "9,844", "99.939%", "52.6%"],
            ["Amazon (paper)", "83,337", "299,555", "706,949", "99.997%", "45.9%"]]
    return "**Table 1: statistics of the data.**\n\n" + _markdown(header, rows)
