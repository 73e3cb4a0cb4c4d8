"""Figures 1, 3, 4 and 5 build, hold the expected artists and save as PNG."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from amr_pipeline.errors import ConfigurationError
from amr_pipeline.reporting import figures


def _saved(figure, tmp_path, name):
    path = tmp_path / f"{name}.png"
    figure.savefig(path)
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100
    return path


def test_generalisation_figure(tmp_path):
    epochs = np.arange(0, 200, 50)
    curves = pd.concat(
        pd.DataFrame({"epoch": epochs, "model": model, "hr_at_10": base + epochs / 1e4,
                      "ndcg_at_10": base / 2 + epochs / 2e4})
        for model, base in (("vbpr", 0.18), ("amr", 0.19))
    )
    figure = figures.generalisation_figure(
        curves, reference={"mf_bpr": {"hr_at_10": 0.15, "ndcg_at_10": 0.10}}
    )
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    for axes in figure.axes:
        assert len(axes.lines) == 3
        assert [t.get_text() for t in axes.get_legend().get_texts()] == ["VBPR", "AMR", "MF-BPR"]
        assert axes.lines[2].get_linestyle() == "--"
    np.testing.assert_allclose(figure.axes[1].lines[1].get_ydata(), 0.095 + epochs / 2e4)
    _saved(figure, tmp_path, "figure3")


def test_generalisation_figure_draws_the_replicate_mean_and_its_interval():
    epochs = np.arange(0, 30, 10)
    curves = pd.concat(
        pd.DataFrame({"epoch": epochs, "model": "amr", "replicate": replicate,
                      "hr_at_10": 0.2 + shift, "ndcg_at_10": 0.1 + shift})
        for replicate, shift in enumerate((-0.01, 0.0, 0.01))
    )
    figure = figures.generalisation_figure(curves)
    axes = figure.axes[0]
    np.testing.assert_allclose(axes.lines[0].get_ydata(), [0.2, 0.2, 0.2])
    assert len(axes.collections) == 1, "the 95% interval over replicates as a band"
    band = axes.collections[0].get_paths()[0].vertices[:, 1]
    from scipy import stats
    half = stats.t.ppf(0.975, 2) * stats.sem([-0.01, 0.0, 0.01])
    assert band.min() == pytest.approx(0.2 - half) and band.max() == pytest.approx(0.2 + half)


def _robustness():
    rows = [{"model": m, "attack": "none", "epsilon": 0.0, "hr_at_10": 0.2, "ndcg_at_10": 0.1}
            for m in ("vbpr", "amr")]
    for model in ("vbpr", "amr"):
        for attack, slope in (("random", 0.01), ("fgm_train", 0.3)):
            for epsilon in (0.01, 0.05, 0.1, 0.2, 0.5):
                rows.append({"model": model, "attack": attack, "epsilon": epsilon,
                             "hr_at_10": 0.2 - slope * epsilon / 3,
                             "ndcg_at_10": 0.1 - slope * epsilon / 6})
    return pd.DataFrame(rows)


def test_perturbation_figure(tmp_path):
    figure = figures.perturbation_figure(_robustness())
    assert len(figure.axes) == 2
    ndcg = figure.axes[1]
    assert ndcg.get_xscale() == "log"
    labels = [t.get_text() for t in ndcg.get_legend().get_texts()]
    assert labels == ["VBPR-rand", "VBPR-grad", "VBPR"]
    np.testing.assert_allclose(ndcg.lines[1].get_xdata(), [0.01, 0.05, 0.1, 0.2, 0.5])
    np.testing.assert_allclose(ndcg.lines[2].get_ydata(), [0.1, 0.1])
    _saved(figure, tmp_path, "figure4")
    with pytest.raises(ConfigurationError):
        figures.perturbation_figure(_robustness(), model="duif")


def test_rank_change_figure(tmp_path):
    """Sign convention of the paper's Figure 5 (positive = the attack made the rank worse) on
    data where the answer is known: under VBPR 300 users drop 10 places and 100 gain 2 (mean
    +7); under AMR every user drops 3 places (mean +3). Ranks count the negatives above the
    test item, so a worse rank is a larger number."""
    rng = np.random.default_rng(0)
    changes = {"vbpr": np.r_[np.full(300, 10), np.full(100, -2)], "amr": np.full(400, 3)}
    frames = []
    for model, change in changes.items():
        clean = rng.integers(20, 900, 400)
        frames.append(pd.DataFrame({
            "model": model, "attack": "fgm_train", "epsilon": 0.1, "user_id": np.arange(400),
            "clean_rank": clean, "rank": clean + change,
        }))
    per_user = pd.concat(frames, ignore_index=True)
    figure = figures.rank_change_figure(per_user)
    assert len(figure.axes) == 4
    histogram_vbpr, box_vbpr, histogram_amr, box_amr = figure.axes
    assert sum(p.get_height() for p in histogram_vbpr.patches) == 400
    assert "VBPR" in histogram_vbpr.get_title() and "AMR" in histogram_amr.get_title()
    assert "mean +7.0" in histogram_vbpr.get_title()
    assert "mean +3.0" in histogram_amr.get_title()
    tallest = max(histogram_vbpr.patches, key=lambda p: p.get_height())
    assert tallest.get_height() == 300
    centre = tallest.get_x() + tallest.get_width() / 2
    assert centre == pytest.approx(10, abs=tallest.get_width())
    for box, (low, high) in ((box_vbpr, (-2, 10)), (box_amr, (3, 3))):
        values = np.concatenate([line.get_ydata() for line in box.lines])
        assert values.min() == low and values.max() == high
    _saved(figure, tmp_path, "figure5")


def test_pixel_attack_figure(tmp_path):
    rng = np.random.default_rng(1)
    before = [rng.random((32, 32, 3)) for _ in range(4)]
    after = [np.clip(image + 0.007 * rng.standard_normal(image.shape), 0, 1) for image in before]
    figure = figures.pixel_attack_figure(before, after, [3.1, 2.0, 1.5, 0.4], [0.9, 2.2, 1.8, 1.1])
    assert len(figure.axes) == 8
    texts = {t.get_text(): t.get_color() for a in figure.axes for t in a.texts}
    assert texts["+"] == "red" and texts["-"] == "blue"
    assert "3.100" in texts and "0.900" in texts
    _saved(figure, tmp_path, "figure1")
    with pytest.raises(ConfigurationError):
        figures.pixel_attack_figure(before, after[:3], [1] * 4, [1] * 4)
