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

MODEL_NAMES = {
    "pop": "POP",
    "mf_eals": "MF-eALS",
    "mf_bpr": "MF-BPR",
    "duif": "DUIF",
    "vbpr": "VBPR",
    "amr": "AMR",
}
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


def performance_table(
    ranks_by_model: Mapping[str, pd.DataFrame],
    reference: str = "amr",
    cutoffs: Sequence[int] = (5, 10, 20),
) -> pd.DataFrame:
    """Table 2: one row per model (paper order; index = model key) with ``name``, HR@N and
    NDCG@N over all users, ``cold.<metric>``/``warm.<metric>`` over users whose test item is
    cold/warm (when ``cold`` is given), ``ri`` (the reference's relative improvement over the
    row), and for every metric ``p.<metric>`` (paired t-test, reference vs row, on the users
    both ranked) and ``significant.<metric>`` (p < 0.05 and the reference ahead)."""
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
    users = {model: per_user_metrics(ranks_by_model[model], cutoffs) for model in order}
    rows = {}
    for model in order:
        frame, row = ranks_by_model[model], {"name": MODEL_NAMES.get(model, model)}
        row.update(users[model][metrics].mean().to_dict())
        if "cold" in frame:
            cold = frame["cold"].to_numpy(bool)
            for group, mask in (("cold", cold), ("warm", ~cold)):
                values = users[model].loc[mask, metrics]
                row.update({f"{group}.{m}": values[m].mean() if mask.any() else np.nan
                            for m in metrics})
                row[f"{group}.users"] = int(mask.sum())
        rows[model] = row
    best, extra = users[reference], {}
    for model in order:
        paired = best.merge(users[model], on="user_id", suffixes=("", ".base"))
        row = {"ri": np.nan if model == reference
               else relative_improvement(rows[reference], rows[model], metrics)}
        for m in metrics:
            p = np.nan if model == reference else paired_p_value(paired[m], paired[f"{m}.base"])
            row[f"p.{m}"] = p
            row[f"significant.{m}"] = bool(
                p < SIGNIFICANCE and paired[m].mean() > paired[f"{m}.base"].mean()
            )
        extra[model] = row
    table = pd.DataFrame.from_dict(rows, orient="index").join(
        pd.DataFrame.from_dict(extra, orient="index")
    )
    table.index.name = "model"
    return table


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cells(table: pd.DataFrame, columns: list[str], reference: str | None, star) -> list[list[str]]:
    best = {c: table[c].max() for c in columns}
    rows = []
    for model, row in table.iterrows():
        cells = [str(row.get("name", model))]
        for column in columns:
            value = row[column]
            text = "-" if pd.isna(value) else f"{value:.4f}"
            if not pd.isna(value) and value == best[column]:
                text = f"**{text}**"
            if model == reference and star(column):
                text += "\\*"
            cells.append(text)
        rows.append(cells)
    return rows


def performance_markdown(table: pd.DataFrame, reference: str = "amr") -> str:
    """Table 2 as Markdown: HR@N, NDCG@N and RI per model, the best of each column in bold,
    ``*`` on the reference's cell when its improvement over every baseline is significant
    (p < 0.05), then the same metrics over cold and over warm test items (4.2)."""
    metrics = [c for c in table.columns if c.startswith(("hr_at_", "ndcg_at_"))]
    baselines = table.index != reference

    def star(metric):
        column = f"significant.{metric}"
        return column in table and baselines.any() and bool(table.loc[baselines, column].all())

    rows = _cells(table, metrics, reference if reference in table.index else None, star)
    for cells, (model, row) in zip(rows, table.iterrows()):
        cells.append("-" if model == reference or pd.isna(row["ri"]) else f"{row['ri']:.2%}")
    parts = [
        _markdown(["Model", *map(label, metrics), "RI"], rows),
        "",
        "\\* the improvement over every baseline is statistically significant (paired t-test, "
        "p < 0.05); RI: the relative improvement of "
        f"{MODEL_NAMES.get(reference, reference)} over the baseline, averaged over the six "
        "metrics.",
    ]
    groups = (("cold", "Cold test items (not in training)"), ("warm", "Warm test items"))
    for group, title in groups:
        columns = [f"{group}.{m}" for m in metrics if f"{group}.{m}" in table]
        if not columns:
            continue
        count = f"{group}.users"
        users = f" ({int(table[count].iloc[0]):,} users)" if count in table else ""
        rows = _cells(table, columns, None, lambda _: False)
        parts += ["", f"### {title}{users}", "", _markdown(["Model", *map(label, metrics)], rows)]
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
                cells.append("-" if match.empty else f"{match[drop].iloc[0]:.1%}")
        rows.append(cells)
    title = (f"Relative {label(metric)} drop under `{attack}` perturbations of the image "
             "features at test time (Table 3).")
    return title + "\n\n" + _markdown(header, rows) + "\n"


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
