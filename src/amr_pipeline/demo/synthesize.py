"""Regenerates the embedded demo: a small Pinterest ICCV'15-format dump with images.

``python -m amr_pipeline.demo.synthesize data/01_raw/demo`` rewrites the committed files
byte for byte (same seed, same output) and prints the statistics of the interaction table.

The demo is sized like the paper's Pinterest subset (Table 1: 3,226 users, 4,998 items,
9,844 interactions, 99.939% sparse; 52.6% of test items cold). Each image is a shape with a
colour and a surface pattern on a noisy background, drawn from a catalogue of
``n_catalogue_images``; only pinned images are written. A board (user) pins between 2 and
``max_pins_per_board`` distinct images (``2 + Binomial(max - 2, p)``, mean
``mean_pins_per_board``), drawn without replacement with probability proportional to
``exp(logit_ui)``, where

    logit_ui = collaborative_weight * <θ_u, φ_i> / sqrt(K)      (low-rank taste, K factors)
             + visual_weight * standardised visual affinity      (colour, shape, pattern)
             + popularity_weight * b_i,   b_i ~ N(0, 1)          (log-normal popularity)

Each term has unit variance, so none dominates by construction. The visual affinity of a
board for an image is ``log(colour_taste[colour] + 0.01) + [shape is the board's favourite]
+ 0.5 [pattern is the board's favourite]``, standardised over the catalogue for each board.
Collaborative factors are standard normal, except that a share ``category_factor_share`` of
their variance comes from a factor centre shared by the board's favourite colour (its
category) and the image's colour: boards about red things co-pin red things a little more,
as on real boards, but the two components stay far from separable by colour alone.

Images that only one board pins are cold when held out; they were chosen partly through the
board's visual taste, so they are rankable from pixels. Nothing here favours a particular
model: the strengths are unit variances, and only the catalogue size and the pin counts are
set to match Table 1. A share ``repin_share`` of pins is repeated on the same board (the
filter collapses such duplicates, as on the real dump).
"""

from __future__ import annotations

import argparse
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import bson
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

COLOURS = {
    "red": (200, 40, 40),
    "orange": (235, 140, 30),
    "yellow": (230, 210, 40),
    "green": (50, 160, 60),
    "teal": (30, 150, 150),
    "blue": (40, 70, 200),
    "purple": (130, 50, 170),
    "pink": (235, 120, 180),
    "brown": (120, 70, 30),
    "black": (30, 30, 30),
    "lime": (160, 220, 40),
    "navy": (20, 30, 110),
}
SHAPES = ("circle", "square", "triangle", "cross")
PATTERNS = ("plain", "stripes", "dots")
CATEGORIES = [f"{colour}_things" for colour in COLOURS]

PAPER_PINTEREST = {
    "users": 3226,
    "items": 4998,
    "interactions": 9844,
    "interactions_per_user": 9844 / 3226,
    "sparsity": 0.99939,
    "cold_test_share": 0.526,
    "pop_hit_ratio_at_10": 0.0604,
}
"""Paper Table 1 (Pinterest row), the cold share of its test items (4.1.2) and POP's HR@10
(Table 2)."""

_BOARD_CHUNK = 256


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and strengths of the generated demo (defaults: the paper's Pinterest scale)."""

    n_boards: int = 3226
    n_catalogue_images: int = 13000
    mean_pins_per_board: float = 3.05
    max_pins_per_board: int = 5
    n_factors: int = 8
    collaborative_weight: float = 1.0
    visual_weight: float = 1.0
    popularity_weight: float = 1.0
    category_factor_share: float = 0.25
    colour_concentration: float = 0.15
    repin_share: float = 0.03
    image_size: int = 56
    jpeg_quality: int = 80
    seed: int = 20190101


@dataclass(frozen=True)
class Simulation:
    """The interaction table of a demo, without images.

    ``pin_board`` and ``pin_image`` hold one row per pin (repins included, in pin order);
    images are numbered ``0 .. n_images - 1`` in order of first pin, with their ``colour``,
    ``shape`` and ``pattern`` indexes; ``board_category`` is each board's favourite colour.
    """

    pin_board: np.ndarray
    pin_image: np.ndarray
    colour: np.ndarray
    shape: np.ndarray
    pattern: np.ndarray
    board_category: np.ndarray

    @property
    def n_images(self) -> int:
        return len(self.colour)


def simulate(settings: DemoSettings = DemoSettings()) -> Simulation:
    """Draw the boards' pins (the generative model of the module docstring); no images."""
    rng = np.random.default_rng(settings.seed)
    n_colours, n_shapes, n_patterns = len(COLOURS), len(SHAPES), len(PATTERNS)
    n_boards, n_catalogue, n_factors = (
        settings.n_boards, settings.n_catalogue_images, settings.n_factors
    )
    extra_pin_trials = settings.max_pins_per_board - 2
    if not 2 <= settings.mean_pins_per_board <= settings.max_pins_per_board:
        raise ValueError(
            f"mean_pins_per_board must lie in [2, max_pins_per_board = "
            f"{settings.max_pins_per_board}], got {settings.mean_pins_per_board}"
        )
    extra_pin_probability = (settings.mean_pins_per_board - 2) / max(1, extra_pin_trials)

    colour_taste = rng.dirichlet(np.full(n_colours, settings.colour_concentration), n_boards)
    favourite_shape = rng.integers(0, n_shapes, n_boards)
    favourite_pattern = rng.integers(0, n_patterns, n_boards)
    board_category = np.argmax(colour_taste, axis=1)

    colour = rng.integers(0, n_colours, n_catalogue)
    shape = rng.integers(0, n_shapes, n_catalogue)
    pattern = rng.integers(0, n_patterns, n_catalogue)
    popularity = rng.standard_normal(n_catalogue)

    shared = np.sqrt(settings.category_factor_share)
    own = np.sqrt(1.0 - settings.category_factor_share)
    category_centres = rng.standard_normal((n_colours, n_factors))
    board_factors = shared * category_centres[board_category] + own * rng.standard_normal(
        (n_boards, n_factors)
    )
    image_factors = shared * category_centres[colour] + own * rng.standard_normal(
        (n_catalogue, n_factors)
    )
    pin_counts = 2 + rng.binomial(extra_pin_trials, extra_pin_probability, n_boards)
    most_pins = int(pin_counts.max())

    log_colour_taste = np.log(colour_taste + 0.01)
    chosen_per_board = []
    for start in range(0, n_boards, _BOARD_CHUNK):
        boards = np.arange(start, min(start + _BOARD_CHUNK, n_boards))
        visual = (
            log_colour_taste[boards][:, colour]
            + (shape[None, :] == favourite_shape[boards, None])
            + 0.5 * (pattern[None, :] == favourite_pattern[boards, None])
        )
        visual = (visual - visual.mean(axis=1, keepdims=True)) / visual.std(axis=1, keepdims=True)
        logits = (
            settings.collaborative_weight * (board_factors[boards] @ image_factors.T)
            / np.sqrt(n_factors)
            + settings.visual_weight * visual
            + settings.popularity_weight * popularity[None, :]
        )
        # Gumbel top-k: the k largest perturbed logits are k draws without replacement.
        perturbed = logits + rng.gumbel(size=logits.shape)
        top = np.argpartition(-perturbed, most_pins - 1, axis=1)[:, :most_pins]
        order = np.argsort(-np.take_along_axis(perturbed, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        for row, board in enumerate(boards):
            chosen_per_board.append(top[row, : pin_counts[board]])

    pin_board, pin_catalogue = [], []
    for board, chosen in enumerate(chosen_per_board):
        repins = chosen[rng.random(len(chosen)) < settings.repin_share]
        pins = np.concatenate([chosen, repins])
        pin_board.append(np.full(len(pins), board, dtype=np.int64))
        pin_catalogue.append(pins.astype(np.int64))
    pin_board = np.concatenate(pin_board)
    pin_catalogue = np.concatenate(pin_catalogue)
    pinned, first = np.unique(pin_catalogue, return_index=True)
    pinned = pinned[np.argsort(first, kind="stable")]
    renumber = np.full(n_catalogue, -1, dtype=np.int64)
    renumber[pinned] = np.arange(len(pinned))
    return Simulation(
        pin_board=pin_board,
        pin_image=renumber[pin_catalogue],
        colour=colour[pinned],
        shape=shape[pinned],
        pattern=pattern[pinned],
        board_category=board_category,
    )


def interaction_tables(simulation: Simulation) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The simulated pins as the raw readers' ``(interactions, items)`` columns."""
    images = np.array([f"image-{index}" for index in range(simulation.n_images)], dtype=object)
    interactions = pd.DataFrame({
        "user_raw_id": np.char.mod("board-%d", simulation.pin_board).astype(object),
        "item_raw_id": images[simulation.pin_image],
    })
    items = pd.DataFrame({"item_raw_id": images, "image": images})
    return interactions, items


def statistics(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    *,
    min_user_interactions: int = 2,
    split_seed: int = 2019,
    candidate_seed: int = 2020,
    n_negatives: int = 999,
) -> dict[str, float]:
    """Table 1 statistics of a raw ``(interactions, items)`` pair after the project's own
    filter, ids and leave-one-out split (defaults: conf/base/parameters_data_processing.yml).

    ``gini``: Gini coefficient of item popularity (interactions per item);
    ``top_1_percent_share``: share of interactions on the 1% most popular items;
    ``cold_test_share``: share of test items never in training;
    ``pop_hit_ratio_at_10``: HR@10 of ranking the test candidates by training popularity,
    the share of users for whom popularity alone puts the test item in the top 10.
    """
    from amr_pipeline.recsys import data
    from amr_pipeline.recsys.metrics import rank_candidates, summarise
    from amr_pipeline.recsys.models import popularity_model

    kept, kept_items = data.filter_interactions(
        interactions, items, min_user_interactions=min_user_interactions
    )
    indexed, users, item_table = data.assign_ids(kept, kept_items)
    train, _validation, test = data.leave_one_out(indexed, seed=split_seed)
    item_table = data.mark_cold_items(item_table, train)
    n_users, n_items, n_interactions = len(users), len(item_table), len(indexed)

    popularity = np.sort(np.bincount(indexed["item_id"], minlength=n_items))
    rank = np.arange(1, n_items + 1)
    gini = float(((2 * rank - n_items - 1) @ popularity) / (n_items * popularity.sum()))
    top_items = max(1, n_items // 100)
    top_share = float(popularity[::-1][:top_items].sum() / popularity.sum())

    candidates = data.sample_candidates(
        test, indexed, n_items, n_negatives=n_negatives, seed=candidate_seed
    )
    ranks = rank_candidates(popularity_model(train, n_users, n_items), None, candidates)
    return {
        "users": n_users,
        "items": n_items,
        "interactions": n_interactions,
        "interactions_per_user": n_interactions / n_users,
        "sparsity": 1.0 - n_interactions / (n_users * n_items),
        "gini": gini,
        "top_1_percent_share": top_share,
        "cold_test_share": data.cold_share(test, item_table),
        "pop_hit_ratio_at_10": summarise(ranks, cutoffs=(10,))["hr_at_10"],
    }


def simulation_statistics(settings: DemoSettings = DemoSettings(), **options) -> dict[str, float]:
    """:func:`statistics` of :func:`simulate` (no images drawn)."""
    return statistics(*interaction_tables(simulate(settings)), **options)


def format_statistics(values: dict[str, float]) -> str:
    """A Markdown table of ``values`` next to the paper's Pinterest row."""
    lines = ["| statistic | demo | paper (Pinterest) |", "|---|---|---|"]
    for name, value in values.items():
        paper = PAPER_PINTEREST.get(name)
        lines.append(f"| {name} | {_format(name, value)} | "
                     f"{'' if paper is None else _format(name, paper)} |")
    return "\n".join(lines)


def _format(name: str, value: float) -> str:
    if name in ("users", "items", "interactions"):
        return f"{int(value):,}"
    if name == "sparsity":
        return f"{100 * value:.3f}%"
    return f"{value:.3f}"


def synthesize(output: Path, settings: DemoSettings = DemoSettings()) -> dict[str, int]:
    """Write the four dump files and ``images/`` under ``output``; return counts."""
    simulation = simulate(settings)
    names = [hashlib.sha1(f"demo-image-{i}".encode()).hexdigest() + ".jpg"
             for i in range(simulation.n_images)]
    images_dir = output / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for stale in images_dir.glob("*.jpg"):
        stale.unlink()
    for index, name in enumerate(names):
        picture = draw_image(
            int(simulation.colour[index]), int(simulation.shape[index]),
            int(simulation.pattern[index]), settings.image_size,
            np.random.default_rng([settings.seed, index]),
        )
        picture.save(images_dir / name, format="JPEG", quality=settings.jpeg_quality)

    board_ids = [str(10_000_000 + 7919 * b) for b in range(settings.n_boards)]
    pin_ids = [str(500_000_000 + pin) for pin in range(len(simulation.pin_board))]
    pins_per_board: list[list[str]] = [[] for _ in range(settings.n_boards)]
    pin_docs = []
    for pin, (board, image) in enumerate(zip(simulation.pin_board, simulation.pin_image)):
        pins_per_board[board].append(pin_ids[pin])
        pin_docs.append({
            "pin_id": pin_ids[pin],
            "im_name": names[image],
            "im_url": f"https://demo.invalid/originals/{names[image]}",
        })
    board_docs = [
        {"board_id": board_ids[board], "board_url": f"/demo/board-{board}/", "pins": pins}
        for board, pins in enumerate(pins_per_board)
    ]
    category_docs = [
        {"board_id": board_ids[board], "cate_id": int(category) + 1}  # 1-based line number
        for board, category in enumerate(simulation.board_category)
    ]
    _write_bson(output / "subset_iccv_board_pins.bson", board_docs)
    _write_bson(output / "subset_iccv_pin_im.bson", pin_docs)
    _write_bson(output / "subset_iccv_board_cate.bson", category_docs)
    (output / "categories.txt").write_text("\n".join(CATEGORIES) + "\n")
    return {"boards": settings.n_boards, "images": simulation.n_images, "pins": len(pin_docs)}


def draw_image(colour: int, shape: int, pattern: int, size: int, rng) -> Image.Image:
    """One item image: a coloured shape with a surface pattern on a noisy light background."""
    background = rng.integers(200, 256, size=3)
    canvas = np.clip(background + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    picture = Image.fromarray(canvas, "RGB")
    fill = tuple(int(c) for c in np.clip(np.array(list(COLOURS.values())[colour])
                                         + rng.normal(0, 15, 3), 0, 255))
    mask = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(mask)
    centre = size / 2 + rng.uniform(-size / 10, size / 10, 2)
    radius = size * rng.uniform(0.28, 0.4)
    x0, y0, x1, y1 = centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius
    if SHAPES[shape] == "circle":
        pen.ellipse((x0, y0, x1, y1), fill=255)
    elif SHAPES[shape] == "square":
        pen.rectangle((x0, y0, x1, y1), fill=255)
    elif SHAPES[shape] == "triangle":
        pen.polygon([(centre[0], y0), (x1, y1), (x0, y1)], fill=255)
    else:
        bar = radius / 3
        pen.rectangle((x0, centre[1] - bar, x1, centre[1] + bar), fill=255)
        pen.rectangle((centre[0] - bar, y0, centre[0] + bar, y1), fill=255)
    surface = Image.new("RGB", (size, size), fill)
    texture = ImageDraw.Draw(surface)
    darker = tuple(int(c * 0.45) for c in fill)
    step = max(4, size // 8)
    if PATTERNS[pattern] == "stripes":
        for offset in range(-size, size, step):
            texture.line((offset, 0, offset + size, size), fill=darker, width=max(1, step // 3))
    elif PATTERNS[pattern] == "dots":
        for x in range(step // 2, size, step):
            for y in range(step // 2, size, step):
                dot = (x - step / 4, y - step / 4, x + step / 4, y + step / 4)
                texture.ellipse(dot, fill=darker)
    picture.paste(surface, (0, 0), mask)
    return picture


def _write_bson(path: Path, documents: list[dict]) -> None:
    buffer = io.BytesIO()
    for document in documents:
        buffer.write(bson.encode(document))
    path.write_bytes(buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="data/01_raw/demo", type=Path)
    parser.add_argument("--seed", type=int, default=DemoSettings.seed)
    arguments = parser.parse_args(argv)
    settings = DemoSettings(seed=arguments.seed)
    counts = synthesize(arguments.output, settings)
    print(f"Wrote the demo dump to {arguments.output}: {counts}")
    print(format_statistics(simulation_statistics(settings)))


if __name__ == "__main__":
    main()
