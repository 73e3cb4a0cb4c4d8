"""Table 2 (RI, paired t-tests) and Table 3 rendering."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.reporting import tables

METRICS = tables.metric_names()
# Table 2, Pinterest: HR@5/10/20, NDCG@5/10/20 and the printed RI.
PINTEREST = {
    "pop": ([0.0353, 0.0604, 0.0927, 0.0213, 0.0296, 0.0376], 2.8173),
    "mf_eals": ([0.1262, 0.1584, 0.1953, 0.0922, 0.1025, 0.1118], 0.2218),
    "vbpr": ([0.1352, 0.1829, 0.2347, 0.1005, 0.1157, 0.1287], 0.0770),
}
AMR = [0.1392, 0.2033, 0.2697, 0.1026, 0.1230, 0.1398]


@pytest.mark.parametrize("model", list(PINTEREST))
def test_relative_improvement_reproduces_the_papers_ri(model):
    values, printed = PINTEREST[model]
    ri = tables.relative_improvement(dict(zip(METRICS, AMR)), dict(zip(METRICS, values)), METRICS)
    assert ri == pytest.approx(printed, rel=1e-3, abs=5e-4)  # inputs rounded to 4 places


def _ranks(values, cold=None):
    frame = pd.DataFrame({"user_id": np.arange(len(values)), "rank": values})
    if cold is not None:
        frame["cold"] = cold
    return frame


@pytest.fixture
def ranked():
    rng = np.random.default_rng(0)
    cold = rng.random(300) < 0.2
    amr = rng.integers(0, 30, 300)
    return {
        "vbpr": _ranks(amr + rng.integers(0, 12, 300), cold),
        "pop": _ranks(rng.integers(0, 200, 300), cold),
        "amr": _ranks(amr, cold),
        "mf_bpr": _ranks(amr, cold),
    }


def test_performance_table_metrics_ri_and_t_tests(ranked):
    table = tables.performance_table(ranked)
    assert list(table.index) == ["pop", "mf_bpr", "vbpr", "amr"]
    assert list(table["name"]) == ["POP", "MF-BPR", "VBPR", "AMR"]
    rank = ranked["vbpr"]["rank"].to_numpy()
    assert table.loc["vbpr", "hr_at_10"] == pytest.approx((rank < 10).mean())
    assert table.loc["vbpr", "ndcg_at_5"] == pytest.approx(
        np.where(rank < 5, 1 / np.log2(rank + 2), 0).mean()
    )
    cold = ranked["vbpr"]["cold"].to_numpy()
    assert table.loc["vbpr", "cold.hr_at_20"] == pytest.approx((rank[cold] < 20).mean())
    assert table.loc["vbpr", "warm.hr_at_20"] == pytest.approx((rank[~cold] < 20).mean())
    expected_ri = np.mean([
        (table.loc["amr", m] - table.loc["vbpr", m]) / table.loc["vbpr", m] for m in METRICS
    ])
    assert table.loc["vbpr", "ri"] == pytest.approx(expected_ri)
    amr = ranked["amr"]["rank"].to_numpy()
    p = stats.ttest_rel((amr < 10).astype(float), (rank < 10).astype(float)).pvalue
    assert table.loc["vbpr", "p.hr_at_10"] == pytest.approx(p)
    assert table.loc["vbpr", "significant.hr_at_10"] == (p < 0.05)
    assert table.loc["pop", "significant.ndcg_at_10"]
    # identical per-user values: no test, not significant, RI 0
    assert np.isnan(table.loc["mf_bpr", "p.hr_at_10"])
    assert not table.loc["mf_bpr", "significant.hr_at_10"]
    assert table.loc["mf_bpr", "ri"] == pytest.approx(0)
    assert np.isnan(table.loc["amr", "ri"]) and np.isnan(table.loc["amr", "p.hr_at_5"])


def test_t_test_pairs_users_by_id(ranked):
    shuffled = {m: f.sample(frac=1, random_state=1) for m, f in ranked.items()}
    left = tables.performance_table(ranked)
    right = tables.performance_table(shuffled)
    pd.testing.assert_series_equal(left["p.ndcg_at_10"], right["p.ndcg_at_10"])


def test_performance_markdown_layout(ranked):
    table = tables.performance_table(ranked)
    text = tables.performance_markdown(table)
    header = text.splitlines()[0]
    assert header == "| Model | HR@5 | HR@10 | HR@20 | NDCG@5 | NDCG@10 | NDCG@20 | RI |"
    amr_row = next(line for line in text.splitlines() if line.startswith("| AMR"))
    best = table["hr_at_10"].max()
    assert f"**{best:.4f}**" in text
    pop_row = next(line for line in text.splitlines() if line.startswith("| POP"))
    assert f"{table.loc['pop', 'ri']:.2%}" in pop_row
    # MF-BPR equals AMR, so no improvement is significant over every baseline: no star
    assert "\\*" not in amr_row
    assert "### Cold test items" in text and "### Warm test items" in text

    without_twin = tables.performance_table({k: v for k, v in ranked.items() if k != "mf_bpr"})
    starred = tables.performance_markdown(without_twin)
    amr_row = next(line for line in starred.splitlines() if line.startswith("| AMR"))
    flags = without_twin.loc[["pop", "vbpr"]]
    significant = [m for m in METRICS if flags[f"significant.{m}"].all()]
    assert significant and amr_row.count("\\*") == len(significant)


def test_performance_table_needs_the_reference():
    with pytest.raises(ConfigurationError):
        tables.performance_table({"vbpr": _ranks([1, 2])})


def test_robustness_markdown_matches_table_3_layout():
    rows = []
    for dataset, drops in (("Pinterest", [-0.042, -0.026, -0.119, -0.062, -0.318, -0.184]),
                           ("Amazon", [-0.087, -0.014, -0.304, -0.053, -0.677, -0.202])):
        cells = iter(drops)
        for epsilon in (0.05, 0.1, 0.2):
            for model in ("vbpr", "amr"):
                rows.append({"dataset": dataset, "model": model, "attack": "fgm_train",
                             "epsilon": epsilon, "ndcg_at_10_drop": next(cells)})
            rows.append({"dataset": dataset, "model": "vbpr", "attack": "random",
                         "epsilon": epsilon, "ndcg_at_10_drop": 0.5})
    text = tables.robustness_markdown(pd.DataFrame(rows))
    lines = text.splitlines()
    assert lines[2] == (
        "| Dataset | VBPR ε=0.05 | AMR ε=0.05 | VBPR ε=0.1 | AMR ε=0.1 | VBPR ε=0.2 | AMR ε=0.2 |"
    )
    assert "| Pinterest | -4.2% | -2.6% | -11.9% | -6.2% | -31.8% | -18.4% |" in lines
    assert "| Amazon | -8.7% | -1.4% | -30.4% | -5.3% | -67.7% | -20.2% |" in lines
    assert "50.0%" not in text


def test_robustness_markdown_without_dataset_column():
    frame = pd.DataFrame({"model": ["vbpr", "amr"], "attack": "fgm_train", "epsilon": 0.1,
                          "ndcg_at_10_drop": [-0.3, -0.05]})
    text = tables.robustness_markdown(frame, epsilons=(0.1, 0.2))
    assert "| NDCG@10 drop | -30.0% | -5.0% | - | - |" in text.splitlines()
    with pytest.raises(ConfigurationError):
        tables.robustness_markdown(frame.drop(columns="model"))


def test_performance_table_with_replicates_full_ranking_and_corrected_metrics():
    """Means and 95% t intervals over replicates, replicate 0 as the plain column, the paired
    test on per-user values averaged over replicates, full-ranking and corrected columns, the
    oracle share, and Table 2 printing mean ± half-width with a full-ranking block."""
    from amr_pipeline.reporting import intervals

    rng = np.random.default_rng(5)
    users = np.arange(400)

    def replicated(shift):
        return pd.concat([
            pd.DataFrame({"user_id": users, "rank": rng.integers(0, 40, 400) + shift,
                          "full_rank": rng.integers(0, 400, 400) + shift,
                          "cold": users % 3 == 0, "replicate": k})
            for k in range(3)], ignore_index=True)

    ranked = {"vbpr": replicated(4), "amr": replicated(0)}
    corrected = {"hr_at_10": np.linspace(1.0, 0.0, 1000)}
    ceilings = pd.DataFrame({"ranker": ["oracle"], "subset": ["all"], "hr_at_10": [0.5],
                             "ndcg_at_10": [0.25]})
    table = tables.performance_table(ranked, cutoffs=(10,), corrected=corrected,
                                     ceilings=ceilings)
    frame = ranked["vbpr"]
    means = [(part["rank"] < 10).mean() for _, part in frame.groupby("replicate")]
    assert table.loc["vbpr", "replicates"] == 3
    assert table.loc["vbpr", "hr_at_10"] == pytest.approx(means[0])
    expected = intervals.t_interval(means)
    assert (table.loc["vbpr", ["hr_at_10_mean", "hr_at_10_ci_low", "hr_at_10_ci_high"]]
            .tolist() == pytest.approx(list(expected)))
    full = [(part["full_rank"] < 20).mean() for _, part in frame.groupby("replicate")]
    assert table.loc["vbpr", "full_recall_at_20_mean"] == pytest.approx(np.mean(full))
    assert table.loc["vbpr", "corrected_hr_at_10_mean"] == pytest.approx(
        corrected["hr_at_10"][frame["rank"]].mean())
    assert table.loc["vbpr", "oracle_share.hr_at_10"] == pytest.approx(np.mean(means) / 0.5)
    hits = {m: (ranked[m]["rank"] < 10).groupby(ranked[m]["user_id"]).mean()
            for m in ("amr", "vbpr")}
    assert table.loc["vbpr", "p.hr_at_10"] == pytest.approx(
        stats.ttest_rel(hits["amr"], hits["vbpr"]).pvalue)
    assert "cold.hr_at_10_ci_high" in table and table.loc["vbpr", "cold.users"] == 134
    markdown = tables.performance_markdown(table)
    half = (expected[2] - expected[1]) / 2
    assert f"{expected[0]:.4f} ± {half:.4f}" in markdown
    assert "### Full ranking" in markdown and "3 replicates" in markdown


def test_table3_prints_the_mean_drop_and_its_interval_over_replicates():
    from amr_pipeline.reporting import intervals

    drops = [-0.10, -0.14, -0.12]
    robustness = pd.DataFrame({"model": "vbpr", "attack": "fgm_train", "epsilon": 0.1,
                               "replicate": [0, 1, 2], "ndcg_at_10_drop": drops})
    markdown = tables.robustness_markdown(robustness, epsilons=(0.1,), models=("vbpr",))
    mean, low, high = intervals.t_interval(drops)
    assert f"{mean:.1%} ± {(high - low) / 2:.1%}" in markdown and "3 replicates" in markdown
