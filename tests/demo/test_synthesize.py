"""The demo generator: Pinterest-like statistics (paper Table 1), its mechanism, determinism,
the dump format and the generator file. The calibration to the real pairs' model-free
statistics is in test_calibration.py."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from amr_pipeline.demo.synthesize import (
    CATEGORIES,
    GENERATOR_FILE,
    PAPER_PINTEREST,
    DemoSettings,
    generator_arrays,
    logit_terms,
    pin_count_probabilities,
    simulate,
    simulation_statistics,
    synthesize,
)
from amr_pipeline.readers.pinterest import read_bson_documents, read_pinterest

COMMITTED_DEMO = Path(__file__).resolve().parents[2] / "data" / "01_raw" / "demo"
SMALL = DemoSettings(n_boards=20, n_catalogue_images=200, image_size=16, seed=1)


def _digest(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()


@pytest.fixture(scope="module")
def default_simulation():
    return simulate(DemoSettings())


@pytest.fixture(scope="module")
def default_statistics():
    """Statistics of the default settings under the project's filter and split."""
    return simulation_statistics(DemoSettings())


def test_sizes_match_the_paper_pinterest_subset(default_statistics):
    """Table 1: 3,226 users (±5%), 4,998 items (±10%), 3.05 interactions per user (±10%),
    at least 99.9% sparse."""
    values = default_statistics
    assert values["users"] == pytest.approx(PAPER_PINTEREST["users"], rel=0.05)
    assert values["items"] == pytest.approx(PAPER_PINTEREST["items"], rel=0.10)
    assert values["interactions_per_user"] == pytest.approx(
        PAPER_PINTEREST["interactions_per_user"], rel=0.10
    )
    assert values["sparsity"] >= 0.999


def test_a_large_share_of_the_test_items_is_cold(default_statistics):
    """Under the project's split (test and validation held out, cold against train) 40% to
    55% of test items are cold (demo: 43.8%; paper 4.1.2: 52.6%)."""
    assert 0.40 <= default_statistics["cold_test_share"] <= 0.55


def test_popularity_is_long_tailed_but_does_not_dominate(default_statistics):
    """Gini of item popularity in [0.30, 0.50]; the 1% most popular items hold 4% to 12% of
    the interactions; ranking by popularity alone hits the test item in the top 10 for 1.5%
    to 10% of users (chance: 1%; paper POP: 6.0%)."""
    values = default_statistics
    assert 0.30 <= values["gini"] <= 0.50
    assert 0.04 <= values["top_1_percent_share"] <= 0.12
    assert 0.015 <= values["pop_hit_ratio_at_10"] <= 0.10


def test_pin_counts_follow_a_truncated_geometric_with_the_requested_mean():
    probabilities = pin_count_probabilities(3.05, 12)
    counts = np.arange(2, 13)
    assert probabilities.sum() == pytest.approx(1.0)
    assert probabilities @ counts == pytest.approx(3.05, abs=1e-6)
    assert np.all(np.diff(probabilities) < 0)
    with pytest.raises(ValueError):
        pin_count_probabilities(13.0, 12)


def test_about_half_of_the_pins_come_from_the_boards_community_pool(default_simulation):
    """The co-pin mechanism: a board's own community pool (8 images on average) gets about
    half of its pins, the fresh catalogue (25,000 images) the rest; images pinned by several
    boards are mostly pool images."""
    simulation = default_simulation
    own_pool = (simulation.community[simulation.pin_image]
                == simulation.board_community[simulation.pin_board])
    assert 0.35 < own_pool.mean() < 0.65
    boards_per_image = np.bincount(np.unique(
        simulation.pin_board * simulation.n_images + simulation.pin_image) % simulation.n_images)
    shared = boards_per_image >= 2
    assert (simulation.community[shared] >= 0).mean() > 0.6
    assert (simulation.community[~shared] >= 0).mean() < 0.3


def test_images_pinned_once_were_chosen_by_their_look(default_simulation):
    """The fresh images a board pins alone (cold when held out) score far above the catalogue
    average (0) on the board's true visual term, scaled to unit variance times
    visual_weight = 2: a perfect image-only model can rank them."""
    simulation = default_simulation
    pins_per_image = np.bincount(simulation.pin_image)
    once = pins_per_image[simulation.pin_image] == 1
    _, visual, _ = logit_terms(simulation, simulation.pin_board[once], simulation.pin_image[once])
    assert visual.mean() > 1.5


def test_without_a_visual_term_colour_carries_no_taste():
    """The visual term is what ties colour to boards: a board's category colour is boosted
    in its taste, so the fresh images it pins carry that colour more than twice as often as
    chance (1/16); with visual_weight = 0 they fall back to chance."""
    def favourite_share(settings):
        simulation = simulate(settings)
        fresh = simulation.community[simulation.pin_image] < 0
        favourite = (simulation.colour[simulation.pin_image]
                     == simulation.board_category[simulation.pin_board])
        return favourite[fresh].mean()

    assert favourite_share(DemoSettings()) > 2 / len(CATEGORIES)
    assert favourite_share(DemoSettings(visual_weight=0.0)) < 1.25 / len(CATEGORIES)


def test_generator_file_recomputes_the_logit_terms(tmp_path):
    """generator.npz holds what the ceilings need (no board x catalogue matrix): the scores
    the ceilings rank by are the logit terms the pins were drawn with."""
    import pandas as pd

    from amr_pipeline.demo.ceilings import load_generator, term_models

    synthesize(tmp_path, SMALL)
    arrays = load_generator(tmp_path / GENERATOR_FILE)
    simulation = simulate(SMALL)
    expected = generator_arrays(simulation, SMALL)
    assert sorted(arrays) == sorted(expected)
    for name, value in expected.items():
        assert np.array_equal(arrays[name], value), name
    assert max(value.size for value in arrays.values()) < SMALL.n_boards * SMALL.n_catalogue_images

    users = pd.DataFrame({"user_id": np.arange(SMALL.n_boards), "user_raw_id": arrays["board_id"]})
    items = pd.DataFrame({"item_id": np.arange(simulation.n_images),
                          "item_raw_id": arrays["image_name"]})
    models = term_models(arrays, users, items)
    boards, images = np.meshgrid(np.arange(SMALL.n_boards), np.arange(simulation.n_images))
    boards, images = boards.ravel(), images.ravel()
    collaborative, visual, popularity = logit_terms(simulation, boards, images)
    for name, truth in (("collaborative", collaborative), ("visual", visual),
                        ("oracle", collaborative + visual + popularity)):
        assert np.allclose(models[name].score(boards, images), truth, atol=1e-4), name


def test_simulation_is_seeded():
    first, again, other = simulate(SMALL), simulate(SMALL), simulate(
        DemoSettings(n_boards=20, n_catalogue_images=200, image_size=16, seed=2)
    )
    for name in ("pin_board", "pin_image", "colour", "accent", "shape", "pattern", "size",
                 "community", "board_category", "board_visual"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.pin_image, other.pin_image) or not np.array_equal(
        first.colour, other.colour
    )


def test_same_seed_regenerates_the_same_bytes(tmp_path):
    synthesize(tmp_path / "a", SMALL)
    synthesize(tmp_path / "b", SMALL)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_every_board_pins_at_least_two_distinct_images():
    simulation = simulate(SMALL)
    distinct = {(b, i) for b, i in zip(simulation.pin_board, simulation.pin_image)}
    per_board = np.bincount([board for board, _ in distinct], minlength=SMALL.n_boards)
    assert per_board.min() >= 2
    assert per_board.max() <= SMALL.max_pins_per_board


def test_demo_reads_as_a_pinterest_dump_with_an_image_per_item(tiny_demo):
    interactions, items = read_pinterest(tiny_demo)
    assert interactions["user_raw_id"].nunique() == 500
    assert items["item_raw_id"].is_unique
    assert all((tiny_demo / "images" / name).is_file() for name in items["image"])
    assert items["category"].notna().all()


def test_board_categories_are_1_based_lines_of_categories_txt(tmp_path):
    """An image only one board pins gets that board's favourite colour as its category, read
    through cate_id as the 1-based line number of categories.txt (as in the real dump)."""
    synthesize(tmp_path, SMALL)
    simulation = simulate(SMALL)
    cate_ids = [doc["cate_id"]
                for doc in read_bson_documents(tmp_path / "subset_iccv_board_cate.bson")]
    assert min(cate_ids) >= 1 and max(cate_ids) <= len(CATEGORIES)
    board_index = {doc["board_id"]: board for board, doc in
                   enumerate(read_bson_documents(tmp_path / "subset_iccv_board_pins.bson"))}
    interactions, items = read_pinterest(tmp_path)
    category = items.set_index("item_raw_id")["category"]
    boards = interactions.groupby("item_raw_id")["user_raw_id"].unique()
    pinned_once = [(item, board[0]) for item, board in boards.items() if len(board) == 1]
    assert len(pinned_once) > 10
    for item, board in pinned_once:
        assert category[item] == CATEGORIES[simulation.board_category[board_index[board]]]


def test_committed_demo_matches_the_generator():
    """data/01_raw/demo is what `python -m amr_pipeline.demo.synthesize` writes, with no stale
    images."""
    interactions, items = read_pinterest(COMMITTED_DEMO)
    simulation = simulate(DemoSettings())
    assert interactions["user_raw_id"].nunique() == DemoSettings().n_boards
    assert len(interactions) == len(simulation.pin_board)
    assert len(items) == simulation.n_images
    assert len(list((COMMITTED_DEMO / "images").glob("*.jpg"))) == simulation.n_images
    assert (COMMITTED_DEMO / GENERATOR_FILE).is_file()
