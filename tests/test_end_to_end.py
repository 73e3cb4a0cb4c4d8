"""The demo end to end, used the way a user uses it: `kedro run --pipeline=tuning`, then
`kedro run`, MLflow, kedro-viz, notebooks (the run is the session fixture `project` of
tests/conftest.py, shared with tests/test_recommend_end_to_end.py).

One tuning run (the paper's protocol on a reduced grid, to keep CI short) and one full
`kedro run` of the embedded demo in a copy of the project; every check below reads what those
runs (and two short comparison runs) left behind.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import ui  # noqa: E402

from tests.project_runs import kedro  # noqa: E402

MODELS = ("pop", "mf_eals", "mf_bpr", "duif", "vbpr", "amr")


@pytest.fixture
def scratch_project(project, tmp_path) -> Path:
    """A copy of the run project, outputs and MLflow store included, for tests that run the
    pipeline again: the shared project stays as the fixture's two runs left it, whatever the
    order the tests run in."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy, symlinks=True)
    return copy


def _selected(project: Path) -> dict:
    import yaml

    return yaml.safe_load((project / "data/06_models/demo/selected_parameters.yml").read_text())


def _runs(project: Path) -> pd.DataFrame:
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["amr-pipeline"], order_by=["start_time ASC"])


def test_default_run_writes_every_model_and_report(project):
    data = project / "data"
    test = pd.read_parquet(data / "05_model_input" / "demo" / "test.parquet")
    table = pd.read_parquet(data / "08_reporting" / "demo" / "performance_table.parquet")
    for model in MODELS:
        assert (data / "06_models" / "demo" / model / "user_factors.parquet").is_file()
        ranks = pd.read_parquet(data / "07_model_output" / "demo" / f"{model}_ranks.parquet")
        assert sorted(ranks.user_id) == sorted(test.user_id), "one rank per test user"
        assert ranks["rank"].between(0, 999).all()
        row = table.set_index("model").loc[model]
        assert row["hr_at_10"] == pytest.approx((ranks["rank"] < 10).mean())
        cold = ranks["cold"].mean()
        assert row["hr_at_10"] == pytest.approx(
            cold * row["cold.hr_at_10"] + (1 - cold) * row["warm.hr_at_10"])
    reports = data / "08_reporting" / "demo"
    for name in ("figure1_pixel_attack", "figure3_generalisation", "figure4_perturbation",
                 "figure5_rank_change"):
        with Image.open(reports / f"{name}.png") as picture:
            assert picture.size[0] > 200
            assert np.asarray(picture.convert("L")).std() > 5, f"{name} is blank"
    table2 = (reports / "table2.md").read_text()
    amr = table.set_index("model").loc["amr"]
    half = (amr["hr_at_10_ci_high"] - amr["hr_at_10_ci_low"]) / 2
    assert f"{amr['hr_at_10_mean']:.4f} ± {half:.4f}" in table2, "Table 2: mean ± interval"
    assert "### Full ranking" in table2
    table3 = (reports / "table3.md").read_text()
    assert "VBPR" in table3 and "±" in table3 and "2 replicates" in table3


def test_replicates_are_stored_evaluated_and_aggregated(project):
    """Replicate 0 keeps the usual paths, replicate 1 sits under replicates/1/; Table 2's mean
    is the mean of both replicates' metrics; one MLflow child run per model and replicate."""
    data = project / "data"
    table = pd.read_parquet(data / "08_reporting/demo/performance_table.parquet").set_index(
        "model")
    assert (table.loc[["mf_bpr", "duif", "vbpr", "amr", "mf_eals"], "replicates"] == 2).all()
    assert table.loc["pop", "replicates"] == 1, "POP has no training randomness"
    for model in ("mf_bpr", "vbpr", "amr"):
        assert (data / f"06_models/demo/{model}/replicates/1/user_factors.parquet").is_file()
        first = pd.read_parquet(data / f"07_model_output/demo/{model}_ranks.parquet")
        second = pd.read_parquet(
            data / f"07_model_output/demo/replicates/1/{model}_ranks.parquet")
        assert not (data / f"06_models/demo/{model}/replicates/2").exists()
        means = [(ranks["rank"] < 10).mean() for ranks in (first, second)]
        assert table.loc[model, "hr_at_10_mean"] == pytest.approx(np.mean(means))
        assert table.loc[model, "hr_at_10_ci_low"] <= np.mean(means)
        assert (first["full_rank"] >= first["rank"]).all()
        assert table.loc[model, "full_hr_at_10"] == pytest.approx((first["full_rank"] < 10).mean())
    for column in ("full_ndcg_at_10_mean", "full_recall_at_20_ci_high", "corrected_hr_at_10_mean",
                   "cold.ndcg_at_10_ci_low"):
        assert table[column].notna().all(), column
    curves = pd.read_parquet(data / "08_reporting/demo/generalisation_curves.parquet")
    assert sorted(curves["replicate"].unique()) == [0, 1], "Figure 3 continues every replicate"
    runs = _runs(project)
    parent = runs[runs["tags.pipeline"] == "__default__"].iloc[0]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    counts = children.groupby("tags.model")["tags.replicate"].apply(sorted).to_dict()
    assert counts == {**{m: ["0", "1"] for m in ("mf_bpr", "duif", "vbpr", "amr", "mf_eals")},
                      "pop": ["0"]}
    amr = children[(children["tags.model"] == "amr") & (children["tags.replicate"] == "1")]
    assert amr["metrics.hr_at_10"].iloc[0] == pytest.approx((second["rank"] < 10).mean())


def test_the_final_models_use_the_settings_tuning_selected(project):
    """`kedro run` after `kedro run --pipeline=tuning`: each model trains with its validation-
    selected setting, on train + validation, for the selected number of epochs."""
    selected = _selected(project)["training"]
    assert set(selected) == {"mf_bpr", "duif", "vbpr", "amr", "mf_eals"}
    grids = {"learning_rate": {0.05, 0.1, 0.025, 0.2}, "regularization": {0.0, 0.01, 1.0},
             "epsilon": {0.1, 1.0, 0.01, 10.0}, "adversarial_weight": {0.1, 1.0, 0.01, 10.0}}
    for model in ("mf_bpr", "duif", "vbpr", "amr"):
        for key in ("learning_rate", "regularization"):
            assert selected[model][key] in grids[key], (model, key)
    assert selected["amr"]["learning_rate"] == selected["vbpr"]["learning_rate"]
    assert selected["amr"]["epsilon"] in grids["epsilon"]
    run = _runs(project)
    final = run[run["tags.pipeline"] == "__default__"].iloc[0]
    for model in ("mf_bpr", "vbpr", "amr"):
        history = pd.read_parquet(
            project / f"data/07_model_output/demo/{model}_training_history.parquet")
        assert history.epoch.max() == selected[model]["epochs"], model
        assert history.ndcg_at_10.isna().all(), "train + validation: nothing held out to select"
    train = pd.read_parquet(project / "data/05_model_input/demo/train.parquet")
    validation = pd.read_parquet(project / "data/05_model_input/demo/validation.parquet")
    final_train = pd.read_parquet(project / "data/05_model_input/demo/final_train.parquet")
    assert len(final_train) == len(train) + len(validation)
    assert final["metrics.amr.hr_at_10"] >= 0


def test_tuning_is_one_parent_run_with_a_child_per_setting(project):
    runs = _runs(project)
    parent = runs[runs["tags.pipeline"] == "tuning"]
    assert len(parent) == 1
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"].iloc[0]]
    trials = pd.read_parquet(project / "data/08_reporting/demo/tuning_trials.parquet")
    assert len(children) == len(trials)
    assert set(children["tags.model"]) == {"mf_bpr", "duif", "vbpr", "amr", "mf_eals"}
    # MF-BPR: 2 x 2 grid, DUIF twice (scratch and from MF-BPR), plus boundary extensions
    assert (trials.model == "mf_bpr").sum() >= 4 and (trials.model == "duif").sum() >= 8
    client = mlflow.MlflowClient()
    child = children[children["tags.model"] == "vbpr"].iloc[0]
    curve = client.get_metric_history(child["run_id"], "validation.ndcg_at_10")
    assert [m.step for m in curve] == [0, 3, 6], "epoch 0 and every eval_every epochs"
    best = trials.loc[trials[trials.model == "amr"].score.idxmax()]
    amr = trials[trials.model == "amr"]  # Figures 6-7: per-user bootstrap intervals
    for curve in ("validation", "test"):
        assert (amr[f"{curve}_ndcg_at_10_ci_low"] <= amr[f"{curve}_ndcg_at_10_ci_high"]).all()
    assert (amr["test_hr_at_10_ci_low"] <= amr["test_hr_at_10"]).all()
    assert (amr["test_hr_at_10"] <= amr["test_hr_at_10_ci_high"]).all()
    assert _selected(project)["training"]["amr"]["epsilon"] == best["epsilon"]
    reports = project / "data/08_reporting/demo"
    for name in ("figure6_epsilon", "figure7_adversarial_weight"):
        with Image.open(reports / f"{name}.png") as picture:
            assert np.asarray(picture.convert("L")).std() > 5, f"{name} is blank"


def test_table_1_describes_the_data(project):
    statistics = pd.read_parquet(project / "data/08_reporting/demo/dataset_statistics.parquet")
    users = pd.read_parquet(project / "data/03_primary/demo/users.parquet")
    interactions = pd.read_parquet(project / "data/03_primary/demo/interactions.parquet")
    row = statistics.iloc[0]
    assert row["users"] == len(users)
    assert row["interactions"] == len(interactions.drop_duplicates(["user_id", "item_id"]))
    assert 0.99 < row["sparsity"] < 1
    text = (project / "data/08_reporting/demo/table1.md").read_text()
    assert f"{int(row['users']):,}" in text and "3,226" in text


def test_stored_factors_reproduce_the_stored_ranks_without_tensorflow(project):
    from amr_pipeline.recsys.models import FactorModel

    models = project / "data" / "06_models" / "demo" / "amr"
    model = FactorModel.from_frames(*(pd.read_parquet(models / f"{table}.parquet") for table in
                                      ("user_factors", "item_factors", "feature_projection")))
    from amr_pipeline.datasets.features import FeatureMatrixDataset
    from amr_pipeline.item_features import MappedFeatures

    rows = FeatureMatrixDataset(str(project / "data/04_feature/demo/item_features.arrow")).load()
    assert isinstance(rows.features, MappedFeatures)  # the catalog maps the file
    features = np.zeros((len(model.item_factors), rows.features.shape[1]), np.float32)
    features[rows.item_ids] = np.asarray(rows.features)
    candidates = pd.read_parquet(project / "data/05_model_input/demo/test_candidates.parquet")
    stored = pd.read_parquet(project / "data/07_model_output/demo/amr_ranks.parquet")
    scores = model.score(candidates.user_id.to_numpy(), candidates.item_id.to_numpy(), features)
    frame = candidates.assign(score=scores)
    test_scores = frame[frame.is_test].set_index("user_id")["score"]
    negatives = frame[~frame.is_test]
    ranks = (negatives.score.to_numpy() >= test_scores.loc[negatives.user_id].to_numpy())
    recomputed = pd.Series(ranks).groupby(negatives.user_id.to_numpy()).sum()
    np.testing.assert_array_equal(recomputed.loc[stored.user_id].to_numpy(), stored["rank"])


def test_certified_bound_holds_against_every_attack_on_the_demo(project):
    for model in ("vbpr", "amr"):
        table = pd.read_parquet(project / f"data/07_model_output/demo/{model}_robustness.parquet")
        for epsilon, rows in table[table.attack != "none"].groupby("epsilon"):
            bound = rows[rows.attack == "certified"].iloc[0]
            for _, attacked in rows.iterrows():
                assert attacked["ndcg_at_10"] >= bound["ndcg_at_10"] - 1e-12, (model, epsilon)


def test_mlflow_holds_metrics_params_tags_and_artifacts(project):
    runs = _runs(project)
    run = runs[runs["tags.pipeline"] == "__default__"].iloc[0]
    for model in MODELS:
        for cutoff in (5, 10, 20):
            assert f"metrics.{model}.hr_at_{cutoff}" in run
            assert f"metrics.{model}.ndcg_at_{cutoff}" in run
    assert "metrics.vbpr.robust.fgm_train.eps_0.1.ndcg_at_10" in run
    features = runs[runs["tags.pipeline"] == "tuning"].iloc[0]  # the run that extracted them
    # int8 is kept exactly when it passes the float32 check (on the demo it may fall back)
    passed = features["metrics.features.int8_min_cosine"] >= 0.999
    assert features["metrics.features.int8"] == float(passed)
    assert features["metrics.features.computed"] == features["metrics.features.items"]
    assert features["metrics.features.inference_precision_bits"] == 32
    assert run["metrics.features.computed"] == 0, "the second run reuses the feature cache"
    assert run["tags.dataset"] == "demo"
    assert run["tags.pipeline"] == "__default__"
    assert run["params.training.amr.epsilon"] == "1.0"
    client = mlflow.MlflowClient()
    curves = 0
    for model in ("mf_bpr", "vbpr", "amr"):  # tuning may select 0 epochs for a model
        history = client.get_metric_history(run["run_id"], f"{model}.train.loss")
        stored = pd.read_parquet(
            project / f"data/07_model_output/demo/{model}_training_history.parquet")
        logged = sorted((m.step, m.value) for m in history)
        expected = stored.dropna(subset=["loss"]).sort_values("epoch")
        assert [step for step, _ in logged] == expected["epoch"].tolist(), model
        assert [value for _, value in logged] == pytest.approx(expected["loss"].tolist())
        curves += bool(logged)
    assert curves, "the training curves are in MLflow"
    artifacts = {a.path for folder in ("figures", "reports")
                 for a in client.list_artifacts(run["run_id"], folder)}
    assert {"figures/figure4_perturbation.png", "reports/table3.md"} <= artifacts


def test_two_runs_compare_in_mlflow(scratch_project):
    """What users do: run twice with different ε and compare the runs."""
    project = scratch_project
    for epsilon in ("0.05", "0.5"):
        kedro(project, "run", "--pipeline=amr", "--params=tuning.use_selected=false,"
              f"training.amr.epsilon={epsilon},training.amr.epochs=4")
    runs = _runs(project)
    runs = runs[runs["tags.mlflow.parentRunId"].isna()].tail(2)
    assert list(runs["params.training.amr.epsilon"]) == ["0.05", "0.5"]
    keys = [{c for c in runs.columns if c.startswith("metrics.amr.") and pd.notna(row[c])}
            for _, row in runs.iterrows()]
    assert keys[0] == keys[1] and "metrics.amr.hr_at_10" in keys[0]
    client = mlflow.MlflowClient()
    for run_id in runs["run_id"]:
        assert client.list_artifacts(run_id, "figures")
    with ui.mlflow_server(project) as url:
        text = ui.mlflow_comparison(url, runs["experiment_id"].iloc[0], list(runs["run_id"]))
    assert "training.amr.epsilon" in text and "0.05" in text


def test_kedro_viz_shows_the_lineage_and_a_preview(project):
    build = ui.build_viz(project)
    labels = set(ui.viz_lineage(build, "amr"))
    for name in ("raw_source", "extract_item_features", "item_features", "train_amr",
                 "amr.user_factors", "evaluate_vbpr", "robustness_table"):
        assert name in labels, name
    preview = ui.viz_preview(build, "test_candidates")
    assert "is_test" in preview and "user_id" in preview


@pytest.mark.parametrize("notebook", ["explore_data.ipynb", "results.ipynb"])
def test_notebooks_run_against_the_demo_outputs(project, notebook):
    import nbformat
    from nbclient import NotebookClient

    path = project / "notebooks" / notebook
    book = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in book.cells if cell.cell_type == "code")
    NotebookClient(book, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()


def test_an_unwritable_tracking_store_still_writes_the_outputs(scratch_project):
    project = scratch_project
    broken = project / "conf" / "broken_tracking"
    broken.mkdir()
    (broken / "mlflow.yml").write_text(
        (project / "conf" / "base" / "mlflow.yml").read_text().replace(
            # a folder that cannot exist: its parent is a file
            "sqlite:///mlflow.db", f"sqlite:///{project / 'pyproject.toml' / 'mlflow.db'}")
    )
    output = project / "data" / "05_model_input" / "demo" / "train.parquet"
    output.unlink()
    result = kedro(project, "run", "--pipeline=data_processing", "--env=broken_tracking")
    said = " ".join((result.stdout + result.stderr).split())  # rich wraps long log lines
    assert "cannot be written" in said and "NOT tracked in MLflow" in said
    assert output.is_file()
