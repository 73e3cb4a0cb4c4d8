"""The demo generator: Pinterest-like statistics (paper Table 1), determinism, the dump format."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from amr_pipeline.demo.synthesize import (
    CATEGORIES,
    COLOURS,
    PAPER_PINTEREST,
    DemoSettings,
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


def test_about_half_of_the_test_items_are_cold(default_statistics):
    """Paper 4.1.2: 52.6% of Pinterest test items are cold; tolerance ±0.05."""
    assert default_statistics["cold_test_share"] == pytest.approx(0.526, abs=0.05)


def test_popularity_is_long_tailed_but_does_not_dominate(default_statistics):
    """Gini of item popularity in [0.28, 0.45] (no popularity term gives about 0.22); the 1%
    most popular items hold 4% to 10% of the interactions; ranking by popularity alone hits
    the test item in the top 10 for 1.5% to 10% of users (chance: 1%; paper POP: 6.0%)."""
    values = default_statistics
    assert 0.28 <= values["gini"] <= 0.45
    assert 0.04 <= values["top_1_percent_share"] <= 0.10
    assert 0.015 <= values["pop_hit_ratio_at_10"] <= 0.10


def test_images_pinned_once_follow_the_board_visual_taste():
    """Cold candidates (images only one board pins) carry the board's favourite colour far
    more often than chance (1/12), yet colour alone does not give them away."""
    simulation = simulate(DemoSettings())
    pins_per_image = np.bincount(simulation.pin_image)
    pinned_once = pins_per_image[simulation.pin_image] == 1
    favourite = (
        simulation.colour[simulation.pin_image]
        == simulation.board_category[simulation.pin_board]
    )
    share = favourite[pinned_once].mean()
    assert 3 / len(COLOURS) < share < 0.8


def test_without_a_visual_term_colour_carries_no_taste():
    """The visual component is what ties colour to boards: with visual_weight = 0 the
    favourite-colour share falls to the level the shared category centres explain."""
    simulation = simulate(DemoSettings(visual_weight=0.0))
    favourite = (
        simulation.colour[simulation.pin_image]
        == simulation.board_category[simulation.pin_board]
    )
    assert favourite.mean() < 2.5 / len(COLOURS)


def test_simulation_is_seeded():
    first, again, other = simulate(SMALL), simulate(SMALL), simulate(
        DemoSettings(n_boards=20, n_catalogue_images=200, image_size=16, seed=2)
    )
    for name in ("pin_board", "pin_image", "colour", "shape", "pattern", "board_category"):
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
